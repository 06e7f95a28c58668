"""The VQGAN: straight-through gradients, codebook restarts, encode/decode shapes, the losses'
pieces, reconstructions that improve with training, and a resumed run equal to an
uninterrupted one."""

import os

import numpy as np
import pytest
import torch

from m6_pipeline.data.file_identity import files_identity
from m6_pipeline.vqgan import VQGAN, VQGANConfig, VQGANJob
from m6_pipeline.vqgan.codebook import CodebookMeter, code_statistics
from m6_pipeline.vqgan.discriminator import PatchDiscriminator, adaptive_weight, hinge_discriminator_loss
from m6_pipeline.vqgan.perceptual import PerceptualLoss
from m6_pipeline.vqgan.train import VQGANTrainer, reconstruction_quality

TINY = {"resolution": 16, "channels": 8, "channel_mult": [1, 2], "n_res_blocks": 1, "d_latent": 8,
        "codebook_size": 16, "codebook_dim": 4}


def tiny_job(**training) -> VQGANJob:
    return VQGANJob.model_validate({
        "model": TINY,
        "loss": {"disc_start": 3, "disc_layers": 1, "disc_channels": 8, "perceptual_weight": 0.5},
        "training": {"steps": 6, "batch_size": 4, "lr": 1e-3, "log_every": 2, "checkpoint_every": 2, **training},
    })


def blobs(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """White images with one coloured square each: the catalogue in miniature."""
    rng = np.random.default_rng(seed)
    images = np.full((n, size, size, 3), 255, dtype=np.uint8)
    for image in images:
        x, y = rng.integers(0, size // 2, 2)
        image[y : y + size // 2, x : x + size // 2] = rng.integers(0, 255, 3)
    return images


def test_grid_follows_the_downsampling_and_bad_resolutions_are_refused():
    assert VQGANConfig(resolution=256, channel_mult=(1, 1, 2, 2, 4)).grid == 16
    assert VQGANConfig(**TINY).n_codes == 64
    with pytest.raises(ValueError, match="not divisible"):
        VQGANConfig(resolution=18, channel_mult=(1, 2, 2))


def test_encode_decode_shapes_and_code_range():
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig(**TINY))
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    model.train()
    model(x)  # k-means initialisation of the codebook
    codes = model.encode(x)
    assert codes.shape == (3, 8, 8) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < 16
    images = model.decode_codes(codes.reshape(3, -1))  # flat row-major codes are accepted
    assert images.shape == (3, 3, 16, 16) and images.abs().max() <= 1
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\)"):
        model.decode_codes(torch.full((1, 64), 16))


def test_decoding_the_codes_equals_decoding_the_quantised_latents():
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig(**TINY))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model.train()
    model(x)
    model.eval()
    with torch.no_grad():
        quantized, codes, _ = model.quantize(x)
        direct = model.decoder(model.post_quant_conv(quantized)).clamp(-1, 1)
        assert torch.allclose(model.decode_codes(codes), direct, atol=1e-5)


def test_quantiser_passes_gradients_straight_through():
    """d(quantised)/d(latent) is the identity: the encoder learns through the codebook (without a
    low-dimensional lookup, whose projections would wrap the identity)."""
    model = VQGAN(VQGANConfig(**{**TINY, "codebook_dim": None}, kmeans_init=False))
    z = torch.randn(2, 8, 4, 4, requires_grad=True)
    quantized, codes, _ = model.quantizer(z)
    weights = torch.randn_like(quantized)
    (quantized * weights).sum().backward()
    assert torch.allclose(z.grad, weights)
    assert not torch.equal(quantized, z)  # and the forward value is the code, not the input


def test_dead_codes_are_restarted_from_the_batch():
    """Codes no input is near fall below the EMA usage threshold and are re-initialised from the
    current batch; the meter counts the restarts."""
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig(**TINY, kmeans_init=False, dead_code_threshold=1.0, ema_decay=0.5))
    quantizer = model.quantizer
    codebook = quantizer._codebook
    with torch.no_grad():
        codebook.embed.data[0, 8:] += 100.0  # half the codes far from any input: never chosen
    far_before = codebook.embed.data[0, 8:].clone()
    meter = CodebookMeter(16)
    quantizer.train()
    for _ in range(4):
        _, codes, _ = quantizer(torch.randn(4, 8, 4, 4))
        meter.update(codes, model.pop_restarts())
    moved = (codebook.embed.data[0, 8:] - far_before).norm(dim=-1) > 50
    assert bool(moved.all()), "the far codes were not re-initialised"
    assert meter.summary()["codes_restarted"] >= 8


def test_codebook_usage_and_perplexity():
    stats = code_statistics(torch.tensor([0, 1, 2, 3] * 10), codebook_size=8)
    assert stats["codebook_usage"] == 0.5
    assert stats["codebook_perplexity"] == pytest.approx(4.0)
    assert code_statistics(torch.zeros(50, dtype=torch.long), 8)["codebook_perplexity"] == pytest.approx(1.0)


def test_hinge_loss_and_adaptive_weight():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # 0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake))) = 0.5 * (0.25 + 0.5)
    assert float(hinge_discriminator_loss(real, fake)) == pytest.approx(0.375)
    layer = torch.nn.Parameter(torch.ones(3))
    rec, gan = (layer * 4).sum(), (layer * 2).sum()
    # |grad rec| / |grad gan| = 4 / 2
    assert float(adaptive_weight(rec, gan, layer)) == pytest.approx(2.0, rel=1e-3)
    logits = PatchDiscriminator(n_layers=2, channels=8)(torch.zeros(2, 3, 32, 32))
    assert logits.shape[0] == 2 and logits.shape[1] == 1 and logits.shape[2] > 1  # per patch


def test_perceptual_distance_is_zero_for_equal_images_and_grows_with_difference():
    loss = PerceptualLoss(None, seed=0)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(loss(x, x), torch.zeros(2))
    small, large = loss(x, x + 0.05 * torch.randn_like(x)), loss(x, torch.rand_like(x) * 2 - 1)
    assert bool((small < large).all())
    assert loss.kind == "random_vgg"
    assert not any(p.requires_grad for p in loss.parameters())
    with pytest.raises(FileNotFoundError, match="vgg16"):
        PerceptualLoss("/nonexistent/vgg16.pth")


def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path):
    images = blobs(32)
    full = VQGANTrainer(tiny_job())
    full.fit(images)
    first = VQGANTrainer(tiny_job(steps=4))
    first.fit(images, tmp_path)  # "fails" after the checkpoint of step 4
    resumed = VQGANTrainer(tiny_job())
    assert resumed.resume(tmp_path) and resumed.step == 4
    resumed.fit(images, tmp_path)

    def without_timing(history):
        return [{k: v for k, v in row.items() if k != "images_per_s"} for row in history]

    assert without_timing(resumed.history) == without_timing(full.history)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_checkpoint_of_another_model_is_set_aside_not_resumed(tmp_path):
    VQGANTrainer(tiny_job(steps=4)).fit(blobs(8), tmp_path)
    other = VQGANJob.model_validate({**tiny_job().model_dump(), "model": {**TINY, "codebook_size": 32}})
    assert not VQGANTrainer(other).resume(tmp_path)
    assert (tmp_path / "vqgan_state.pt.stale").exists() and not (tmp_path / "vqgan_state.pt").exists()


def test_training_improves_reconstructions():
    images = blobs(64, seed=1)
    trainer = VQGANTrainer(tiny_job(steps=150, log_every=50, batch_size=8))
    before = reconstruction_quality(VQGANTrainer(tiny_job()).model, images[:16])
    trainer.fit(images)
    after = reconstruction_quality(trainer.model, images[:16])
    first, last = trainer.history[0], trainer.history[-1]
    assert last["reconstruction_l1"] < 0.6 * first["reconstruction_l1"]
    assert after["psnr_db"] > before["psnr_db"] + 5
    assert last["adaptive_weight"] > 0 and last["discriminator"] > 0  # the GAN term is active


def test_auto_precision_probes_the_convolutions_as_one_matrix_product(tmp_path):
    from m6_pipeline.precision_choice import ProbeResult
    from m6_pipeline.vqgan.train import resolve_precision

    asked = []

    def probe(shape, *_):
        asked.append(shape)
        return ProbeResult(fp32_gflops=100.0, bf16_gflops=10.0)

    job = resolve_precision(tiny_job(precision="auto").model_copy(update={"torch_threads": 1}),
                            cache_path=tmp_path / "probe.json", probe=probe)
    assert job.training.precision == "fp32"
    assert job.precision_choice["requested"] == "auto" and job.precision_choice["precision"] == "fp32"
    shape, = asked  # batch 4 at (16/2)² positions; 3x3 convolutions of width 8 * 2
    assert (shape.tokens, shape.d_in, shape.d_out) == (4 * 8 * 8, 9 * 16, 16)
    assert job.precision_choice["probe"]["threads"] == 1


def test_the_codebook_runs_in_fp32_under_bf16_autocast():
    """vector-quantize-pytorch turns autocast off around its codebook on CUDA only: the model
    does it on every device, so bf16 latents are quantised as their fp32 values would be."""
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig(**TINY, kmeans_init=False)).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        z = model.quant_conv(model.encoder(x))
        quantized, codes, commitment = model.quantize(x)
    assert z.dtype == torch.bfloat16
    assert quantized.dtype == commitment.dtype == torch.float32
    with torch.no_grad():
        _, fp32_codes, _ = model.quantizer(z.float())
    assert torch.equal(codes, fp32_codes)


def test_a_bf16_run_trains_with_fp32_losses_and_records_its_choice():
    trainer = VQGANTrainer(tiny_job(precision="bf16"))
    history = trainer.fit(blobs(16))
    assert trainer.job.precision_choice["precision"] == "bf16"
    assert all(np.isfinite(v) for row in history for k, v in row.items() if isinstance(v, float))
    assert history[-1]["discriminator"] > 0  # the discriminator ran (under autocast) and trained
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_the_foreground_weighted_l1_counts_the_product_more_than_the_white_background():
    from m6_pipeline.vqgan.train import weighted_l1

    image = torch.ones(1, 3, 8, 8)  # white
    image[:, :, 3:5, 3:5] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]  # a red product, 4 of 64 pixels
    shifted_product, shifted_background = image.clone(), image.clone()
    shifted_product[:, 1, 3:5, 3:5] += 0.5  # red towards orange
    shifted_background[:, 1, :2, :2] -= 0.5  # the same error on 4 background pixels
    plain = weighted_l1(image, shifted_product, 0.0)
    assert plain == pytest.approx(weighted_l1(image, shifted_background, 0.0))  # the plain L1 cannot tell
    assert weighted_l1(image, shifted_product, 4.0) > 3 * weighted_l1(image, shifted_background, 4.0)
    assert weighted_l1(image, image, 4.0) == 0


def test_a_checkpoint_of_other_input_images_is_set_aside_not_resumed(tmp_path):
    pairs = tmp_path / "pairs.parquet"
    pairs.write_bytes(b"first corpus")
    VQGANTrainer(tiny_job(steps=4), inputs={"pairs": files_identity([pairs])}).fit(blobs(8), tmp_path)
    assert VQGANTrainer(tiny_job(), inputs={"pairs": files_identity([pairs])}).resume(tmp_path)
    os.utime(pairs, ns=(pairs.stat().st_atime_ns, pairs.stat().st_mtime_ns + 1_000_000))  # the corpus re-ran
    assert not VQGANTrainer(tiny_job(), inputs={"pairs": files_identity([pairs])}).resume(tmp_path)
    assert (tmp_path / "vqgan_state.pt.stale").exists()
