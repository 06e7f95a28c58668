"""The adversarial half of the VQGAN loss: a PatchGAN discriminator (pix2pix), the hinge loss,
and the adaptive weight that balances its gradient against the reconstruction's at the
decoder's last layer (Esser et al. 2021, eq. 7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """Images [b, 3, r, r] -> real/fake logits per patch [b, 1, h, w]."""

    def __init__(self, n_layers: int = 3, channels: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = channels
        for n in range(1, n_layers + 1):
            previous, width = width, channels * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(previous, width, 4, stride, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def adaptive_weight(
    reconstruction_loss: torch.Tensor, generator_loss: torch.Tensor, last_layer: torch.Tensor
) -> torch.Tensor:
    """λ = ‖∇_L rec‖ / (‖∇_L gan‖ + δ) at the decoder's last layer L, clamped to [0, 1e4] and
    detached: the adversarial gradient is kept at the reconstruction's scale."""
    rec_grad = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(generator_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (gan_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()
