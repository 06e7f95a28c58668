"""torch's intra-op thread count for one block of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` intra-op threads (None: leave torch's setting), then restore."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
