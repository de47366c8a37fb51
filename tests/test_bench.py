"""`equissl bench`, and the fast path it measures: no host-device sync inside a training step,
float32 views under mixed precision, compiled backbones with unchanged checkpoint keys."""

import contextlib
import json
import traceback
from types import SimpleNamespace

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from equissl.app.bench import bench_table, measure
from equissl.app.cli import main
from equissl.app.config import build_config
from equissl.app.train import PretrainModule, training_optimizer
from equissl.augment import build_augment, pipelines
from equissl.methods import build_method

TINY = ["backbone.width=2", "optim.batch_size=16", "trainer.accelerator=cpu"]


def _method(presets, overrides=(), size=8, device="cpu"):
    cfg = build_config(presets, [*TINY, *overrides])
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    method = build_method(cfg, in_channels=3, image_size=size, num_classes=10, mean=mean, std=std)
    return cfg, method.to(device)


# -- the bench ---------------------------------------------------------------------------------
def test_bench_measures_a_tiny_config():
    row = measure(build_config(["esimclr"], TINY), steps=2, warmup=1, size=8)
    for key in ("step_img_s", "augment_img_s", "bare_img_s", "step_ms", "augment_ms", "bare_ms"):
        assert row[key] > 0, key
    # the step does the bare backbone's work and the augmentation's, and more
    assert row["step_over_bare"] >= 0.5 and row["step_over_augment"] >= 0.5
    assert row["peak_memory_mib"] > 0 and row["memory_kind"]
    assert row["bare_layout"] in ("contiguous", "channels_last") and row["bare_gflop"] > 0
    assert row["bare_gflop_s"] == pytest.approx(row["bare_gflop"] / row["bare_ms"] * 1e3)
    assert row["bare_of_peak"] == pytest.approx(row["bare_gflop_s"] / row["peak_gflop_s"])
    assert row["views"] == "32 x 8px, 64 x 4px"  # two SimCLR views, four rotations of crops
    assert row["method"] == "simclr+rotation:predict" and row["backbone"] == "resnet18-w2"
    table = bench_table([row])
    assert "synthetic" in table.splitlines()[0]
    assert table.splitlines()[1].startswith("| method | backbone |")
    assert table.splitlines()[3].startswith("| simclr+rotation:predict | resnet18-w2 | 16 |")


def test_bench_command_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["simclr", *TINY, "steps=1", "warmup=0", "size=8", f"out={out}"]
    assert main(["bench", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# synthetic") and "| step/bare |" in lines[1]
    assert lines[3].startswith("| simclr | resnet18-w2 | 16 |") and lines[-1] == f"wrote {out}"
    saved = json.loads(out.read_text())
    assert saved["command"].startswith("equissl bench simclr")
    (row,) = saved["rows"]
    assert row["batch"] == 16 and row["image_size"] == 8 and row["steps"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["steps=0"], "'steps'"),
        (["steps=many"], "'steps'"),
        (["warmup=-1"], "'warmup'"),
        (["size=0"], "'size'"),
        (["out=bench.txt"], ".json"),
        (["backbone.widht=4"], "backbone.width"),
    ],
)
def test_bad_options_stop_with_one_line(args, message, capsys):
    assert main(["bench", "simclr", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("equissl: error:") and message in err and err.count("\n") == 1


# -- no host-device sync in a step -------------------------------------------------------------
# What makes the host wait for an accelerator: reading a value (.item(), .tolist(), bool(t),
# .cpu(), .numpy()), outputs whose shape depends on the data (nonzero, boolean masks, unique)
# and host data sent to the device (torch.tensor(values, device=...): its copy blocks).
DATA_DEPENDENT = ("nonzero", "masked_select", "unique", "_unique", "_unique2", "bincount", "histc")
READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__")


def _fail(why: str) -> None:
    frames = [f for f in traceback.extract_stack() if "/equissl/" in f.filename]
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    raise AssertionError(f"host sync: {why}{where}")


class _HostValues(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        host_data = name in ("tensor", "as_tensor") and not isinstance(args[0], torch.Tensor)
        if host_data and torch.device(kwargs.get("device") or "cpu").type != "cpu":
            _fail(f"torch.{name} of host data onto {kwargs['device']}")
        first = args[0] if args else None
        if name in READS and isinstance(first, torch.Tensor) and first.device.type != "cpu":
            _fail(f"Tensor.{name}")
        return func(*args, **kwargs)


class _DeviceOps(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in ("_local_scalar_dense", "lift_fresh", *DATA_DEPENDENT):
            _fail(str(func))
        if name in ("index", "index_put", "index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
        ):
            _fail(f"boolean-mask indexing ({func})")
        by_tensor = name == "repeat_interleave" and func._overloadname != "self_int"
        if by_tensor and kwargs.get("output_size") is None:
            _fail("repeat_interleave by a tensor without output_size")
        target = kwargs.get("device") if name == "_to_copy" else None
        if target is not None and torch.device(target) != args[0].device:
            _fail(f"copy {args[0].device} -> {target}")
        if name == "copy_" and args[0].device != args[1].device:
            _fail(f"copy {args[1].device} -> {args[0].device}")
        return func(*args, **kwargs)


@contextlib.contextmanager
def host_syncs_fail():
    """Fails at the first op that would make the host wait for the device."""
    with _HostValues(), _DeviceOps():
        yield


# The step runs on the meta device: no values, and branches for accelerators (not "cpu") taken.
# The generator stays on the CPU (there is no meta generator); the step's draws that use it
# are made directly on the meta device.
@pytest.mark.parametrize(
    ("presets", "overrides"),
    [(["simclr"], []), (["esimclr"], []), (["care"], ["method.equivariance.0.chunks=4"])],
    ids=["simclr", "esimclr", "care"],
)
def test_a_training_step_makes_no_host_sync(presets, overrides):
    cfg, method = _method(presets, overrides, device="meta")
    optimizer = training_optimizer(cfg, method)
    resident = torch.empty(64, 3, 8, 8, dtype=torch.uint8, device="meta")
    labels = torch.empty(64, dtype=torch.long, device="meta")
    index = torch.empty(16, dtype=torch.long, device="meta")

    def step(i):
        loss, metrics = method.loss(
            resident[index], labels[index], torch.Generator().manual_seed(i)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        method.after_step(0.5)
        return metrics

    step(0)  # first use caches constants on the device (on meta, a value read fails here too)
    with host_syncs_fail():
        metrics = step(1)
    assert all(v.device.type == "meta" for v in metrics.values())  # logged without a sync


def test_the_lightning_training_step_makes_no_host_sync(monkeypatch):
    """PretrainModule.training_step around the method: the gather from the resident set and the
    epoch sums (on a step whose values Lightning does not write)."""
    cfg, method = _method(["esimclr"], device="meta")
    images = torch.empty(64, 3, 8, 8, dtype=torch.uint8)
    module = PretrainModule(cfg, method, images, torch.empty(64, dtype=torch.long)).to("meta")
    module.images, module.labels = images.to("meta"), module.labels.to("meta")
    module.nonfinite = module.nonfinite.to("meta")
    rows = torch.empty(16, dtype=torch.long, device="meta")
    connector = SimpleNamespace(should_update_logs=False)
    module._trainer = SimpleNamespace(
        _logger_connector=connector, global_step=0, global_rank=0, current_epoch=0
    )
    no_meta_generator = lambda *args: torch.Generator().manual_seed(0)  # noqa: E731
    monkeypatch.setattr("equissl.step.step_generator", no_meta_generator)
    module.training_step(rows, 0)
    with host_syncs_fail():
        module.training_step(rows, 1).backward()
    assert module._epoch_steps == 2 and module._epoch_sums["loss"].device.type == "meta"


def test_the_recorder_catches_syncs():
    x = torch.empty(4, device="meta")
    for sync in (
        lambda: x.sum().item(),
        lambda: x.tolist(),
        lambda: bool(x.sum() > 0),
        lambda: x[x > 0],
        lambda: (x > 0).nonzero(),
        lambda: x + torch.tensor(1.0),
        lambda: x + torch.tensor([1.0], device="meta"),
        lambda: x.cpu(),
    ):
        with pytest.raises(AssertionError, match="host sync"), host_syncs_fail():
            sync()


class _Philox:
    """The host side of an accelerator's generator: seed and offset."""

    device = torch.device("cuda")

    def __init__(self, seed: int) -> None:
        self.seed, self.offset = seed, 0

    def initial_seed(self) -> int:
        return self.seed

    def get_offset(self) -> int:
        return self.offset

    def set_offset(self, offset: int) -> None:
        self.offset = offset


def test_colour_op_order_of_an_accelerator_generator_is_drawn_on_the_host():
    g = _Philox(7)
    orders = [pipelines.host_permutation(4, g) for _ in range(20)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len({tuple(o) for o in orders}) > 5  # the offset moves on: the orders vary
    assert g.offset == 20 * pipelines.PHILOX_OFFSET_STEP
    again = _Philox(7)
    assert [pipelines.host_permutation(4, again) for _ in range(20)] == orders  # same state


@pytest.mark.parametrize("seed", range(3))
def test_accelerator_masks_give_the_cpu_views(monkeypatch, seed):
    aug = build_augment("simclr", 12)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (70, 3, 16, 16), dtype=torch.uint8, generator=g)
    on_host = aug(x, torch.Generator().manual_seed(seed))
    monkeypatch.setattr(pipelines, "_select_on_host", lambda device: False)
    # the same per-image arithmetic; batched kernels may round differently at another batch size
    torch.testing.assert_close(
        aug(x, torch.Generator().manual_seed(seed)), on_host, atol=1e-6, rtol=0
    )


def test_views_stay_float32_under_bf16_autocast():
    _, method = _method(["esimclr"])
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    plain = method.make_views(x, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = method.make_views(x, torch.Generator().manual_seed(0))
        loss, _ = method.loss(x, torch.zeros(16, dtype=torch.long), torch.Generator())
    loss.backward()
    assert all(torch.equal(plain[k], mixed[k]) for k in plain)


# -- trainer.compile ---------------------------------------------------------------------------
def test_compile_trains_and_keeps_checkpoint_keys(tmp_path, monkeypatch):
    from equissl.app.runner import pretrain

    compiled = []
    real = torch.compile

    def eager_compile(fn, **kwargs):  # the wiring, without inductor's minutes of C++ on a CPU
        compiled.append(fn.__name__)
        return real(fn, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    overrides = [
        *TINY,
        "data.limit=64",
        "data.size=8",
        "optim.epochs=1",
        "eval.at_end=false",
        "trainer.progress_bar=false",
        "trainer.compile=true",
        f"out_dir={tmp_path}",
        "name=compiled",
    ]
    pretrain(build_config(["simclr"], overrides))
    assert compiled == ["forward", "orientation_features"]
    state = torch.load(tmp_path / "compiled" / "last.ckpt", weights_only=False)["state_dict"]
    _, plain = _method(["simclr"])
    assert list(state) == [f"method.{k}" for k in plain.state_dict()]


def test_pass_flops_counts_a_linear_layers_forward_and_backward():
    from equissl.app.bench import pass_flops

    layer = torch.nn.Linear(8, 4, bias=False)
    x = torch.randn(16, 8, requires_grad=True)
    # forward 2*16*8*4; backward: the input's and the weight's gradients, as much again each
    assert pass_flops(lambda i: layer(x).sum().backward()) == 3 * 2 * 16 * 8 * 4


def test_the_other_layout_copy_keeps_the_weights_and_leaves_the_backbone():
    from equissl.app.bench import other_layout

    _, method = _method(["simclr"])
    copy, layout = other_layout(method.backbone, channels_last=True)
    assert layout == torch.channels_last
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(
        copy.eval()(x.contiguous(memory_format=layout)), method.backbone.eval()(x)
    )
    conv = next(p for p in copy.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert all(p.is_contiguous() for p in method.backbone.parameters())
