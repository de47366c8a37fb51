"""DDP with 2 CPU processes (gloo) equals one process on the concatenated batch: NT-Xent,
Barlow Twins and VICReg gather embeddings with gradient."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from equissl.objectives import barlow_twins_loss, nt_xent, vicreg_loss

N, D_IN, D = 6, 10, 5


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D_IN, 16), nn.ReLU(), nn.Linear(16, D))


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2 * N, D_IN, generator=g), torch.randn(2 * N, D_IN, generator=g)


def _worker(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = nn.parallel.DistributedDataParallel(_model())
    x1, x2 = _data()
    rows = slice(rank * N, (rank + 1) * N)
    loss = nt_xent(model(x1[rows]), model(x2[rows]), 0.5)
    loss.backward()
    total = loss.detach().clone()
    dist.all_reduce(total)
    grads = [p.grad for p in model.module.parameters()]
    if rank == 0:
        torch.save({"loss": total / world, "grads": grads}, out)
    dist.destroy_process_group()


def test_ddp_gloo_matches_single_process(tmp_path):
    out = str(tmp_path / "ddp.pt")
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_worker, args=(2, init, out), nprocs=2, join=True)
    ddp = torch.load(out)

    model = _model()
    x1, x2 = _data()
    loss = nt_xent(model(x1), model(x2), 0.5)
    loss.backward()
    assert torch.allclose(ddp["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
    for got, want in zip(ddp["grads"], [p.grad for p in model.parameters()], strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def test_gathered_loss_differs_from_local_only_loss():
    """Guard: the local-only loss (fewer negatives) is not what DDP computes."""
    model = _model()
    x1, x2 = _data()
    with torch.no_grad():
        full = nt_xent(model(x1), model(x2), 0.5)
        local = (
            nt_xent(model(x1[:N]), model(x2[:N]), 0.5) + nt_xent(model(x1[N:]), model(x2[N:]), 0.5)
        ) / 2
    assert not torch.allclose(full, local)


def _losses(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
    z1, z2 = model(x1), model(x2)
    return {"barlow": barlow_twins_loss(z1, z2, lambd=0.1), "vicreg": vicreg_loss(z1, z2)[0]}


def _invariance_worker(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = nn.parallel.DistributedDataParallel(_model())
    x1, x2 = _data()
    rows = slice(rank * N, (rank + 1) * N)
    result = {}
    for name in ("barlow", "vicreg"):
        model.zero_grad()
        loss = _losses(model, x1[rows], x2[rows])[name]
        loss.backward()
        result[name] = (loss.detach(), [p.grad.clone() for p in model.module.parameters()])
    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


def test_barlow_twins_and_vicreg_under_ddp_match_single_process_on_global_batch(tmp_path):
    out = str(tmp_path / "ddp.pt")
    init = f"file://{tmp_path / 'rendezvous'}"
    # spawn, not fork: a child forked while the parent's OpenMP threads hold a lock can hang.
    mp.spawn(_invariance_worker, args=(2, init, out), nprocs=2, join=True)
    ddp = torch.load(out)

    x1, x2 = _data()
    for name in ("barlow", "vicreg"):
        model = _model()
        loss = _losses(model, x1, x2)[name]
        loss.backward()
        got_loss, got_grads = ddp[name]
        assert torch.allclose(got_loss, loss.detach(), rtol=1e-5, atol=1e-6), name
        for got, want in zip(got_grads, [p.grad for p in model.parameters()], strict=True):
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-6), name
        # Guard: the mean of per-half losses (no gather) differs from the global-batch loss.
        with torch.no_grad():
            halves = [_losses(model, x1[s], x2[s])[name] for s in (slice(0, N), slice(N, None))]
        assert not torch.allclose(sum(halves) / 2, loss.detach(), rtol=1e-3), name
