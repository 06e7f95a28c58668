"""Text-to-image examples (§4.1): the text is the bidirectional prefix, the image's VQGAN codes
are the causal target. A sequence is

    [prompt tokens] [SEP] | [BOS] code_1 ... code_n

with code c fed as token `code_offset + c`; the loss falls on the n codes only. [BOS] and the
codes take the positions target_start, target_start + 1, ... whatever the prompt's length, so a
short prompt does not shift the image grid against what training taught. Records come
from the codes Parquet of the `vqgan` pipeline; held-out pairs (by id hash) and the attribute
combinations kept out of training are what the evaluation draws its prompts from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import torch
from tokenizers import Tokenizer

from m6_pipeline.data.parquet_stream import is_held_out, parquet_files
from m6_pipeline.pretraining.tasks import Example, SpecialTokens, collate
from m6_pipeline.tasks.t2i.attributes import matches, stated_attributes
from m6_pipeline.tasks.t2i.config import T2IData


@dataclass(frozen=True)
class T2IRecord:
    id: str
    text: str
    prompt_ids: list[int]
    codes: np.ndarray  # [n_codes] uint16, row-major
    attributes: dict[str, str] | None


@dataclass(frozen=True)
class T2ISplit:
    train: list[T2IRecord]
    held_out: list[T2IRecord]  # by id hash: prompts never trained on
    unseen_combination: list[T2IRecord]  # attribute combinations kept out of training

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in vars(self).items()}


def load_code_records(codes_dir, tokenizer: Tokenizer, max_prompt_tokens: int) -> list[T2IRecord]:
    """Every row of the `vqgan` pipeline's codes Parquet with its tokenized prompt."""
    records = []
    for path in parquet_files(codes_dir):
        table = pq.read_table(path, columns=["id", "text", "codes"])
        texts = table.column("text").to_pylist()
        encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        for record_id, text, codes, encoding in zip(
            table.column("id").to_pylist(), texts, table.column("codes").to_pylist(), encodings
        ):
            records.append(
                T2IRecord(
                    id=record_id,
                    text=text,
                    prompt_ids=encoding.ids[:max_prompt_tokens],
                    codes=np.asarray(codes, dtype=np.uint16),
                    attributes=stated_attributes(text),
                )
            )
    if not records:
        raise ValueError(f"no image codes under {codes_dir}: run `kedro run --pipeline=vqgan` first")
    return records


def split_records(records: list[T2IRecord], config: T2IData) -> T2ISplit:
    train, held_out, unseen = [], [], []
    for record in records:
        if any(matches(record.attributes, c) for c in config.held_out_combinations):
            unseen.append(record)
        elif is_held_out(record.id, config.held_out_fraction):
            held_out.append(record)
        else:
            train.append(record)
    if not train or not held_out:
        raise ValueError(
            f"t2i split left {len(train)} training and {len(held_out)} held-out pairs; "
            "more pairs are needed, or a different held_out_fraction"
        )
    return T2ISplit(train, held_out, unseen)


def t2i_example(
    prompt_ids: list[int], codes: np.ndarray | None, special: SpecialTokens, code_offset: int
) -> Example:
    """One example; codes None gives the prefix and [BOS] alone (for generation)."""
    target = [special.bos]
    if codes is not None:
        target += (codes.astype(np.int64) + code_offset).tolist()
    return Example(prefix_text=[*prompt_ids, special.sep], target=target, patch_features=None)


def t2i_batch(examples: list[Example], pad_id: int, target_start: int) -> dict[str, torch.Tensor]:
    """Collated examples with `position_ids` that pin [BOS] to `target_start` (padding after a
    sequence takes position 0: it is masked anyway)."""
    batch = collate(examples, pad_id)
    seq_len = batch["input_ids"].shape[1]
    positions = torch.arange(seq_len).expand(len(examples), -1).clone()
    lengths = batch["lengths"].tolist()
    for row, prefix_length in enumerate(batch["prefix_lengths"].tolist()):
        if prefix_length > target_start:
            raise ValueError(
                f"a prompt of {prefix_length - 1} tokens does not fit before position {target_start}; "
                "truncate prompts to data.max_prompt_tokens"
            )
        positions[row, prefix_length:] = target_start + torch.arange(seq_len - prefix_length)
        positions[row, lengths[row]:] = 0
    batch["position_ids"] = positions
    return batch


def training_batch(
    records: list[T2IRecord],
    step: int,
    batch_size: int,
    seed: int,
    prompt_dropout: float,
    special: SpecialTokens,
    code_offset: int,
    target_start: int,
) -> dict[str, torch.Tensor]:
    """The batch of `step`: a function of (seed, step) alone, so a resumed run sees the same
    batches. A `prompt_dropout` share of prompts is emptied (the unconditional model)."""
    rng = np.random.default_rng([seed, step])
    picks = rng.integers(0, len(records), batch_size)
    dropped = rng.random(batch_size) < prompt_dropout
    examples = [
        t2i_example([] if drop else records[i].prompt_ids, records[i].codes, special, code_offset)
        for i, drop in zip(picks, dropped)
    ]
    return t2i_batch(examples, special.pad, target_start)
