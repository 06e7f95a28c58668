"""The masks of §3.2: the prefix is bidirectional, the target causal over the whole prefix."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.model.masking import prefix_lm_mask


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(1, 12)), min_size=1, max_size=4))
def test_prefix_is_bidirectional_and_target_is_causal(parts):
    prefix = torch.tensor([p for p, _ in parts])
    lengths = torch.tensor([p + t for p, t in parts])
    seq = int(lengths.max()) + 2  # room for padding
    mask = prefix_lm_mask(prefix, lengths, seq)[:, 0]
    for b, (p, t) in enumerate(parts):
        n = p + t
        for i in range(n):
            for j in range(seq):
                if j >= n:
                    assert not mask[b, i, j], "nobody attends to padding"
                elif j < p:
                    assert mask[b, i, j], "every real position sees the whole prefix"
                elif i < p:
                    assert not mask[b, i, j], "the prefix never sees the target"
                else:
                    assert mask[b, i, j] == (j <= i), "a target token never sees a later one"


def test_padding_rows_are_not_empty():
    mask = prefix_lm_mask(torch.tensor([2]), torch.tensor([3]), 6)[0, 0]
    assert mask.any(dim=-1).all()  # an empty row would give NaN in the softmax
