"""`equissl bench`: how fast a configured method trains, and where the time goes.

Three things are timed, interleaved (so load changes hit all three alike), on the same uint8
set resident on the training device:

- the **step** that `equissl pretrain` runs per batch: gather a batch from the resident set by a
  row of a permutation, make every view on the device, backbone, heads, losses, backward,
  optimiser step (and BYOL's target update), under the run's precision, memory format and
  compilation; Lightning's loop bookkeeping (logging, callbacks) is not included;
- the **augmentation** alone: the same gather and views;
- a **bare** backbone forward+backward over tensors of exactly the shapes of all the step's
  views: the floor the step cannot beat, in both memory layouts (contiguous and channels_last;
  the faster counts), its GFLOP/s against the machine's best square matrix product (BLAS, or
  oneDNN as a 1x1 convolution).

The data are random uint8 images (synthetic: no dataset is read) of the configured size, so the
numbers measure speed, never accuracy. Rates count source images per second.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.flop_counter import FlopCounterMode

from equissl.app.config import build_config
from equissl.app.cpu import apply_cpu_settings
from equissl.app.outputs import check_file_writable
from equissl.app.runner import backbone_label, method_label
from equissl.app.train import (
    channels_last_safe,
    prepare_method,
    resolve_precision,
    training_optimizer,
    uses_cuda,
)
from equissl.data.load import NATIVE_SIZES
from equissl.errors import UserError
from equissl.methods import Method, build_method
from equissl.reports.atomic import write_text_atomic
from equissl.step import epoch_rows, step_generator, step_loss, update

DEFAULT_SIZE = 32  # when `data.size` is null and the source has no fixed size (ImageFolder)
POOL = 4  # resident images = POOL x batch, so the gather reads a set larger than one batch
NUM_CLASSES = 10
MIB = 1 << 20


def whole_number(name: str, value: str | None, default: int, minimum: int = 1) -> int:
    """`name=value` from the command line as an int >= minimum (UserError otherwise)."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise UserError(f"bad value for '{name}': {value!r}; use a whole number >= {minimum}")
    return number


def bench_device(cfg: DictConfig) -> torch.device:
    """The device a run of `cfg` trains on here (one device: the bench runs one process)."""
    return torch.device("cuda" if uses_cuda(cfg) else "cpu")


def image_size(cfg: DictConfig, size: int = 0) -> int:
    """`size`, else `data.size`, else the source's native side (32 where it has none)."""
    if cfg.data.name == "digits":  # 8x8 is too small for a benchmark: synthetic data stand in
        return size or cfg.data.size or DEFAULT_SIZE
    return size or cfg.data.size or NATIVE_SIZES.get(cfg.data.name, DEFAULT_SIZE)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timers read host time)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def commit() -> str:
    """The short commit of the working tree, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


# -- peak memory -------------------------------------------------------------------------------
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _resettable_rss() -> bool:
    """Whether Linux lets this process reset its peak RSS (VmHWM) by writing 5 to clear_refs."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _STATUS.is_file()


def _peak_rss_bytes() -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """Peak memory of a block: CUDA bytes allocated by PyTorch on a GPU; on the CPU the
    process's peak resident set (Python, libraries and the resident data included), reset
    before the block where Linux allows it, else the peak since the process started."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.resettable = device.type == "cuda" or _resettable_rss()
        if device.type == "cuda":
            self.kind = "torch.cuda.max_memory_allocated"
        elif self.resettable:
            self.kind = "peak RSS of the process (VmHWM)"
        else:
            self.kind = "peak RSS since the process started (getrusage)"

    @contextlib.contextmanager
    def measure(self, into: list[int]) -> Iterator[None]:
        """Append the block's peak (bytes) to `into`."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.resettable:
            _CLEAR_REFS.write_text("5")
        yield
        if self.device.type == "cuda":
            into.append(torch.cuda.max_memory_allocated(self.device))
        elif self.resettable:
            into.append(_peak_rss_bytes())
        else:  # kilobytes on Linux
            into.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


# -- the measurement ---------------------------------------------------------------------------
def autocast_for(cfg: DictConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast that a run's precision (`trainer.precision`, resolved) puts around a step."""
    precision = resolve_precision(cfg)
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed":  # (without the loss scaling Lightning adds: a little faster)
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def build_bench_method(
    cfg: DictConfig, device: torch.device, size: int
) -> tuple[Method, torch.optim.Optimizer]:
    """The configured method on `device`, prepared as training prepares it, and its optimiser."""
    channels = cfg.data.channels
    method = build_method(
        cfg,
        in_channels=channels,
        image_size=size,
        num_classes=NUM_CLASSES,
        mean=torch.full((channels,), 0.5),
        std=torch.full((channels,), 0.25),
    ).to(device)
    prepare_method(method, cfg, device)
    return method, training_optimizer(cfg, method)


def step_functions(
    cfg: DictConfig, method: Method, optimizer: torch.optim.Optimizer, size: int, total: int
) -> tuple[dict[str, Callable[[int], None]], list[torch.Size]]:
    """The three timed functions of step index i ('step', 'augment', 'bare') and the shapes of
    the views a step makes. `total` steps set BYOL's target schedule."""
    device = method.mean.device
    n, channels = cfg.optim.batch_size, cfg.data.channels
    g = torch.Generator().manual_seed(cfg.seed)
    images = torch.randint(0, 256, (POOL * n, channels, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, NUM_CLASSES, (POOL * n,), generator=g)
    images, labels = images.to(device), labels.to(device)
    rows = epoch_rows(POOL * n, n, seed=cfg.seed, epoch=0).to(device)
    autocast = functools.partial(autocast_for, cfg, device)

    def full_step(i: int) -> None:
        with autocast():
            loss, _ = step_loss(method.loss, images, labels, rows[i % POOL], seed=cfg.seed, step=i)
        update(loss, optimizer)
        method.after_step(i / total)

    def augment_only(i: int) -> None:
        method.make_views(images[rows[i % POOL]], step_generator(cfg.seed, i, device=device))

    views = method.make_views(images[rows[0]], step_generator(cfg.seed, 0, device=device))
    shapes = [v.shape for v in views.values() if v.dim() == 4]
    inputs = [method.normalize(torch.rand(s, device=device)) for s in shapes]

    def bare_pass(backbone: torch.nn.Module, xs: list[torch.Tensor]) -> None:
        with autocast():
            out = sum(backbone.orientation_features(x).float().sum() for x in xs)
        backbone.zero_grad(set_to_none=True)
        out.backward()

    fns = {
        "step": full_step,
        "augment": augment_only,
        "bare": lambda i: bare_pass(method.backbone, inputs),
    }
    if not cfg.trainer.compile and (
        method.channels_last or channels_last_safe(method.backbone, device)
    ):  # (a compiled backbone's copy would call the original; channels_last where it is safe)
        # The bare pass in the other memory layout too: step/bare is taken against the faster.
        other, layout = other_layout(method.backbone, not method.channels_last)
        moved = [x.contiguous(memory_format=layout) for x in inputs]
        fns["bare_other"] = lambda i: bare_pass(other, moved)
    return fns, shapes


def other_layout(
    backbone: torch.nn.Module, channels_last: bool
) -> tuple[torch.nn.Module, torch.memory_format]:
    """A copy of `backbone` with its conv filters in channels_last (or contiguous) layout, and
    that layout for its inputs."""
    copy = deepcopy(backbone)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for p in copy.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=layout)
    return copy, layout


def pass_flops(fn: Callable[[int], None]) -> int:
    """Floating-point operations of one call of `fn` (convolutions and matrix products, forward
    and backward), counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        fn(0)
    return int(counter.get_total_flops())


def _best_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """The shortest of `repeats` timed calls of `fn`, after one untimed call."""
    best = math.inf
    for i in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        if i:
            best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak(device: torch.device, precision: str, repeats: int = 5) -> float:
    """The machine's attainable GFLOP/s: the best of `repeats` square matrix products (fp32 on
    the CPU, size 1024; the run's autocast type on a GPU, size 8192). On the CPU the same product
    is also timed as a 1x1 convolution, which runs in oneDNN rather than the BLAS of `@` (on an
    AMD CPU the convolutions outran MKL's product), and the faster counts."""
    n = 8192 if device.type == "cuda" else 1024
    autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    dtype = autocast.get(precision, torch.float32) if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    best = _best_seconds(lambda: a @ b, device, repeats)
    if device.type == "cpu":  # (1, n, 32, 32) * (n, n, 1, 1): an (n x n) by (n x 1024) product
        side = math.isqrt(n)
        x = torch.randn(1, n, side, side).contiguous(memory_format=torch.channels_last)
        w = torch.randn(n, n, 1, 1).contiguous(memory_format=torch.channels_last)
        best = min(best, _best_seconds(lambda: torch.nn.functional.conv2d(x, w), device, repeats))
    return 2 * n**3 / best / 1e9


def measure(cfg: DictConfig, *, steps: int = 10, warmup: int = 2, size: int = 0) -> dict[str, Any]:
    """Time the step, the augmentation and the bare backbone of `cfg` (median of `steps` after
    `warmup` untimed rounds); returns the fields of one table row."""
    device = bench_device(cfg)
    apply_cpu_settings(cfg.trainer.threads, cfg.trainer.cpu_allocator, device.type)
    size = image_size(cfg, size)
    cudnn = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as the Trainer sets it
    try:
        method, optimizer = build_bench_method(cfg, device, size)
        fns, shapes = step_functions(cfg, method, optimizer, size, warmup + steps)
        flops = pass_flops(fns["bare"])
        peak = matmul_peak(device, resolve_precision(cfg))
        memory = PeakMemory(device)
        times: dict[str, list[float]] = {name: [] for name in fns}
        peaks: dict[str, list[int]] = {name: [] for name in fns}
        for i in range(warmup + steps):
            for name, fn in fns.items():
                sync(device)
                with memory.measure(peaks[name]):
                    t0 = time.perf_counter()
                    fn(i)
                    sync(device)
                    elapsed = time.perf_counter() - t0
                if i >= warmup:
                    times[name].append(elapsed)
    finally:
        torch.backends.cudnn.benchmark = cudnn
    med = {name: statistics.median(t) for name, t in times.items()}
    n = cfg.optim.batch_size
    layout = "channels_last" if method.channels_last else "contiguous"
    if med.get("bare_other", math.inf) < med["bare"]:
        med["bare"] = med["bare_other"]
        layout = "contiguous" if method.channels_last else "channels_last"
    return {
        "method": method_label(cfg),
        "backbone": backbone_label(cfg),
        "device": device_name(device),
        "precision": resolve_precision(cfg),
        "channels_last": method.channels_last,
        "compile": bool(cfg.trainer.compile),
        "batch": n,
        "image_size": size,
        "channels": cfg.data.channels,
        "views": ", ".join(f"{s[0]} x {s[-1]}px" for s in shapes),
        "data": f"synthetic: random uint8, {POOL * n} images resident on the device",
        "steps": steps,
        "warmup": warmup,
        "step_ms": 1e3 * med["step"],
        "augment_ms": 1e3 * med["augment"],
        "bare_ms": 1e3 * med["bare"],
        "step_img_s": n / med["step"],
        "augment_img_s": n / med["augment"],
        "bare_img_s": n / med["bare"],
        "step_over_bare": med["step"] / med["bare"],
        "step_over_augment": med["step"] / med["augment"],
        "bare_layout": layout,
        "bare_gflop": flops / 1e9,
        "bare_gflop_s": flops / med["bare"] / 1e9,
        "peak_gflop_s": peak,
        "bare_of_peak": flops / med["bare"] / 1e9 / peak,
        "peak_memory_mib": max(peaks["step"]) / MIB,
        "memory_kind": memory.kind,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": commit(),
    }


# -- output ------------------------------------------------------------------------------------
COLUMNS = (
    ("method", "method", "{}"),
    ("backbone", "backbone", "{}"),
    ("batch", "batch", "{}"),
    ("views per step", "views", "{}"),
    ("step img/s", "step_img_s", "{:.0f}"),
    ("augment img/s", "augment_img_s", "{:.0f}"),
    ("bare fwd+bwd img/s", "bare_img_s", "{:.0f}"),
    ("step ms", "step_ms", "{:.1f}"),
    ("augment ms", "augment_ms", "{:.1f}"),
    ("bare ms", "bare_ms", "{:.1f}"),
    ("step/bare", "step_over_bare", "**{:.3f}**"),
    ("step/augment", "step_over_augment", "{:.0f}x"),
    ("bare layout", "bare_layout", "{}"),
    ("bare GFLOP/s", "bare_gflop_s", "{:.1f}"),
    ("of GEMM peak", "bare_of_peak", "{:.0%}"),
    ("peak memory MiB", "peak_memory_mib", "{:.0f}"),
)


def measurement_note(row: dict[str, Any]) -> str:
    """One comment line: what was measured, where and how."""
    return (
        f"# {row['data']} ({row['channels']}x{row['image_size']}x{row['image_size']}); "
        f"{row['device']}, torch {row['torch']}, {row['precision']}, "
        f"channels_last {row['channels_last']}, compile {row['compile']}; median of "
        f"{row['steps']} steps after {row['warmup']} warm-up; bare: the faster memory layout, "
        f"{row['bare_gflop']:.2f} GFLOP a pass, GEMM peak {row['peak_gflop_s']:.0f} GFLOP/s; "
        f"peak memory: {row['memory_kind']} during the step; commit {row['commit']}"
    )


def bench_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, preceded by the first row's description."""
    head = "| " + " | ".join(title for title, _, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---:" if "{:" in fmt else "---" for _, _, fmt in COLUMNS) + "|"
    lines = [measurement_note(rows[0]), head, rule]
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[key]) for _, key, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def write_bench_json(rows: list[dict[str, Any]], path: str | Path, command: str = "") -> Path:
    """`{command, rows}` as JSON at `path`, written atomically."""
    payload = {"command": command, "rows": rows}
    return write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


# -- the command -------------------------------------------------------------------------------
OPTIONS = ("steps", "warmup", "size", "out")


def bench_command(
    presets: list[str], overrides: list[str], options: dict[str, str | None], command: str = ""
) -> None:
    """`equissl bench`: `options` holds the raw values of OPTIONS (None where not given)."""
    steps = whole_number("steps", options.get("steps"), 10)
    warmup = whole_number("warmup", options.get("warmup"), 2, minimum=0)
    size = whole_number("size", options.get("size"), 0)
    out = options.get("out")
    if out is not None and not out.endswith(".json"):
        raise UserError(f"out= names a .json file for the results, got '{out}'")
    if out is not None:
        check_file_writable(out, "benchmark results")
    row = measure(build_config(presets, overrides), steps=steps, warmup=warmup, size=size)
    print(bench_table([row]))
    if out:
        print(f"wrote {write_bench_json([row], out, command=command)}")
