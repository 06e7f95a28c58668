"""The judge of generated images: a small CNN trained on real catalogue images to read colour,
category and pattern, one head each. Its accuracy on held-out real images is the ceiling, on
VQGAN reconstructions the first stage's ceiling, on generated images the measure of §4.1 that
can be taken offline. Its penultimate features also serve a Fréchet distance (named for what it
is, not FID)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn
from tqdm.auto import tqdm

from m6_pipeline.tasks.t2i.attributes import ATTRIBUTES
from m6_pipeline.vqgan.images import to_model_range

log = logging.getLogger(__name__)


class AttributeClassifier(nn.Module):
    """Images [b, 3, r, r] in [-1, 1] -> {attribute: logits [b, n_values]}."""

    def __init__(self, width: int = 32):
        super().__init__()

        def stage(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.trunk = nn.Sequential(stage(3, width), stage(width, 2 * width), stage(2 * width, 4 * width))
        self.d_feature = 4 * width
        self.heads = nn.ModuleDict({name: nn.Linear(self.d_feature, len(v)) for name, v in ATTRIBUTES.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[b, d_feature]: global-average-pooled trunk output."""
        return self.trunk(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {name: head(h) for name, head in self.heads.items()}


def attribute_labels(attributes: list[dict[str, str]]) -> dict[str, torch.Tensor]:
    return {
        name: torch.tensor([values.index(a[name]) for a in attributes], dtype=torch.long)
        for name, values in ATTRIBUTES.items()
    }


def soften(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Blur a random share `p` of images [b, 3, r, r] by resampling them through a lower
    resolution (5r/8 to 7r/8): colour, category and pattern survive; sharpness does not. A judge
    that only ever saw crisp images reads a blurred red as pink or grey."""
    r = x.shape[-1]
    chosen = torch.rand(len(x), generator=generator) < p
    if not bool(chosen.any()):
        return x
    low = int(torch.randint(5 * r // 8, 7 * r // 8 + 1, (1,), generator=generator))
    blurred = F.interpolate(
        F.interpolate(x[chosen], size=low, mode="bilinear", antialias=True, align_corners=False),
        size=r, mode="bilinear", align_corners=False,
    )
    x = x.clone()
    x[chosen] = blurred
    return x


def train_classifier(
    images: np.ndarray, attributes: list[dict[str, str]], epochs: int, width: int, seed: int = 0
) -> AttributeClassifier:
    """Train on real uint8 images [n, r, r, 3] and their stated attributes, with random flips
    and blur (`soften`); it never sees a reconstructed or generated image."""
    torch.manual_seed(seed)
    model = AttributeClassifier(width)
    labels = attribute_labels(attributes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps_per_epoch = max(1, len(images) // 64)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(epochs), desc="attribute classifier", mininterval=5):
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * 64 : (step + 1) * 64]
            x = to_model_range(images[index.numpy()])
            flip = torch.rand(len(index), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            x = soften(x, generator)
            logits = model(x)
            loss = sum(F.cross_entropy(logits[n], labels[n][index]) for n in ATTRIBUTES)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


@torch.no_grad()
def predict(model: AttributeClassifier, images: np.ndarray, batch_size: int = 256) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({attribute: predicted value index [n]}, features [n, d_feature]) of uint8 images."""
    model.eval()
    predictions: dict[str, list] = {name: [] for name in ATTRIBUTES}
    features = []
    for start in range(0, len(images), batch_size):
        x = to_model_range(images[start : start + batch_size])
        h = model.features(x)
        features.append(h)
        for name, head in model.heads.items():
            predictions[name].append(head(h).argmax(-1))
    return {n: torch.cat(p).numpy() for n, p in predictions.items()}, torch.cat(features).numpy()


def accuracy(predictions: dict[str, np.ndarray], attributes: list[dict[str, str]]) -> dict[str, float]:
    labels = attribute_labels(attributes)
    return {name: float((predictions[name] == labels[name].numpy()).mean()) for name in ATTRIBUTES}


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [n, d] and b [m, d]."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # near-singular on small sets: handled below as pytorch-fid does
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
        if not np.isfinite(root).all():
            offset = np.eye(len(cov_a)) * 1e-6
            root, _ = linalg.sqrtm((cov_a + offset) @ (cov_b + offset), disp=False)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))
