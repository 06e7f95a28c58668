"""The model: tied output layer, Table 4 parameter counts on the meta device, the masks as the
model applies them, and KV-cache decoding equal to recomputation."""

import math

import numpy as np
import pytest
import torch

from m6_pipeline.model import PAPER_PARAMS, M6Config, M6Model, count_parameters
from m6_pipeline.model.generation import Sampling, generate, next_token
from m6_pipeline.pretraining.tasks import SpecialTokens, build_example, collate

SPECIAL = SpecialTokens(pad=0, sep=3, mask=4, bos=5, eos=6)


def tiny(**overrides) -> M6Config:
    return M6Config.of_size("tiny", **{"vocab_size": 50, "n_patches": 4, "d_patch_feature": 8,
                                       "dropout": 0.0, "max_positions": 64, **overrides})


@pytest.mark.parametrize("size", ["base", "10b"])
def test_table4_parameter_counts_within_3_percent(size):
    n = count_parameters(M6Config.of_size(size))
    assert abs(n / PAPER_PARAMS[size] - 1) < 0.03, n


def test_output_layer_is_the_word_embedding():
    model = M6Model(tiny())
    assert model.output_weight.data_ptr() == model.embeddings.word.weight.data_ptr()
    batch = collate([build_example("language_modelling", [10, 11, 12], SPECIAL,
                                   np.random.default_rng(0))], SPECIAL.pad)
    model(**batch).backward()
    assert model.embeddings.word.weight.grad[12].abs().sum() > 0  # a predicted token gets gradient


def test_initial_loss_is_near_ln_vocabulary():
    torch.manual_seed(0)
    model = M6Model(tiny(vocab_size=2000))
    rng = np.random.default_rng(0)
    batch = collate([build_example("language_modelling", list(rng.integers(10, 2000, 30)), SPECIAL, rng)
                     for _ in range(8)], SPECIAL.pad)
    assert abs(model(**batch).item() - math.log(2000)) < 0.3


def test_target_logits_do_not_depend_on_later_target_tokens():
    torch.manual_seed(0)
    model = M6Model(tiny()).eval()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 8))
    a = build_example("multimodality_to_text", [10, 11, 12, 13, 14, 15], SPECIAL, rng, patch_features=features)
    b = type(a)(a.prefix_text, a.target[:4] + [40, 41, 6], a.patch_features)  # change the tail
    hidden = [model(**{k: v for k, v in collate([e], 0).items() if k != "labels"}) for e in (a, b)]
    start = 4 + len(a.prefix_text)
    same = start + 4  # [BOS] and three target tokens are shared
    assert torch.allclose(hidden[0][:, :same], hidden[1][:, :same], atol=1e-6)
    assert not torch.allclose(hidden[0][:, same], hidden[1][:, same])


def test_prefix_positions_see_the_whole_prefix():
    torch.manual_seed(0)
    model = M6Model(tiny()).eval()
    rng = np.random.default_rng(1)
    a = build_example("text_denoising", list(range(10, 30)), SPECIAL, rng)
    changed = list(a.prefix_text)
    changed[-2] = 49  # the last masked-text token, just before [SEP]
    b = type(a)(changed, a.target, None)
    ha, hb = (model(**{k: v for k, v in collate([e], 0).items() if k != "labels"}) for e in (a, b))
    assert not torch.allclose(ha[:, 0], hb[:, 0])  # the first prefix position sees a later one


@pytest.mark.parametrize("task", ["language_modelling", "image_to_text", "multimodality_to_text"])
def test_kv_cache_decoding_equals_recomputation(task):
    torch.manual_seed(0)
    model = M6Model(tiny()).eval()
    rng = np.random.default_rng(2)
    features = rng.normal(size=(4, 8))
    examples = [build_example(task, list(rng.integers(10, 50, n)), SPECIAL, rng, patch_features=features)
                for n in (5, 11, 8)]
    batch = collate(examples, 0)
    p = int(batch["prefix_lengths"].max())
    args = (batch["input_ids"][:, :p], batch["segment_ids"][:, :p], batch["prefix_lengths"])
    kwargs = {"bos_id": 5, "eos_id": 6, "max_new_tokens": 12, "patch_features": batch.get("patch_features")}
    cached = generate(model, *args, **kwargs)
    recomputed = generate(model, *args, **kwargs, use_cache=False)
    assert cached == recomputed
    # and both equal teacher-forced argmax through the training forward pass
    for row, ids in enumerate(cached):
        example = type(examples[row])(examples[row].prefix_text, [5, *ids], examples[row].patch_features)
        one = collate([example], 0)
        hidden = model(**{k: v for k, v in one.items() if k != "labels"})
        start = int(one["prefix_lengths"][0])
        logits = hidden[0, start:] @ model.output_weight.T
        assert logits.argmax(-1)[: len(ids)].tolist() == ids


def test_top_k_and_top_p_keep_only_allowed_tokens():
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0, -1.0]]).repeat(200, 1)
    gen = torch.Generator().manual_seed(0)
    top2 = next_token(logits, Sampling("top_k", top_k=2), gen)
    assert set(top2.tolist()) <= {0, 1}
    nucleus = next_token(logits, Sampling("top_p", top_p=0.5), gen)
    assert set(nucleus.tolist()) == {0}  # token 0 alone holds more than half the mass


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = M6Model(tiny())
    checkpointed = M6Model(tiny(activation_checkpointing=True))
    checkpointed.load_state_dict(plain.state_dict())
    rng = np.random.default_rng(3)
    batch = collate([build_example("text_denoising", list(rng.integers(10, 50, 20)), SPECIAL, rng)], 0)
    for model in (plain, checkpointed):
        model(**batch).backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        if a.grad is None:  # the patch projection is idle on a text task
            assert b.grad is None, name
            continue
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name
