"""Small generated pairs in the clean-corpus layout (PNG bytes of varied sizes)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def product_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A white-background image with a coloured rectangle and a little noise."""
    image = np.full((size, size, 3), 255, np.uint8)
    y0, x0 = rng.integers(0, size // 2, 2)
    y1, x1 = y0 + rng.integers(size // 4, size // 2), x0 + rng.integers(size // 4, size // 2)
    image[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    noise = rng.integers(-8, 9, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def write_pairs(directory, n: int = 13, files: int = 2, seed: int = 0, bad_id: str | None = None):
    """`files` Parquet files holding `n` pairs of sizes 40..96 px; `bad_id` gets broken bytes."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    ids = [f"catalogue/{i:06d}" for i in range(n)]
    for part, chunk in enumerate(np.array_split(np.arange(n), files)):
        images = [
            b"\x89PNG broken"
            if ids[i] == bad_id
            else png_bytes(product_image(rng, int(rng.integers(40, 97))))
            for i in chunk
        ]
        pq.write_table(
            pa.table(
                {
                    "id": [ids[i] for i in chunk],
                    "source": ["catalogue"] * len(chunk),
                    "origin": ["synthetic"] * len(chunk),
                    "text": [f"红色的商品 {i}" for i in chunk],
                    "image": pa.array(images, pa.large_binary()),
                    "order": [int(i) for i in chunk],
                }
            ),
            directory / f"pairs-{part:05d}.parquet",
            row_group_size=4,
        )
    return ids


@pytest.fixture(scope="package")
def pairs_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("features") / "pairs"
    write_pairs(directory, n=24, files=2)
    return directory


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    """Small convs run far faster on one thread than on two contended ones (CI shares cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def make_png():
    return png_bytes


@pytest.fixture(scope="session")
def make_pairs():
    return write_pairs
