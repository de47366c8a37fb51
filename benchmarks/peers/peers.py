"""equissl's training step against its peers on the CPU: lightly's SimCLR and a conventional
DataLoader + PIL pipeline written as the official E-SSL CIFAR-10 code (rdangovs/essl,
cifar10/main.py) writes it.

All three train the same backbone (equissl's `build_backbone("resnet18", stem="cifar")` at the
given width) with heads of the same sizes (equissl's automatic widths: 4 x the backbone's
features, E-SSL's 512-2048-2048 at width 64), the same batch and torch thread count, on the
same real CIFAR-10 training JPEGs (a class-balanced subset extracted from the zip):

- equissl: its own step (`equissl.step.step_loss` + `update`) on the images decoded once into a
  resident uint8 tensor, every view made batched in the step, glibc allocator tuned as the CLI
  does (`trainer.cpu_allocator=reuse`); its online classifier included, as in `pretrain`;
- lightly (SimCLR only): `SimCLRTransform` (CIFAR settings: 32 px, colour jitter strength 0.5,
  no blur, crop scale 0.2-1), a torchvision ImageFolder, `SimCLRProjectionHead`, `NTXentLoss`,
  DataLoader workers, the loop of lightly's examples/pytorch/simclr.py;
- conventional: ImageFolder + the official PIL transforms in DataLoader workers
  (RandomResizedCrop(32, scale 0.2-1), flip, colour jitter 0.4/0.4/0.4/0.1 p 0.8, grayscale
  p 0.2, ToTensor, Normalize; E-SimCLR adds one RandomResizedCrop(16) view per image, rotated
  four ways in the loop), projector Linear-BN-ReLU-Linear-BN, InfoNCE both ways, one backbone
  pass per view, rotation head Linear-LN-ReLU x 2 + Linear(4) with cross-entropy weight 0.4.

Each measurement is a fresh subprocess: equissl in the project's venv, the peers in the peer
venv (benchmarks/peers/setup.sh). Runs alternate between the systems (A B C A B C ...), each
peer once per DataLoader worker count in --workers (its fastest count is reported). A run
times --steps steady-state steps (optimiser step and data waits included) after --warmup steps.

    benchmarks/peers/setup.sh        # once: .cache/peers-venv
    .venv/bin/python benchmarks/peers/peers.py --out docs/results/peers.json
    .venv/bin/python benchmarks/peers/peers.py --widths 4 --batch 16 --steps 2 --warmup 1 \\
        --repeats 1 --images 200 --out /tmp/peers-smoke.json   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
ZIP = ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"
SYSTEMS = ("equissl", "lightly", "conventional")
PEERS = SYSTEMS[1:]
METHODS = ("simclr", "esimclr")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # E-SSL's normalisation
ROTATION_WEIGHT = 0.4
SEED = 0


# -- data --------------------------------------------------------------------------------------
def extract_subset(source: Path, per_class: int, dest: Path) -> Path:
    """The first `per_class` training JPEGs of each class of the CIFAR-10 zip (and one test
    image per class, so equissl's ImageFolder reader sees train/ and test/) under `dest`,
    extracted once; returns the folder holding train/ and test/."""
    root = dest / f"cifar10-{per_class}"
    done = root / ".complete"
    if done.exists():
        return root
    with zipfile.ZipFile(source) as z:
        names = sorted(n for n in z.namelist() if n.lower().endswith(".jpg"))
        taken: dict[tuple[str, str], int] = {}
        for name in names:
            split, cls = name.split("/")[-3:-1]
            quota = per_class if split == "train" else 1
            if taken.get((split, cls), 0) >= quota:
                continue
            taken[(split, cls)] = taken.get((split, cls), 0) + 1
            out = root / split / cls / Path(name).name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
    done.touch()
    return root


# -- the three systems (run in a worker process) -----------------------------------------------
def head_widths(features: int) -> int:
    """equissl's automatic projector and rotation-head width for `features` backbone features."""
    return 4 * features


def timed_loop(step, batches, batch: int, steps: int, warmup: int) -> float:
    """Images per second of `steps` calls of step(next batch) after `warmup` untimed ones."""
    for _ in range(warmup):
        step(next(batches))
    t0 = time.perf_counter()
    for _ in range(steps):
        step(next(batches))
    return batch * steps / (time.perf_counter() - t0)


def loader_batches(dataset, args: argparse.Namespace):
    """Endless batches of a shuffled DataLoader over `dataset` with --workers worker processes."""
    import torch

    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(SEED),
    )
    while True:
        yield from loader


def run_equissl(args: argparse.Namespace) -> dict[str, Any]:
    """equissl's step on the resident uint8 set (the project's venv)."""
    import torch

    from equissl.app.bench import autocast_for
    from equissl.app.config import build_config
    from equissl.app.cpu import apply_cpu_settings
    from equissl.app.train import prepare_method, training_optimizer
    from equissl.data.load import load_image_dataset
    from equissl.methods import build_method
    from equissl.step import epoch_rows, step_loss, update

    cfg = build_config(
        [args.method],
        [
            f"backbone.width={args.width}",
            f"optim.batch_size={args.batch}",
            f"trainer.threads={args.threads}",
            "trainer.accelerator=cpu",
        ],
    )
    apply_cpu_settings(cfg.trainer.threads, cfg.trainer.cpu_allocator, "cpu")
    train = load_image_dataset("imagefolder", args.data, cache_dir=CACHE / "peers-data").train
    images, labels = train.images, train.labels
    device = torch.device("cpu")
    method = build_method(
        cfg,
        in_channels=3,
        image_size=images.shape[-1],
        num_classes=len(train.classes),
        mean=torch.tensor(MEAN),
        std=torch.tensor(STD),
    )
    prepare_method(method, cfg, device)
    optimizer = training_optimizer(cfg, method)
    total = args.warmup + args.steps

    def steps():
        step, epoch = 0, 0
        while True:
            for rows in epoch_rows(len(images), args.batch, seed=SEED, epoch=epoch):
                yield step, rows
                step += 1
            epoch += 1

    def step(item) -> None:
        i, rows = item
        with autocast_for(cfg, device):
            loss, _ = step_loss(method.loss, images, labels, rows, seed=SEED, step=i)
        update(loss, optimizer)
        method.after_step(i / total)

    rate = timed_loop(step, steps(), args.batch, args.steps, args.warmup)
    params = sum(p.numel() for n, p in method.named_parameters() if "classifier" not in n)
    return {"img_s": rate, "params": params, "torch": torch.__version__}


def peer_model(args: argparse.Namespace):
    """The backbone, and its feature count, that every system trains."""
    from equissl.models import build_backbone

    backbone = build_backbone("resnet18", width=args.width, stem="cifar")
    return backbone, backbone.num_features


def run_lightly(args: argparse.Namespace) -> dict[str, Any]:
    """lightly's SimCLR as its examples/pytorch/simclr.py trains it (the peer venv)."""
    import torch
    import torchvision
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    if args.method != "simclr":
        raise SystemExit("lightly has no E-SimCLR")
    backbone, features = peer_model(args)
    width = head_widths(features)
    model = torch.nn.Sequential(backbone, SimCLRProjectionHead(features, width, width))
    transform = SimCLRTransform(input_size=32, cj_strength=0.5, min_scale=0.2, gaussian_blur=0.0)
    dataset = torchvision.datasets.ImageFolder(str(Path(args.data) / "train"), transform=transform)
    criterion = NTXentLoss(temperature=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9)

    def step(item) -> None:
        (x0, x1), _ = item
        loss = criterion(model(x0), model(x1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    rate = timed_loop(step, loader_batches(dataset, args), args.batch, args.steps, args.warmup)
    params = sum(p.numel() for p in model.parameters())
    return {"img_s": rate, "params": params, "torch": torch.__version__}


class OfficialViews:
    """E-SSL's ContrastiveLearningTransform: two 32 px views, and for E-SimCLR one 16 px crop."""

    def __init__(self, rotation: bool) -> None:
        import torchvision.transforms as T

        def views(size: int):
            return T.Compose(
                [
                    T.RandomResizedCrop(size=size, scale=(0.2, 1.0)),
                    T.RandomHorizontalFlip(p=0.5),
                    T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                    T.RandomGrayscale(p=0.2),
                    T.ToTensor(),
                    T.Normalize(MEAN, STD),
                ]
            )

        self.view, self.rotation = views(32), views(16) if rotation else None

    def __call__(self, x):
        out = [self.view(x), self.view(x)]
        return out + [self.rotation(x)] if self.rotation else out


def rotate_images(images):
    """The four rotations of every image, stacked rotation-major, and their labels (as E-SSL)."""
    import torch

    n = len(images)
    rotated = torch.cat(
        [
            images,
            images.flip(3).transpose(2, 3),
            images.flip(3).flip(2),
            images.transpose(2, 3).flip(3),
        ]
    )
    return rotated, torch.arange(4).repeat_interleave(n)


def run_conventional(args: argparse.Namespace) -> dict[str, Any]:
    """The official E-SSL CIFAR-10 loop: PIL views in DataLoader workers (the peer venv)."""
    import torch
    import torch.nn.functional as F
    import torchvision
    from torch import nn

    def info_nce(z1, z2, temperature=0.5):
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        return F.cross_entropy(z1 @ z2.T / temperature, torch.arange(len(z2)))

    rotation = args.method == "esimclr"
    backbone, features = peer_model(args)
    width = head_widths(features)
    projector = nn.Sequential(
        nn.Linear(features, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width, affine=False),
    )
    head = nn.Sequential(
        nn.Linear(features, width),
        nn.LayerNorm(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, width),
        nn.LayerNorm(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, 4),
    )
    modules = nn.ModuleList([backbone, projector] + ([head] if rotation else []))
    lr = (0.06 if rotation else 0.03) * args.batch / 256
    optimizer = torch.optim.SGD(modules.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    dataset = torchvision.datasets.ImageFolder(
        str(Path(args.data) / "train"), transform=OfficialViews(rotation)
    )

    def step(item) -> None:
        inputs, _ = item
        modules.zero_grad()
        z1, z2 = projector(backbone(inputs[0])), projector(backbone(inputs[1]))
        loss = info_nce(z1, z2) / 2 + info_nce(z2, z1) / 2
        if rotation:
            rotated, labels = rotate_images(inputs[2])
            loss = loss + ROTATION_WEIGHT * F.cross_entropy(head(backbone(rotated)), labels)
        loss.backward()
        optimizer.step()

    rate = timed_loop(step, loader_batches(dataset, args), args.batch, args.steps, args.warmup)
    params = sum(p.numel() for p in modules.parameters())
    return {"img_s": rate, "params": params, "torch": torch.__version__}


RUNNERS = {"equissl": run_equissl, "lightly": run_lightly, "conventional": run_conventional}


def worker(argv: list[str]) -> None:
    """`peers.py run ...`: one measurement; prints its result as one JSON line."""
    p = argparse.ArgumentParser(prog="peers.py run")
    p.add_argument("--system", choices=SYSTEMS, required=True)
    p.add_argument("--method", choices=METHODS, required=True)
    for name in ("width", "batch", "steps", "warmup", "threads", "workers"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--data", required=True)
    args = p.parse_args(argv)
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    result = RUNNERS[args.system](args)
    print(json.dumps({**result, "threads": torch.get_num_threads()}))


# -- the orchestration (the project's venv) ----------------------------------------------------
def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every measurement in running order: per row (method, width), the repeats, each visiting
    every system (and each peer at every worker count) in turn."""
    runs = []
    for method in args.methods:
        for width in args.widths:
            variants = [("equissl", 0)] + [
                (system, w)
                for system in PEERS
                if not (system == "lightly" and method != "simclr")
                for w in args.workers
            ]
            for repeat in range(args.repeats):
                for system, workers in variants:
                    runs.append(
                        {
                            "method": method,
                            "width": width,
                            "batch": args.batch,
                            "system": system,
                            "workers": workers,
                            "repeat": repeat,
                        }
                    )
    return runs


def measure(run: dict[str, Any], args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """One measurement in a fresh process of the system's venv; `run` plus its result."""
    python = args.equissl_python if run["system"] == "equissl" else args.peer_python
    cmd = [str(python), __file__, "run"] + [
        f"--{k}={v}" for k, v in run.items() if k not in ("repeat",)
    ]
    cmd += [
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--threads={args.threads}",
        f"--data={data}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return {**run, **json.loads(out.stdout.strip().splitlines()[-1])}


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, width, batch) row and system: the median img/s of the fastest worker
    count, its min and max, and the ratio equissl / the best peer's median."""
    rows: dict[tuple, dict[str, Any]] = {}
    for r in results:
        key = (r["method"], r["width"], r["batch"])
        row = rows.setdefault(key, {"method": key[0], "width": key[1], "batch": key[2]})
        row.setdefault("runs", {}).setdefault((r["system"], r["workers"]), []).append(r["img_s"])
    for row in rows.values():
        for (system, workers), rates in row.pop("runs").items():
            cell = {
                "median": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "workers": workers,
                "n": len(rates),
            }
            if system not in row or cell["median"] > row[system]["median"]:
                row[system] = cell
        peers = [row[p]["median"] for p in PEERS if p in row]
        row["ratio"] = row["equissl"]["median"] / max(peers) if peers else None
    return list(rows.values())


def cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "—"
    workers = cell["workers"]
    workers = f", {workers} worker{'s' if workers > 1 else ''}" if workers else ""
    return f"{cell['median']:.1f} ({cell['min']:.1f}–{cell['max']:.1f}{workers})"


def ratio_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table: median img/s (min–max) per system, equissl / best peer."""
    lines = [
        "| method | width | batch | equissl img/s | lightly img/s | conventional img/s "
        "| equissl / best peer |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = "—" if row["ratio"] is None else f"**{row['ratio']:.2f}x**"
        cells = " | ".join(cell_text(row.get(s)) for s in SYSTEMS)
        lines.append(f"| {row['method']} | {row['width']} | {row['batch']} | {cells} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        return worker(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--widths", nargs="+", type=int, default=[16, 64])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads of every system")
    p.add_argument(
        "--workers", nargs="+", type=int, default=[1, 2], help="DataLoader workers tried per peer"
    )
    p.add_argument("--images", type=int, default=10000, help="training images (class-balanced)")
    p.add_argument("--zip", type=Path, default=ZIP)
    p.add_argument("--peer-python", type=Path, default=CACHE / "peers-venv" / "bin" / "python")
    p.add_argument(
        "--equissl-python", type=Path, default=Path(sys.executable), help="(default: this one)"
    )
    p.add_argument("--out", type=Path, required=True, help="JSON of every run")
    args = p.parse_args(argv)
    if not args.peer_python.exists():
        raise SystemExit(f"no peer venv at {args.peer_python}: run benchmarks/peers/setup.sh")
    data = extract_subset(args.zip, args.images // 10, CACHE / "peers-data")
    runs, results = plan(args), []
    start = time.perf_counter()
    for i, run in enumerate(runs, 1):
        results.append(measure(run, args, data))
        r = results[-1]
        print(
            f"[{i}/{len(runs)} {time.perf_counter() - start:.0f}s] {r['method']} w{r['width']} "
            f"{r['system']} workers {r['workers']}: {r['img_s']:.1f} img/s",
            file=sys.stderr,
        )
    rows = summarize(results)
    table = ratio_table(rows)
    from equissl.app.bench import commit

    note = (
        f"# img/s, median (min–max) of {args.repeats} alternating runs, {args.steps} steps after "
        f"{args.warmup} warm-up, {args.threads} torch threads, batch {args.batch}, "
        f"{args.images} CIFAR-10 JPEGs; peers: the fastest of {args.workers} DataLoader workers; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; commit {commit()}"
    )
    print(note + "\n" + table)
    payload = {"command": " ".join(sys.argv), "note": note, "rows": rows, "runs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
