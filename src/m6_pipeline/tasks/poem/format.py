"""The poem format of §4.5 and the state machine that enforces it token by token.

The constraints: at least 4 lines, an even number of lines, every line 5 or 7 Chinese characters
and all lines the same length, at most 16 lines. Lines end in punctuation as in 绝句/律诗:
"，" after odd lines, "。" after even lines, e.g. 床前明月光，疑是地上霜。举头望明月，低头思故乡。
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tokenizers import Tokenizer

from m6_pipeline.tokenization.wordpiece import CONTINUING_PREFIX, SPECIAL_TOKENS

COMMA, PERIOD = "，", "。"  # end of an odd line, end of an even line
LINE_LENGTHS = (5, 7)


class PoemFormat(BaseModel):
    """What a poem must look like. Line counts are in lines, lengths in Chinese characters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line_chars: Literal[5, 7] | None = Field(
        None, description="characters per line; None: the model picks 5 or 7 in the first line"
    )
    min_lines: int = Field(4, ge=2, description="fewest lines")
    max_lines: int = Field(16, ge=2, description="most lines")
    n_lines: int | None = Field(
        None, description="exact line count (even, in [min, max]); None: free"
    )

    @model_validator(mode="after")
    def _feasible(self) -> PoemFormat:
        if self.min_lines > self.max_lines:
            raise ValueError(
                f"poem format: min_lines={self.min_lines} > max_lines={self.max_lines}"
            )
        if self.longest < self.min_lines:
            raise ValueError(
                f"poem format: no even line count in [{self.min_lines}, {self.max_lines}]; "
                "widen the range"
            )
        if self.n_lines is not None and (
            self.n_lines % 2 or not self.min_lines <= self.n_lines <= self.max_lines
        ):
            raise ValueError(
                f"poem format: n_lines={self.n_lines} must be even and within "
                f"[{self.min_lines}, {self.max_lines}]"
            )
        return self

    @property
    def longest(self) -> int:
        """The most lines a poem can have: the largest even count <= max_lines (or n_lines)."""
        return self.n_lines if self.n_lines is not None else self.max_lines - self.max_lines % 2

    @property
    def max_poem_tokens(self) -> int:
        """Tokens of the longest poem, its [EOS] included: a step budget that always suffices."""
        return self.max_lines * ((self.line_chars or max(LINE_LENGTHS)) + 1) + 1


def is_chinese_character(text: str) -> bool:
    """One CJK Unified Ideograph (any block: URO, extension A, B, ...)."""
    return len(text) == 1 and unicodedata.name(text, "").startswith("CJK UNIFIED IDEOGRAPH")


_LINE = re.compile(rf"[^{COMMA}{PERIOD}]*[{COMMA}{PERIOD}]|[^{COMMA}{PERIOD}]+$")


def check_poem(text: str, fmt: PoemFormat) -> list[str]:
    """The ways `text` breaks `fmt`, one message each; an empty list means a valid poem.
    Whitespace between lines (a poem printed one couplet per row) is allowed."""
    lines = [line.strip() for line in _LINE.findall(text.strip())]
    lines = [line for line in lines if line]
    if not lines:
        return ["empty poem"]
    problems: list[str] = []
    lengths = []
    for number, line in enumerate(lines, start=1):
        expected = COMMA if number % 2 else PERIOD
        body, end = (line[:-1], line[-1]) if line[-1] in (COMMA, PERIOD) else (line, None)
        if end is None:
            problems.append(f"line {number} {line!r} does not end with {expected!r}")
        elif end != expected:
            problems.append(f"line {number} {line!r} ends with {end!r}, expected {expected!r}")
        other = sorted({c for c in body if not is_chinese_character(c)})
        if other:
            problems.append(f"line {number} {line!r} has non-Chinese characters {other}")
        lengths.append(len(body))
        if len(body) not in LINE_LENGTHS:
            problems.append(f"line {number} {line!r} has {len(body)} characters, not 5 or 7")
        elif fmt.line_chars is not None and len(body) != fmt.line_chars:
            problems.append(
                f"line {number} {line!r} has {len(body)} characters, not {fmt.line_chars}"
            )
    if len(set(lengths)) > 1:
        problems.append(f"lines have mixed lengths {sorted(set(lengths))}")
    n = len(lines)
    if n < fmt.min_lines:
        problems.append(f"{n} lines, fewer than {fmt.min_lines}")
    if n > fmt.max_lines:
        problems.append(f"{n} lines, more than {fmt.max_lines}")
    if n % 2:
        problems.append(f"{n} lines, an odd number")
    if fmt.n_lines is not None and n != fmt.n_lines and fmt.min_lines <= n <= fmt.max_lines:
        problems.append(f"{n} lines, not {fmt.n_lines}")
    return problems


@dataclass(frozen=True)
class PoemState:
    """Where a poem being written stands."""

    lines_done: int = 0  # complete lines, each closed by its punctuation
    chars_in_line: int = 0  # characters of the line being written
    line_chars: int | None = None  # the poem's line length once fixed (by the format or line 1)
    finished: bool = False  # [EOS] written


class PoemConstraint:
    """The tokens each state allows. Only four kinds of token are ever allowed: single Chinese
    characters (no `##` pieces, no multi-character tokens), "，", "。" and [EOS]; never [UNK],
    the other special tokens or anything else."""

    def __init__(
        self, tokenizer: Tokenizer, fmt: PoemFormat, vocab_size: int | None = None
    ) -> None:
        """vocab_size: width of the masks (the model's logits); the tokenizer's size if None."""
        size = tokenizer.get_vocab_size()
        self.vocab_size = size if vocab_size is None else vocab_size
        if self.vocab_size < size:
            raise ValueError(
                f"the model's vocabulary ({self.vocab_size}) is smaller than the tokenizer's "
                f"({size}): load the tokenizer the model was pretrained with"
            )
        self.fmt = fmt
        needed = (COMMA, PERIOD, SPECIAL_TOKENS[-1])
        missing = [t for t in needed if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(
                f"tokenizer lacks the tokens {missing} that poems need: train it on text that "
                "contains full-width Chinese punctuation (m6_pipeline.tokenization.train_wordpiece)"
            )
        self.comma = tokenizer.token_to_id(COMMA)
        self.period = tokenizer.token_to_id(PERIOD)
        self.eos = tokenizer.token_to_id(SPECIAL_TOKENS[-1])
        self.characters = torch.zeros(self.vocab_size, dtype=torch.bool)
        for token, i in tokenizer.get_vocab().items():
            if not token.startswith(CONTINUING_PREFIX) and is_chinese_character(token):
                self.characters[i] = True
        if not self.characters.any():
            raise ValueError("tokenizer has no single Chinese-character tokens; poems need them")
        self._masks: dict[tuple[bool, bool, bool, bool], torch.Tensor] = {}

    def start(self) -> PoemState:
        return PoemState(line_chars=self.fmt.line_chars)

    def allowed(self, state: PoemState) -> torch.Tensor:
        """BoolTensor [vocab]: the tokens that keep the poem on a valid path."""
        return self._mask(self._kinds(state)).clone()

    def mask(self, states: list[PoemState]) -> torch.Tensor:
        """BoolTensor [batch, vocab], one row of `allowed` per state."""
        return torch.stack([self._mask(self._kinds(s)) for s in states])

    def advance(self, state: PoemState, token: int) -> PoemState:
        """The state after writing `token`; raises if the state does not allow it."""
        char_ok, comma_ok, period_ok, eos_ok = self._kinds(state)
        if token == self.eos and eos_ok:
            return PoemState(state.lines_done, 0, state.line_chars, finished=True)
        if (token == self.comma and comma_ok) or (token == self.period and period_ok):
            return PoemState(state.lines_done + 1, 0, state.line_chars or state.chars_in_line)
        if char_ok and 0 <= token < self.vocab_size and bool(self.characters[token]):
            return PoemState(state.lines_done, state.chars_in_line + 1, state.line_chars)
        raise ValueError(f"token {token} breaks the poem format in state {state}")

    def _kinds(self, state: PoemState) -> tuple[bool, bool, bool, bool]:
        """(Chinese character, "，", "。", [EOS]) allowed in `state`."""
        if state.finished:
            return False, False, False, True  # a finished row keeps writing [EOS], ignored
        n, done = state.chars_in_line, state.lines_done
        if n == 0:
            if done % 2:  # after "，" the couplet goes on
                return True, False, False, False
            # lines come in pairs: a new couplet only if it fits
            more = done + 2 <= self.fmt.longest
            exact = self.fmt.n_lines is None or done == self.fmt.n_lines
            stop = done >= self.fmt.min_lines and exact
            return more, False, False, stop
        if state.line_chars is not None:
            full = n >= state.line_chars
            ends, more = full, not full
        else:  # the first line chooses its length: 5 may end or go on, 7 must end
            ends, more = n in LINE_LENGTHS, n < max(LINE_LENGTHS)
        odd_line = done % 2 == 0
        return more, ends and odd_line, ends and not odd_line, False

    def _mask(self, kinds: tuple[bool, bool, bool, bool]) -> torch.Tensor:
        if kinds not in self._masks:
            char, comma, period, eos = kinds
            mask = self.characters.clone() if char else torch.zeros_like(self.characters)
            mask[self.comma] = comma
            mask[self.period] = period
            mask[self.eos] = eos
            self._masks[kinds] = mask
        return self._masks[kinds]
