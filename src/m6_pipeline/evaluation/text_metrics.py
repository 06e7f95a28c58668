"""Automatic metrics for generated Chinese text, scored on characters (§4.2-4.6).

Chinese has no spaces between words, and the paper's tasks (image captioning, question
answering, poem and product-description generation) are compared on characters, so every
metric here first turns a string into its non-space characters. An ASCII letter or digit is
one character like any other ("T恤" is `["T", "恤"]`); no word segmenter is involved, which keeps
the scores reproducible without a dictionary.

- `bleu4`: corpus BLEU-4 from torchmetrics on space-joined characters.
- `rouge_l`, `cider_d`: written out here after coco-caption's `pycocoevalcap` (the reference
  implementation the captioning literature reports), because torchmetrics has no CIDEr-D and
  its ROUGE-L is not coco's multi-reference variant. Both follow coco line for line, quirks
  included, so our numbers are comparable with published ones.
- `distinct_n`: the diversity ratio used for open-ended generation.

Every corpus metric takes `hypotheses: list[str]` (one generated text per example) and
`references: list[list[str]]` (one or more reference texts per example, same order).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from torchmetrics.functional.text import bleu_score

NGram = tuple[str, ...]

ROUGE_BETA = 1.2  # coco-caption's weight of recall over precision ("after discussion with Hovy")
CIDER_MAX_N = 4
CIDER_SIGMA = 6.0  # standard deviation, in tokens, of CIDEr-D's Gaussian length penalty


def characters(text: str) -> list[str]:
    """The tokens every metric scores: the characters of `text` with all whitespace dropped."""
    return [ch for ch in text if not ch.isspace()]


def _ngrams(tokens: Sequence[str], n: int) -> list[NGram]:
    """All contiguous n-grams of `tokens`, in order (none when `len(tokens) < n`)."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _check_corpus(
    metric: str, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[list[list[str]], list[list[list[str]]]]:
    """Validate a scoring call and return (hypothesis characters, reference characters).

    Raises ValueError when the corpus is empty, the two lists differ in length, an example has
    no reference, or a reference has no characters (a recall or length against an empty
    reference is undefined). An empty *hypothesis* is allowed: a model may generate nothing,
    and it simply scores 0.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{metric}: {len(hypotheses)} hypotheses but {len(references)} reference lists; "
            "pass one list of references per hypothesis, in the same order"
        )
    if not hypotheses:
        raise ValueError(f"{metric}: no hypotheses to score; the corpus is empty")
    hyp_chars = [characters(h) for h in hypotheses]
    ref_chars: list[list[list[str]]] = []
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise ValueError(
                f"{metric}: references[{i}] is a string, not a list of strings; "
                f"wrap it as [{refs!r}]"
            )
        if len(refs) == 0:
            raise ValueError(f"{metric}: references[{i}] is empty; every example needs a reference")
        chars = [characters(r) for r in refs]
        for j, c in enumerate(chars):
            if not c:
                raise ValueError(
                    f"{metric}: references[{i}][{j}] has no characters; drop or fix that reference"
                )
        ref_chars.append(chars)
    return hyp_chars, ref_chars


def bleu4(hypotheses: list[str], references: list[list[str]]) -> float:
    """Corpus BLEU-4 on characters, in [0, 1] (Papineni et al. 2002).

    Clipped n-gram matches and hypothesis n-grams are summed over the corpus for n = 1..4, the
    geometric mean of the four precisions is taken with uniform weights and no smoothing (so a
    corpus without a single matching 4-gram scores 0), and one brevity penalty is applied from
    the corpus's hypothesis length and, per example, the reference length closest to its
    hypothesis (the first such reference on a tie).
    """
    hyp_chars, ref_chars = _check_corpus("bleu4", hypotheses, references)
    preds = [" ".join(h) for h in hyp_chars]
    target = [[" ".join(r) for r in refs] for refs in ref_chars]
    return float(bleu_score(preds, target, n_gram=4, smooth=False))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (one DP row, O(len a·len b))."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j - 1] of the previous row
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(above, row[j - 1])
            diagonal = above
    return row[-1]


def _rouge_l_one(hypothesis: list[str], references: list[list[str]]) -> float:
    """coco-caption's `Rouge.calc_score`: F-measure of the *best* precision and the *best*
    recall over the references (they may come from different references)."""
    if not hypothesis:
        return 0.0
    lcs = [_lcs_length(ref, hypothesis) for ref in references]
    precision = max(m / len(hypothesis) for m in lcs)
    recall = max(m / len(ref) for m, ref in zip(lcs, references))
    if precision == 0 or recall == 0:
        return 0.0
    beta2 = ROUGE_BETA**2
    return (1 + beta2) * precision * recall / (recall + beta2 * precision)


def rouge_l(hypotheses: list[str], references: list[list[str]]) -> float:
    """ROUGE-L on characters as coco-caption computes it, in [0, 1]: per hypothesis the LCS
    F-measure (beta = 1.2) of the highest precision and highest recall over its references,
    then the mean over hypotheses."""
    hyp_chars, ref_chars = _check_corpus("rouge_l", hypotheses, references)
    scores = [_rouge_l_one(h, refs) for h, refs in zip(hyp_chars, ref_chars)]
    return sum(scores) / len(scores)


class _TfIdf:
    """One text as CIDEr's tf-idf vectors: per n (1..4) a map n-gram -> count · idf, its L2
    norm, and coco's length for the length penalty."""

    def __init__(self, tokens: list[str], idf: dict[NGram, float], log_n_docs: float) -> None:
        self.vectors: list[dict[NGram, float]] = []
        self.norms: list[float] = []
        for n in range(1, CIDER_MAX_N + 1):
            # an n-gram no reference contains gets df 1, i.e. idf log(N) (coco: log(max(1, df)))
            vec = {g: c * idf.get(g, log_n_docs) for g, c in Counter(_ngrams(tokens, n)).items()}
            self.vectors.append(vec)
            self.norms.append(math.sqrt(sum(v * v for v in vec.values())))
        # coco counts the *bigrams* as the length (`if n == 1` on a 0-based n-gram index);
        # for texts of 1+ tokens the difference of two lengths is the same as with tokens.
        self.length = max(0, len(tokens) - 1)


def _cider_similarity(hyp: _TfIdf, ref: _TfIdf) -> float:
    """Mean over n of the clipped cosine similarity, times the Gaussian length penalty."""
    delta = hyp.length - ref.length
    penalty = math.exp(-(delta**2) / (2 * CIDER_SIGMA**2))
    total = 0.0
    for vh, vr, nh, nr in zip(hyp.vectors, ref.vectors, hyp.norms, ref.norms):
        if nh == 0 or nr == 0:  # no n-grams of this order on one side: contributes 0
            continue
        # clipping (the "-D"): a hypothesis n-gram counts at most as often as in the reference
        dot = sum(min(w, vr.get(g, 0.0)) * vr.get(g, 0.0) for g, w in vh.items())
        total += dot / (nh * nr) * penalty
    return total / CIDER_MAX_N


def cider_d(hypotheses: list[str], references: list[list[str]]) -> float:
    """CIDEr-D on characters as coco-caption computes it (Vedantam et al. 2015), >= 0.

    Document frequencies come from this corpus's references (an n-gram counts once per
    example however many of its references contain it); idf is `log(N) - log(max(1, df))`
    with N the number of examples. For each example: the mean over n = 1..4 of the cosine
    similarity of clipped tf-idf vectors, damped by `exp(-Δlen² / 2σ²)` with σ = 6, averaged
    over its references and times 10; the corpus score is the mean over examples.

    With a single example N = 1 makes every idf 0, so the score is 0: CIDEr is a corpus metric.
    An exact copy of a short reference scores below 10 since orders it lacks (a 3-character
    text has no 4-grams) add 0 to the mean over n, as in coco.
    """
    hyp_chars, ref_chars = _check_corpus("cider_d", hypotheses, references)
    document_frequency: Counter[NGram] = Counter()
    for refs in ref_chars:
        document_frequency.update(
            {g for r in refs for n in range(1, CIDER_MAX_N + 1) for g in _ngrams(r, n)}
        )
    log_n_docs = math.log(len(ref_chars))
    idf = {g: log_n_docs - math.log(df) for g, df in document_frequency.items()}

    scores = []
    for hyp, refs in zip(hyp_chars, ref_chars):
        hyp_vec = _TfIdf(hyp, idf, log_n_docs)
        sims = [_cider_similarity(hyp_vec, _TfIdf(r, idf, log_n_docs)) for r in refs]
        scores.append(10.0 * sum(sims) / len(refs))
    return sum(scores) / len(scores)


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n on characters, in [0, 1]: the number of different n-grams over all `texts`
    divided by the number of n-grams (n-grams never span two texts).

    Returns 0.0 when no text is n characters long (nothing to be diverse about); raises
    ValueError for n < 1.
    """
    if n < 1:
        raise ValueError(f"distinct_n: n must be at least 1, got {n}")
    grams = [g for t in texts for g in _ngrams(characters(t), n)]
    return len(set(grams)) / len(grams) if grams else 0.0
