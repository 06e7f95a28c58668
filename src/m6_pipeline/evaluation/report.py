"""The evaluation report: every task's automatic metrics for the pretrained model and the
non-pretrained baseline, as Markdown tables in the paper's layout, with the paper's published
numbers beside them (clearly another dataset), and the human results once annotated."""

from __future__ import annotations

from m6_pipeline.evaluation import paper

VQA_TYPES = ["detection", "relation", "colour", "number", "pattern", "overall"]
MODELS = ("pretrained", "baseline")
CAPTION_MEASURES = ["bleu4", "rouge_l", "cider_d", "distinct_2", "mean_chars"]


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _paper(table: dict, unit: str) -> str:
    rows = [[name, *map(str, values)] for name, values in table["rows"].items()]  # as published
    return f"Paper ({unit}; their data, for reference only):\n\n" + _table(["model", *table["columns"]], rows)


def _not_run(task_metrics: dict) -> str:
    return "".join(f" Not run: {m} ({why})." for m, why in task_metrics.get("not_run", {}).items())


def collect(metrics: dict[str, dict]) -> dict:
    """The headline numbers per task and model, and whether pretraining won each automatic one."""
    vqa, cap, itm, qa, poem = (metrics[k] for k in ("vqa", "caption", "itm", "qa", "poem"))
    # a finetuned task's variant that its `variants` left out has no scores: its figures are None
    # (shown as –) and compared nowhere
    vqa_by, cap_by, itm_by = vqa["accuracy"], cap["scores"], itm["accuracy"]
    summary = {
        "vqa_accuracy": {m: {t: vqa_by[m].get(t, {}).get("accuracy") if m in vqa_by else None for t in VQA_TYPES}
                         for m in MODELS},
        "caption": {m: cap_by.get(m, dict.fromkeys(CAPTION_MEASURES)) for m in MODELS},
        "itm_accuracy": {m: itm_by[m]["accuracy"] if m in itm_by else None for m in MODELS},
        "qa": {m: qa["measures"][m] for m in MODELS},
        "poem": {m: {k: v for k, v in poem["measures"][m].items() if k != "violations"} for m in MODELS},
    }
    higher = {"vqa_overall": [summary["vqa_accuracy"][m]["overall"] for m in MODELS],
              "caption_bleu4": [summary["caption"][m]["bleu4"] for m in MODELS],
              "caption_rouge_l": [summary["caption"][m]["rouge_l"] for m in MODELS],
              "caption_cider_d": [summary["caption"][m]["cider_d"] for m in MODELS],
              "itm_accuracy": [summary["itm_accuracy"][m] for m in MODELS]}
    lower = {"qa_human_answer_nll": [summary["qa"][m].get("human_answer_nll") for m in MODELS],
             "poem_corpus_lm_perplexity": [summary["poem"][m]["corpus_lm_perplexity"] for m in MODELS]}
    wins = {k: v[0] > v[1] for k, v in higher.items() if None not in v}
    wins |= {k: v[0] < v[1] for k, v in lower.items() if None not in v}
    summary["pretrained_wins"] = wins
    summary["not_compared"] = sorted((higher | lower).keys() - wins.keys())
    summary["pretrained_wins_all"] = all(wins.values())
    return summary


def t2i_table(t2i: dict) -> str:
    """Text-to-image (§4.1): attribute accuracy of generated images by decoding variant, with the
    judge's ceilings (real images, VQGAN reconstructions) and chance."""
    attributes = ["colour", "category", "pattern"]
    rows = [[name, *[v["attribute_accuracy"][a] for a in attributes]] for name, v in t2i["variants"].items()]
    rows += [["real images (judge ceiling)", *[t2i["real_images"][a] for a in attributes]],
             ["VQGAN reconstructions", *[t2i["vqgan_reconstructions"][a] for a in attributes]],
             ["chance", *[t2i["chance"][a] for a in attributes]]]
    return _table(["images", *attributes], rows)


def markdown(summary: dict, metrics: dict[str, dict], human: dict | None, t2i: dict | None = None) -> str:
    out = ["# M6 downstream evaluation", "",
           "Pretrained: the pretrained M6 finetuned on the task. Baseline: the same architecture "
           "finetuned from its initialisation (the paper's non-pretrained baseline). QA and poems "
           "prompt the pretrained M6 without finetuning; their baseline is a token n-gram LM trained "
           "on the same pretraining text (no network, no images). Automatic metrics on this project's data.", ""]
    if t2i is not None:
        out += ["## Text-to-image (§4.1)", "", t2i_table(t2i),
                f"\nAttribute accuracy of images generated for {t2i['n_prompts']} held-out prompts, read by a "
                "classifier trained on real images (finetune_t2i's report has the rest). The paper shows "
                "samples only (Figures 4-7).", ""]
    out += ["## VQA (Table 5)", "", _table(["model", *VQA_TYPES],
            [[m, *[summary["vqa_accuracy"][m][t] for t in VQA_TYPES]] for m in MODELS]),
            f"\nExact-match accuracy on {metrics['vqa']['n_test']} test questions.{_not_run(metrics['vqa'])}\n", _paper(paper.TABLE5_FMIQA, "human-judged accuracy, %"), ""]
    out += ["## Image captioning (Table 6)", "", _table(["model", *CAPTION_MEASURES],
            [[m, *[summary["caption"][m][c] for c in CAPTION_MEASURES]] for m in MODELS]),
            f"\nCharacter-level metrics on {metrics['caption']['n_test']} test images.{_not_run(metrics['caption'])}\n",
            _paper(paper.TABLE6_IC, "human scores 0-5"), ""]
    out += ["## Image-text matching (Table 7)", "", _table(["model", "accuracy"],
            [[m, summary["itm_accuracy"][m]] for m in MODELS]),
            f"\nBalanced positives and substituted-query negatives, {metrics['itm']['n_test']} test pairs."
            + _not_run(metrics["itm"]) + "\n",
            _paper(paper.TABLE7_ITM, "accuracy, %"), ""]
    qa_cols = ["human_answer_nll", "corpus_lm_perplexity", "distinct_2", "mean_chars"]
    out += ["## Forum QA (§4.4)", "", _table(["model", *qa_cols],
            [[m, *[summary["qa"][m].get(c) for c in qa_cols]] for m in MODELS]),
            "\nhuman_answer_nll: nats per token of the human answers (lower is better); corpus_lm_perplexity: "
            "fluency of the generated answers by the corpus stage's character LM (lower is better).", ""]
    poem_cols = ["validity", "corpus_lm_perplexity", "distinct_2", "mean_chars"]
    out += ["## Poems under format constraints (§4.5)", "", _table(["model", *poem_cols],
            [[m, *[summary["poem"][m][c] for c in poem_cols]] for m in MODELS]),
            f"\n{metrics['poem']['n_titles']} titles; validity: share of poems meeting every constraint"
            + (" (1.0 by construction: both models sample under the format mask, so it measures the mask, "
               "not the model)" if metrics["poem"].get("validity_by_construction") else "") + ".", ""]
    wins = summary["pretrained_wins"]
    out += ["## Pretrained against baseline", "", _table(["metric", "pretrained better"],
            [[k, "yes" if v else "**no**"] for k, v in wins.items()]
            + [[k, "not compared (no figure for one of them)"] for k in summary["not_compared"]]), ""]
    out += ["## Human evaluation", ""]
    if not human or not human.get("n_annotations"):
        out.append("No annotations yet: the batch is in data/07_model_output/human_eval/ for the Streamlit app.")
    else:
        rows = [[task, model, criterion, s["mean"], s["low"], s["high"], s["n"]]
                for task, by_model in sorted(human["results"].items())
                for model, by_c in sorted(by_model.items()) for criterion, s in sorted(by_c.items())]
        out.append(_table(["task", "model", "criterion", "mean", "95% low", "95% high", "n"], rows))
        agreement = [[t, c, a] for t, by_c in sorted(human["agreement"].items()) for c, a in sorted(by_c.items())]
        out += ["", "Krippendorff's alpha (items with 2+ annotators):", "",
                _table(["task", "criterion", "alpha"], agreement)]
    return "\n".join(out) + "\n"
