"""VQGAN (Esser et al. 2021), the first stage of the paper's text-to-image system (§4.1): an
image becomes a grid of discrete codes and a grid of codes becomes an image again.

The quantiser is `vector-quantize-pytorch`'s `VectorQuantize`: an EMA-updated codebook with
k-means initialisation and restarts of dead codes (codes whose EMA usage falls below a threshold
are re-initialised from the current batch), the remedies for codebook collapse. Gradients pass
the quantiser straight through (the rotation trick is off, as in taming)."""

from __future__ import annotations

import torch
from torch import nn
from vector_quantize_pytorch import VectorQuantize

from m6_pipeline.vqgan.config import VQGANConfig
from m6_pipeline.vqgan.modules import Decoder, Encoder


class VQGAN(nn.Module):
    def __init__(self, config: VQGANConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(config.d_latent, config.d_latent, 1)
        self.quantizer = VectorQuantize(
            dim=config.d_latent,
            codebook_size=config.codebook_size,
            codebook_dim=config.codebook_dim,
            decay=config.ema_decay,
            commitment_weight=config.commitment_weight,
            kmeans_init=config.kmeans_init,
            threshold_ema_dead_code=config.dead_code_threshold,
            accept_image_fmap=True,
            rotation_trick=False,
        )
        self.post_quant_conv = nn.Conv2d(config.d_latent, config.d_latent, 1)
        self.decoder = Decoder(config)
        self._restarts = 0
        self._count_restarts()

    def _count_restarts(self) -> None:
        """The library restarts dead codes inside its forward pass (after the EMA update), so
        the count is taken where it replaces them."""
        codebook = self.quantizer._codebook
        replace = codebook.replace

        def counting_replace(batch_samples, batch_mask, *args, **kwargs):
            self._restarts += int(batch_mask.sum())
            return replace(batch_samples, batch_mask, *args, **kwargs)

        codebook.replace = counting_replace

    def pop_restarts(self) -> int:
        """Codes restarted since the last call."""
        count, self._restarts = self._restarts, 0
        return count

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images [b, 3, r, r] in [-1, 1] -> (quantised latents [b, d, g, g], codes [b, g, g],
        commitment loss)."""
        z = self.quant_conv(self.encoder(x))
        # nearest-code search, EMA updates and the commitment loss in fp32 whatever autocast
        # surrounds the model: vector-quantize-pytorch turns autocast off around its codebook on
        # CUDA only, and bf16 distances (8 mantissa bits) pick other codes than fp32 ones
        with torch.autocast(z.device.type, enabled=False):
            quantized, codes, commitment = self.quantizer(z.float())
        return quantized, codes, commitment.sum()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images -> (reconstructions [b, 3, r, r], codes [b, g, g], commitment loss)."""
        quantized, codes, commitment = self.quantize(x)
        return self.decoder(self.post_quant_conv(quantized)), codes, commitment

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images [b, 3, r, r] in [-1, 1] -> codes [b, grid, grid] (long); no codebook update."""
        was_training = self.training
        self.eval()
        try:
            return self.quantize(x)[1]
        finally:
            self.train(was_training)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [b, grid, grid] (or [b, grid²], row-major) -> images [b, 3, r, r] in [-1, 1]."""
        grid = self.config.grid
        codes = codes.reshape(codes.shape[0], grid, grid).long()
        if int(codes.min()) < 0 or int(codes.max()) >= self.config.codebook_size:
            raise ValueError(
                f"codes must lie in [0, {self.config.codebook_size}); got "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )
        # get_output_from_indices mislays the channel axis of image codes under a codebook_dim
        # projection (vector-quantize-pytorch 1.32); look up and project out channels-last
        looked_up = self.quantizer.get_codes_from_indices(codes)  # [b, codebook_dim, g, g]
        quantized = self.quantizer.project_out(looked_up.movedim(1, -1)).movedim(-1, 1)
        return self.decoder(self.post_quant_conv(quantized)).clamp(-1, 1)

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's output weight: the adaptive adversarial weight balances gradient norms
        here."""
        return self.decoder.conv_out.weight
