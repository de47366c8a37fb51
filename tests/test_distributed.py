"""DDP with 2 CPU processes (gloo) equals one process on the concatenated batch: NT-Xent,
Barlow Twins and VICReg gather embeddings with gradient."""

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

# Imported before init_process_group (here, as each rank unpickles its function): this module
# binds `group.WORLD` as default arguments, so imported later (DDP's constructor does, through
# torch._dynamo) it would keep the group, and its gloo threads, alive past destroy_process_group.
import torch.distributed.nn  # noqa: F401
import torch.multiprocessing as mp
from torch import nn

from equissl.objectives import barlow_twins_loss, nt_xent, vicreg_loss

N, D_IN, D = 6, 10, 5
WORLD = 2


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D_IN, 16), nn.ReLU(), nn.Linear(16, D))


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2 * N, D_IN, generator=g), torch.randn(2 * N, D_IN, generator=g)


def _rank_main(rank: int, body: Callable[[int, int], Any], init: str, out: str) -> None:
    """One rank: join the gloo group, run `body(rank, world)`; rank 0 saves what it returns.

    A gradient all-reduce that DDP starts in backward holds a Python object (the autograd
    context) and is freed on a gloo worker thread; a worker still doing so when the interpreter
    finalises dies taking the GIL and aborts the rank ("terminate called without an active
    exception"). So the workers are joined first: every collective and rank 0's write finish
    before a barrier, then destroy_process_group drops the group's last owner (the DDP model
    went with `body`) and the group's destructor joins its threads with the GIL released. The
    check after it keeps that true.
    """
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    group = weakref.ref(dist.group.WORLD)
    try:
        result = body(rank, WORLD)
        if rank == 0:
            torch.save(result, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    if group() is not None:
        raise RuntimeError("process group still referenced after destroy_process_group")


def _on_each_rank(body: Callable[[int, int], Any], tmp_path: Path) -> Any:
    """Run `body` on WORLD spawned gloo ranks; return what rank 0's `body` returned."""
    out = str(tmp_path / "ddp.pt")
    init = f"file://{tmp_path / 'rendezvous'}"
    # spawn, not fork: a child forked while the parent's OpenMP threads hold a lock can hang.
    mp.spawn(_rank_main, args=(body, init, out), nprocs=WORLD, join=True)
    return torch.load(out)


def _nt_xent_rank(rank: int, world: int) -> dict:
    model = nn.parallel.DistributedDataParallel(_model())
    x1, x2 = _data()
    rows = slice(rank * N, (rank + 1) * N)
    loss = nt_xent(model(x1[rows]), model(x2[rows]), 0.5)
    loss.backward()
    total = loss.detach().clone()
    dist.all_reduce(total)
    return {"loss": total / world, "grads": [p.grad for p in model.module.parameters()]}


def test_ddp_gloo_matches_single_process(tmp_path):
    ddp = _on_each_rank(_nt_xent_rank, tmp_path)

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


def _invariance_rank(rank: int, world: int) -> dict:
    model = nn.parallel.DistributedDataParallel(_model())
    x1, x2 = _data()
    rows = slice(rank * N, (rank + 1) * N)
    result = {}
    for name in ("barlow", "vicreg"):
        model.zero_grad()
        loss = _losses(model, x1[rows], x2[rows])[name]
        loss.backward()
        result[name] = (loss.detach(), [p.grad.clone() for p in model.module.parameters()])
    return result


def test_barlow_twins_and_vicreg_under_ddp_match_single_process_on_global_batch(tmp_path):
    ddp = _on_each_rank(_invariance_rank, tmp_path)

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


def _queue_rank(rank: int, world: int) -> dict:
    from equissl.models import KeyQueue

    torch.manual_seed(0)
    queue = KeyQueue(size=8, dim=D)
    keys = _data()[0][:, :D]
    queue.push(keys[rank * 3 : (rank + 1) * 3])  # 3 keys per rank, 6 per step
    queue.push(keys[6 + rank * 3 : 6 + (rank + 1) * 3])
    return {"keys": queue.keys, "ptr": queue.ptr}


def test_moco_queue_enqueues_every_rank_keys_in_rank_order(tmp_path):
    """MoCo's _dequeue_and_enqueue gathers the keys of every process before writing them: each
    rank's queue equals one process pushing the concatenated global batch."""
    from equissl.models import KeyQueue

    ddp = _on_each_rank(_queue_rank, tmp_path)
    torch.manual_seed(0)
    queue = KeyQueue(size=8, dim=D)
    keys = _data()[0][:, :D]
    queue.push(keys[:6])
    queue.push(keys[6:12])
    assert torch.equal(ddp["keys"], queue.keys)
    assert int(ddp["ptr"]) == int(queue.ptr) == 4
