"""Which top-k for the paper's text-to-image sampling (§4.1 names top-k sampling, not k)?
Chosen on validation prompts, never on the evaluation's.

    .venv/bin/python benchmarks/t2i_top_k.py [--top-k 8 16 32 64 128] [--prompts 120] [--samples 4]

Uses the finetuned model, VQGAN and attribute judge of `kedro run --env=local` (finetune_t2i).
The validation prompts are the held-out pairs *after* the first `evaluation.n_prompts` that the
pipeline's evaluation reads, so the choice never sees the reported figure's prompts. Every k
samples the same prompts with the same seed; the judge reads colour, category and pattern, and
the mean pairwise pixel distance across samples says what diversity each k gives up.
Writes benchmarks/results/t2i_top_k.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RESULTS = ROOT / "benchmarks" / "results" / "t2i_top_k.json"


def catalog_inputs():
    """(job, tokenizer, codes manifest, vqgan card, t2i card, judge) as `kedro run --env=local` has them."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(ROOT)
    from pipelines.finetune_t2i.nodes import parse_job  # the stage's own job: pretrained model, precision

    with KedroSession.create(project_path=ROOT, env="local") as session:
        context = session.load_context()
        catalog = context.catalog
        manifest = catalog.load("image_codes_manifest")
        job = parse_job(context.params["finetune_t2i"], catalog.load("pretrain_base.model_card"), manifest)
        return (job, catalog.load("tokenizer"), manifest, catalog.load("vqgan_card"),
                catalog.load("t2i_card"), catalog.load("attribute_classifier"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top-k", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--prompts", type=int, default=120, help="validation prompts (at most)")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from record import header
    from m6_pipeline.model.pretrained import load_pretrained
    from m6_pipeline.pretraining.tasks import SpecialTokens
    from m6_pipeline.tasks.t2i.classifier import accuracy, predict
    from m6_pipeline.tasks.t2i.data import load_code_records, split_records
    from m6_pipeline.tasks.t2i.evaluate import diversity, generate_images
    from m6_pipeline.vqgan import load_vqgan

    torch.set_num_threads(args.threads)
    job, tokenizer, manifest, vqgan_card, t2i_card, judge = catalog_inputs()
    split = split_records(load_code_records(manifest["codes_dir"], tokenizer, job.data.max_prompt_tokens), job.data)
    labelled = [r for r in split.held_out if r.attributes is not None]
    validation = labelled[job.evaluation.n_prompts : job.evaluation.n_prompts + args.prompts]
    if len(validation) < 20:
        raise SystemExit(
            f"only {len(validation)} held-out prompts beyond the evaluation's {job.evaluation.n_prompts}: "
            "too few to choose k; lower evaluation.n_prompts or add pairs"
        )
    model, _ = load_pretrained(Path(t2i_card["model_dir"]))
    vqgan = load_vqgan(Path(vqgan_card["model_dir"]))
    special = SpecialTokens.of(tokenizer)
    precision = job.training.precision  # as the stage resolved `auto`
    attributes = [r.attributes for r in validation]
    rows = []
    for k in args.top_k:
        sampling = job.sampling.model_copy(update={"top_k": k, "samples_per_prompt": args.samples})
        start = time.perf_counter()
        images, codes = generate_images(model, vqgan, [r.prompt_ids for r in validation], special, sampling,
                                        args.seed, job.data.target_start, precision=precision)
        pred, _ = predict(judge, images.reshape(-1, *images.shape[2:]))
        row = {
            "top_k": k,
            "attribute_accuracy": accuracy(pred, [a for a in attributes for _ in range(args.samples)]),
            "diversity": diversity(images, codes),
            "seconds": round(time.perf_counter() - start, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    n_images = len(validation) * args.samples
    colour = [r["attribute_accuracy"]["colour"] for r in rows]
    result = {
        **header(),
        "n_validation_prompts": len(validation),
        "samples_per_prompt": args.samples,
        "precision": precision,
        "colour_standard_error": float(np.sqrt(np.mean(colour) * (1 - np.mean(colour)) / n_images)),
        "rows": rows,
        "note": "validation prompts: held-out pairs after the evaluation's first n_prompts",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
