"""Text-to-image decoding speed: codes/s with the KV cache against recomputing the whole
sequence every step (the peer), in one run, same model, prompts, sampling and seed.

    .venv/bin/python benchmarks/t2i_generation.py [--model-dir data/06_models/finetune_t2i/model]
        [--prompts 32] [--samples 4] [--repeats 3] [--threads 2]

With the finetuned model of `kedro run --pipeline=finetune_t2i` when it exists (its shape, its
64-code grid), else a randomly initialised model of the laptop shape (4 layers, d 256, 64
codes): decoding cost does not depend on the weights. Both paths must produce the same codes
(greedy check), so the ratio compares equal work. Writes benchmarks/results/t2i_generation.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from record import header  # noqa: E402
from m6_pipeline.model import M6Config, M6Model  # noqa: E402
from m6_pipeline.model.pretrained import load_pretrained  # noqa: E402
from m6_pipeline.pretraining.tasks import SpecialTokens  # noqa: E402
from m6_pipeline.tasks.t2i.config import T2ISampling  # noqa: E402
from m6_pipeline.tasks.t2i.generate import generate_codes  # noqa: E402

SPECIAL = SpecialTokens(pad=0, sep=3, mask=4, bos=5, eos=6)


def model_and_codes(model_dir: Path) -> tuple[M6Model, int, str]:
    card_path = model_dir / "model_card.json"
    if card_path.exists():
        model, card = load_pretrained(model_dir)
        return model, int(card["n_codes"]), str(model_dir)
    config = M6Config.of_size("base", n_layers=4, d_model=256, n_heads=4, vocab_size=6000, max_positions=160,
                              n_patches=16, d_patch_feature=128, dropout=0.0, n_image_codes=256)
    torch.manual_seed(0)
    return M6Model(config).eval(), 64, "random init, laptop shape"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "data/06_models/finetune_t2i/model")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/t2i_generation.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, n_codes, source = model_and_codes(args.model_dir)
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(10, 1000, (args.prompt_tokens,), generator=generator).tolist()
               for _ in range(args.prompts)]

    greedy = T2ISampling(top_k=1, samples_per_prompt=1)
    cached = generate_codes(model, prompts[:4], n_codes, SPECIAL, greedy, use_cache=True).codes
    recomputed = generate_codes(model, prompts[:4], n_codes, SPECIAL, greedy, use_cache=False).codes
    if not torch.equal(cached, recomputed):
        sys.exit("cached and recomputed decoding disagree: the comparison would not be of equal work")

    sampling = T2ISampling(top_k=64, samples_per_prompt=args.samples)
    times: dict[str, list[float]] = {"kv_cache": [], "recompute": []}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        for name, use_cache in (("kv_cache", True), ("recompute", False)):
            started = time.perf_counter()
            generate_codes(model, prompts, n_codes, SPECIAL, sampling, torch.Generator().manual_seed(1),
                           use_cache=use_cache)
            times[name].append(time.perf_counter() - started)
    total_codes = args.prompts * args.samples * n_codes
    result = {
        **header(),
        "model": source,
        "n_layers": model.config.n_layers, "d_model": model.config.d_model,
        "codes_per_image": n_codes, "images": args.prompts * args.samples, "prompt_tokens": args.prompt_tokens,
        "threads": args.threads,
        "codes_per_s": {k: total_codes / statistics.median(v) for k, v in times.items()},
        "seconds_median": {k: statistics.median(v) for k, v in times.items()},
    }
    result["kv_cache_speedup"] = result["codes_per_s"]["kv_cache"] / result["codes_per_s"]["recompute"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
