"""ColossalAI 0.5.0 imports beside torch 2.13 (installed with --no-deps, see the Makefile) and its
Booster trains with TorchDDPPlugin on CPU: two gloo ranks, different data, identical weights
after each step (gradients were all-reduced) and a loss that falls."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out):
    import warnings

    warnings.filterwarnings("ignore")
    from colossalai.booster import Booster
    from colossalai.booster.plugin import TorchDDPPlugin

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
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
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    out.put((rank, losses[0], losses[-1], flat.tolist()))  # plain lists: no shared memory
    dist.destroy_process_group()


def test_torch_ddp_plugin_trains_on_cpu_with_two_gloo_ranks():
    import colossalai

    assert colossalai.__version__ == "0.5.0"
    assert torch.__version__.startswith("2.13.0")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (_, first0, last0, w0), (_, first1, last1, w1) = results
    assert torch.allclose(torch.tensor(w0), torch.tensor(w1)), "DDP ranks diverged: gradients were not all-reduced"
    assert last0 < first0 / 5 and last1 < first1 / 5
