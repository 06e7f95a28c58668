"""ColossalAI 0.5.0 imports beside torch 2.13 (installed with --no-deps, see the Makefile) and its
Booster trains with TorchDDPPlugin on CPU: two gloo ranks, different data, identical weights
after each step (gradients were all-reduced) and a loss that falls.

The ranks run in a fresh interpreter (not under pytest, which may hold a Ray session) and meet
through a file store, so no TCP port can be taken from under them.
"""

import json
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent('''
    import json, sys, traceback
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp


    def train(rank, world, store, out):
        try:
            import warnings
            warnings.filterwarnings("ignore")
            from colossalai.booster import Booster
            from colossalai.booster.plugin import TorchDDPPlugin

            dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 1))
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
            booster = Booster(plugin=TorchDDPPlugin())
            model, optimizer, criterion, _, _ = booster.boost(model, optimizer, torch.nn.MSELoss())
            gen = torch.Generator().manual_seed(100 + rank)  # each rank sees its own data
            w_true = torch.linspace(-1.0, 1.0, 8)
            losses = []
            for _ in range(60):
                x = torch.randn(32, 8, generator=gen)
                loss = criterion(model(x).squeeze(-1), x @ w_true)
                booster.backward(loss, optimizer)
                optimizer.step()
                optimizer.zero_grad()
                losses.append(loss.item())
            weights = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
            out.put({"rank": rank, "first": losses[0], "last": losses[-1], "weights": weights})
            dist.destroy_process_group()
        except BaseException:
            out.put({"rank": rank, "error": traceback.format_exc()})
            raise


    if __name__ == "__main__":
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=train, args=(r, 2, sys.argv[1], out)) for r in range(2)]
        for p in procs:
            p.start()
        results = sorted((out.get(timeout=240) for _ in procs), key=lambda r: r["rank"])
        for p in procs:
            p.join(timeout=60)
        print(json.dumps({"results": results, "exitcodes": [p.exitcode for p in procs]}))
''')


def test_torch_ddp_plugin_trains_on_cpu_with_two_gloo_ranks(tmp_path):
    import colossalai
    import torch

    assert colossalai.__version__ == "0.5.0"
    assert torch.__version__.startswith("2.13.0")
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "store")], capture_output=True,
                          check=False, text=True, timeout=400, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    errors = [r["error"] for r in run["results"] if "error" in r]
    assert not errors, "a DDP rank failed:\n" + "\n".join(errors)
    assert run["exitcodes"] == [0, 0]
    r0, r1 = run["results"]
    assert torch.allclose(torch.tensor(r0["weights"]), torch.tensor(r1["weights"])), \
        "DDP ranks diverged: gradients were not all-reduced"
    assert r0["last"] < r0["first"] / 5 and r1["last"] < r1["first"] / 5
