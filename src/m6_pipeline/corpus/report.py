"""The corpus report: per-source accounting that balances, and a Table-1-style summary.

`corpus_report.json` is a contract: `{"sources": {name: {"input", "kept", "dropped": {reason:
n}}}}` with input == kept + sum(dropped) for every source, checked here before it is written.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np


class UnbalancedReportError(RuntimeError):
    pass


@dataclass
class ModalityStats:
    """Accumulates Table 1's columns for one (source, modality)."""

    passages: int = 0
    characters: int = 0
    text_bytes: int = 0
    images: int = 0
    image_bytes: int = 0

    def add(self, passages: int, characters: int, text_bytes: int, images: int = 0, image_bytes: int = 0):
        self.passages += passages
        self.characters += characters
        self.text_bytes += text_bytes
        self.images += images
        self.image_bytes += image_bytes


@dataclass
class CorpusAccounts:
    inputs: Counter = field(default_factory=Counter)  # (source, modality) -> records in
    kept: Counter = field(default_factory=Counter)
    dropped: dict = field(default_factory=lambda: defaultdict(Counter))  # (source, modality) -> reason -> n
    stats: dict = field(default_factory=lambda: defaultdict(ModalityStats))
    perplexity_all: list = field(default_factory=list)

    def count_inputs(self, modality: str, batches) -> None:
        """Every annotated record of `modality` is one input (pandas batches with `source`)."""
        for b in batches:
            self.inputs.update({(s, modality): n for s, n in b["source"].value_counts().items()})

    def count_kept(self, modality: str, batches) -> None:
        """Kept records and Table 1's columns (batches with `source`, `text`, pairs: `image`)."""
        for b in batches:
            self.kept.update({(s, modality): n for s, n in b["source"].value_counts().items()})
            chars = b["text"].str.len()
            nbytes = b["text"].map(lambda t: len(t.encode("utf-8")))
            img_bytes = b["image"].map(len) if "image" in b else None
            for s, idx in b.groupby("source").groups.items():
                self.stats[(s, modality)].add(
                    len(idx), int(chars[idx].sum()), int(nbytes[idx].sum()),
                    images=len(idx) if img_bytes is not None else 0,
                    image_bytes=int(img_bytes[idx].sum()) if img_bytes is not None else 0)

    def count_dropped(self, modality: str, batches) -> None:
        """Quarantined records by reason (batches with `source`, `reason`)."""
        for b in batches:
            for (s, r), n in b.groupby(["source", "reason"]).size().items():
                self.dropped[(s, modality)][r] += int(n)

    def add_perplexities(self, batches) -> None:
        """The distribution over every text record that reached the LM (kept or dropped by it)."""
        for b in batches:
            scored = b["reason"].isna() | (b["reason"] == "perplexity")
            self.perplexity_all.append(b.loc[scored, "perplexity"].to_numpy(dtype=float))

    def report(self, perplexity_threshold: float | None = None) -> dict:
        sources: dict[str, dict] = {}
        problems = []
        for key in sorted(set(self.inputs) | set(self.kept) | set(self.dropped)):
            source, modality = key
            dropped = dict(sorted(self.dropped[key].items()))
            entry = {"modality": modality, "input": int(self.inputs[key]), "kept": int(self.kept[key]),
                     "dropped": {k: int(v) for k, v in dropped.items()}}
            if entry["input"] != entry["kept"] + sum(entry["dropped"].values()):
                problems.append(f"{source}/{modality}: input {entry['input']} != kept {entry['kept']}"
                                f" + dropped {sum(entry['dropped'].values())}")
            name = source if (source, "text" if modality == "pairs" else "pairs") not in self.inputs \
                else f"{source}/{modality}"
            sources[name] = entry
        if problems:
            raise UnbalancedReportError("records were lost between input and outputs: " + "; ".join(problems))
        totals = {"input": sum(e["input"] for e in sources.values()),
                  "kept": sum(e["kept"] for e in sources.values())}
        totals["dropped"] = totals["input"] - totals["kept"]
        report = {"sources": sources, "totals": totals, "table1": self.table1_rows()}
        if self.perplexity_all:
            report["perplexity"] = perplexity_summary(np.concatenate(self.perplexity_all),
                                                      perplexity_threshold)
        return report

    def table1_rows(self) -> list[dict]:
        rows = []
        for (source, modality), s in sorted(self.stats.items()):
            rows.append({
                "source": source, "modality": "Image & Text" if modality == "pairs" else "Plain-text",
                "images": s.images, "tokens": s.characters, "passages": s.passages,
                "avg_length": round(s.characters / s.passages, 1) if s.passages else 0.0,
                "image_size_mb": round(s.image_bytes / 2**20, 3), "text_size_mb": round(s.text_bytes / 2**20, 3),
            })
        return rows


def perplexity_summary(values: np.ndarray, threshold: float | None) -> dict:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"n": 0}
    qs = [1, 5, 25, 50, 75, 95, 99]
    out = {"n": int(len(values)), "mean": float(values.mean()),
           "percentiles": {f"p{q}": float(v) for q, v in zip(qs, np.percentile(values, qs))}}
    if threshold is not None:
        out["threshold"] = threshold
        out["share_above_threshold"] = float((values > threshold).mean())
    return out


def table1_markdown(report: dict) -> str:
    """The Table-1-style summary (tokens are characters: the M6 tokenizer splits every Chinese
    character into its own token), then the accounting per source."""
    lines = ["# Corpus statistics (after cleaning)", "",
             "| Source | Modality | Images | Tokens | Passages | Avg. length | Image size (MB) | Text size (MB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["table1"]:
        lines.append(f"| {r['source']} | {r['modality']} | {r['images'] or '-'} | {r['tokens']:,} | "
                     f"{r['passages']:,} | {r['avg_length']} | {r['image_size_mb'] or '-'} | {r['text_size_mb']} |")
    lines += ["", "Tokens are characters (the M6 WordPiece tokenizer gives every Chinese character its own token).",
              "", "# Accounting: every input record is kept or quarantined with a reason", "",
              "| Source | Modality | Input | Kept | Dropped | Top reasons |", "|---|---|---:|---:|---:|---|"]
    for name, e in report["sources"].items():
        top = ", ".join(f"{k} {v:,}" for k, v in sorted(e["dropped"].items(), key=lambda kv: -kv[1])[:4])
        lines.append(f"| {name} | {e['modality']} | {e['input']:,} | {e['kept']:,} | "
                     f"{e['input'] - e['kept']:,} | {top} |")
    if "perplexity" in report and report["perplexity"].get("n"):
        p = report["perplexity"]
        pct = ", ".join(f"{k} {v:.0f}" for k, v in p["percentiles"].items())
        lines += ["", f"Perplexity (character bigram LM) of rule-clean text: {pct}; threshold "
                      f"{p.get('threshold')}, {100 * p.get('share_above_threshold', 0):.2f}% above it."]
    return "\n".join(lines) + "\n"


def corpus_figure(report: dict, perplexities: np.ndarray | None):
    """Kept/dropped per source (stacked by reason) and the perplexity histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1.2, 1], "wspace": 0.45})
    names = list(report["sources"])
    reasons = sorted({r for e in report["sources"].values() for r in e["dropped"]})
    bottom = np.array([report["sources"][n]["kept"] for n in names], dtype=float)
    axes[0].barh(names, bottom, label="kept", color="#343a40")
    cmap = plt.get_cmap("tab20")
    for i, reason in enumerate(reasons):
        width = np.array([report["sources"][n]["dropped"].get(reason, 0) for n in names], dtype=float)
        axes[0].barh(names, width, left=bottom, label=reason, color=cmap(i % 20))
        bottom += width
    axes[0].set_xlabel("records")
    axes[0].set_title("Records per source: kept and dropped by reason")
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if perplexities is not None and len(perplexities):
        finite = perplexities[np.isfinite(perplexities)]
        axes[1].hist(np.log10(np.clip(finite, 1, None)), bins=60, color="#1c7ed6")
        threshold = report.get("perplexity", {}).get("threshold")
        if threshold:
            axes[1].axvline(np.log10(threshold), color="red", label=f"threshold {threshold:g}")
            axes[1].legend()
        axes[1].set_xlabel("log10 perplexity (character bigram LM)")
        axes[1].set_title("Perplexity of rule-clean text")
    return fig
