"""Poem generation (§4.5): the format check, the constraint state machine, and constrained
sampling from a tiny random-weight M6 that yields valid poems only, whatever the seed."""

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.model.generation import Sampling
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.poem.format import PoemConstraint, PoemFormat, PoemState, check_poem
from m6_pipeline.tasks.poem.generate import generate_poems
from m6_pipeline.tokenization import TokenizerConfig, train_wordpiece

CHARACTERS = "床前明月光疑是地上霜举头望低思故乡春眠不觉晓处闻啼鸟夜来风雨声花落知多少"
WORDS = ["red", "shirt", "cotton", "phone", "camera"]
SPECIAL = SpecialTokens(pad=0, sep=3, mask=4, bos=5, eos=6)
QUIET_NIGHT = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"


def corpus(punctuation: str = "，。", n: int = 60, seed: int = 0) -> list[list[str]]:
    """Poem-like passages with some Latin words, so the vocabulary has `##` pieces too."""
    rng = random.Random(seed)
    passages = []
    for _ in range(n):
        lines = ["".join(rng.choices(CHARACTERS, k=rng.choice((5, 7)))) for _ in range(4)]
        text = "".join(line + punctuation[i % len(punctuation)] for i, line in enumerate(lines))
        passages.append(text + " ".join(rng.choices(WORDS, k=2)) + "：")
    return [passages]


def train(punctuation: str = "，。"):
    config = TokenizerConfig(vocab_size=120, min_frequency=1)
    return train_wordpiece(corpus(punctuation), config)[0]


@pytest.fixture(scope="module")
def tokenizer():
    return train()


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = M6Config.of_size("tiny", vocab_size=tokenizer.get_vocab_size(), n_patches=4,
                              d_patch_feature=8, dropout=0.0, max_positions=160)
    return M6Model(config).eval()


def allowed_tokens(constraint, tokenizer, state) -> set[str]:
    ids = constraint.allowed(state).nonzero().flatten().tolist()
    return {tokenizer.id_to_token(i) for i in ids}


def write(constraint, tokenizer, text: str, state: PoemState | None = None) -> PoemState:
    state = state or constraint.start()
    for token in tokenizer.encode(text).ids:
        state = constraint.advance(state, token)
    return state


# --- the format check -----------------------------------------------------------------------

def test_a_classical_quatrain_is_valid():
    assert check_poem(QUIET_NIGHT, PoemFormat()) == []
    assert check_poem(QUIET_NIGHT, PoemFormat(line_chars=5, n_lines=4)) == []
    assert check_poem("床前明月光，疑是地上霜。\n举头望明月，低头思故乡。", PoemFormat()) == []


@pytest.mark.parametrize(
    ("text", "fmt", "problem"),
    [
        ("床前明月光，疑是地上霜。举头望明月，低头思故乡。春眠不觉晓，", PoemFormat(), "odd number"),
        ("床前明月光，疑是地上霜。举头望明月，低头思故乡夜来风。", PoemFormat(), "mixed lengths"),
        ("床前明月光，疑是地上霜。举头望明月，", PoemFormat(), "fewer than 4"),
        ("床前明月光，疑是地上霜。举头望明a，低头思故乡。", PoemFormat(), "non-Chinese"),
        ("床前明月光，疑是地上霜。" * 9, PoemFormat(), "more than 16"),
        ("床前明月，疑是地上霜。举头望明月，低头思故乡。", PoemFormat(), "not 5 or 7"),
        ("床前明月光。疑是地上霜，举头望明月，低头思故乡。", PoemFormat(), "expected '，'"),
        ("床前明月光，疑是地上霜。举头望明月，低头思故乡", PoemFormat(), "does not end"),
        (QUIET_NIGHT, PoemFormat(line_chars=7), "not 7"),
        (QUIET_NIGHT, PoemFormat(n_lines=8), "not 8"),
        ("", PoemFormat(), "empty"),
    ],
)
def test_check_poem_names_each_violation(text, fmt, problem):
    problems = check_poem(text, fmt)
    assert any(problem in p for p in problems), problems


def test_impossible_formats_are_refused():
    for bad in ({"n_lines": 6, "max_lines": 4}, {"n_lines": 5}, {"min_lines": 5, "max_lines": 5},
                {"min_lines": 8, "max_lines": 4}, {"line_chars": 6}):
        with pytest.raises(ValueError):
            PoemFormat(**bad)


# --- the state machine ----------------------------------------------------------------------

def test_after_five_characters_of_an_odd_line_only_the_comma(tokenizer):
    constraint = PoemConstraint(tokenizer, PoemFormat(line_chars=5))
    assert allowed_tokens(constraint, tokenizer, write(constraint, tokenizer, "床前明月光")) == {"，"}
    third = write(constraint, tokenizer, "床前明月光，疑是地上霜。举头望明月")
    assert allowed_tokens(constraint, tokenizer, third) == {"，"}
    second = write(constraint, tokenizer, "床前明月光，疑是地上霜")
    assert allowed_tokens(constraint, tokenizer, second) == {"。"}


def test_only_single_chinese_characters_inside_a_line(tokenizer):
    constraint = PoemConstraint(tokenizer, PoemFormat())
    allowed = allowed_tokens(constraint, tokenizer, write(constraint, tokenizer, "床前"))
    assert allowed == set(CHARACTERS)
    assert any(t.startswith("##") for t in tokenizer.get_vocab())  # the vocabulary has pieces too
    assert not allowed & {"[UNK]", "[EOS]", "[SEP]", "，", "。", "：", "red"}


def test_the_first_line_chooses_the_length(tokenizer):
    constraint = PoemConstraint(tokenizer, PoemFormat())
    five = write(constraint, tokenizer, "床前明月光")
    assert allowed_tokens(constraint, tokenizer, five) == set(CHARACTERS) | {"，"}
    seven = write(constraint, tokenizer, "床前明月光疑是")
    assert allowed_tokens(constraint, tokenizer, seven) == {"，"}
    held = write(constraint, tokenizer, "床前明月光，疑是地上霜")
    assert held.line_chars == 5
    assert allowed_tokens(constraint, tokenizer, held) == {"。"}
    with pytest.raises(ValueError, match="breaks the poem format"):
        constraint.advance(write(constraint, tokenizer, "床前明月光，疑是地上"), tokenizer.token_to_id("，"))


def test_eos_only_after_an_even_number_of_complete_lines_from_four(tokenizer):
    constraint = PoemConstraint(tokenizer, PoemFormat())
    state, eos_after = constraint.start(), []
    for couplet in range(8):
        for line, end in (("床前明月光", "，"), ("疑是地上霜", "。")):
            state = write(constraint, tokenizer, line + end, state)
            eos_after.append("[EOS]" in allowed_tokens(constraint, tokenizer, state))
    assert eos_after == [lines >= 4 and lines % 2 == 0 for lines in range(1, 17)]


def test_at_max_lines_only_eos(tokenizer):
    for fmt, lines in ((PoemFormat(), 16), (PoemFormat(max_lines=7), 6),
                       (PoemFormat(n_lines=6), 6)):
        constraint = PoemConstraint(tokenizer, fmt)
        state = write(constraint, tokenizer, "床前明月光，疑是地上霜。" * (lines // 2))
        assert allowed_tokens(constraint, tokenizer, state) == {"[EOS]"}
        finished = constraint.advance(state, tokenizer.token_to_id("[EOS]"))
        assert finished.finished and allowed_tokens(constraint, tokenizer, finished) == {"[EOS]"}


def test_batched_mask_stacks_the_states(tokenizer):
    constraint = PoemConstraint(tokenizer, PoemFormat(), vocab_size=tokenizer.get_vocab_size() + 5)
    states = [constraint.start(), write(constraint, tokenizer, "床前明月光")]
    mask = constraint.mask(states)
    assert mask.shape == (2, tokenizer.get_vocab_size() + 5) and mask.dtype == torch.bool
    assert torch.equal(mask[1], constraint.allowed(states[1]))
    assert not mask[:, tokenizer.get_vocab_size():].any()


def test_a_tokenizer_without_the_full_stop_is_refused():
    with pytest.raises(ValueError, match="lacks the tokens \\['。'\\]"):
        PoemConstraint(train(punctuation="，"), PoemFormat())


# --- constrained generation -----------------------------------------------------------------

TITLES = ["静夜思", "春晓", "a red shirt 明月"]


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**31 - 1),
    line_chars=st.sampled_from([None, 5, 7]),
    n_lines=st.sampled_from([None, 4, 8, 16]),
    strategy=st.sampled_from(["top_k", "top_p"]),
)
def test_every_generated_poem_is_valid(model, tokenizer, seed, line_chars, n_lines, strategy):
    fmt = PoemFormat(line_chars=line_chars, n_lines=n_lines)
    sampling = Sampling(strategy=strategy, top_k=5, top_p=0.8, temperature=1.5)
    poems = generate_poems(model, tokenizer, SPECIAL, TITLES, fmt, sampling, seed=seed)
    assert len(poems) == len(TITLES)
    for poem in poems:
        assert check_poem(poem, fmt) == [], poem


def test_generation_is_seeded_and_greedy_is_valid(model, tokenizer):
    fmt = PoemFormat(line_chars=7)
    first = generate_poems(model, tokenizer, SPECIAL, TITLES, fmt, seed=3)
    assert first == generate_poems(model, tokenizer, SPECIAL, TITLES, fmt, seed=3)
    greedy = generate_poems(model, tokenizer, SPECIAL, TITLES[:1], PoemFormat(), Sampling())
    assert check_poem(greedy[0], PoemFormat()) == []


def test_a_poem_that_cannot_fit_the_positions_is_refused(model, tokenizer):
    short = M6Model(model.config.model_copy(update={"max_positions": 64}))
    with pytest.raises(ValueError, match="max_positions=64"):
        generate_poems(short, tokenizer, SPECIAL, TITLES, PoemFormat())
    # 8 lines of 5: 49 tokens after a title of a few tokens fit
    fits = PoemFormat(line_chars=5, max_lines=8)
    assert len(generate_poems(short, tokenizer, SPECIAL, ["春晓"], fits)) == 1
