"""Checks behind docs/results/photonics-cpu.md, on a dataset that `equissl photonics` built.

`references`: test errors that need no network: the training split's mean DOS, the homogeneous
medium of each cell's mean permittivity (the workflow's reference row), and the best straight
line a x 2 pi f through each true DOS (an oracle fitted on the test target itself).

`pair-head`: E-SimCLR's pretext task alone (no SimCLR term): the family's invariance
augmentation, then the predicted transformation; the head reads the pair's features as their
difference f(g v) - f(v), as [f(v), f(g v) - f(v)], or concatenated [f(v), f(g v)]. Prints the
mean training accuracy of every 40 steps.

    .venv/bin/python benchmarks/photonics_checks.py references --family blob
    .venv/bin/python benchmarks/photonics_checks.py pair-head --family blob --head diff --pool avg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from equissl.models import transformation_head
from equissl.objectives import prediction_loss
from equissl.photonics import empty_lattice_dos, homogeneous_medium_target
from equissl.photonics.augment import equivariance_transform, invariance_augment, normalise
from equissl.photonics.dataset import load_dataset
from equissl.photonics.learn import build_encoder, relative_l1
from equissl.photonics.workflow import config_from

HEADS = {
    "diff": lambda a, b: b - a,
    "cat-diff": lambda a, b: torch.cat([a, b - a], 1),
    "cat": lambda a, b: torch.cat([a, b], 1),
}


def dataset_dir(args: argparse.Namespace) -> Path:
    """The cpu scale's dataset of the family under --root (the only one of its name)."""
    found = sorted(Path(args.root).glob(f"{args.family}-l1000-u5000-s{args.seed}-*"))
    if len(found) != 1:
        raise SystemExit(f"expected one {args.family} cpu-scale dataset under {args.root}")
    return found[0]


def references(args: argparse.Namespace) -> None:
    cfg = config_from({"scale": "cpu"})
    data = load_dataset(dataset_dir(args))
    settings = cfg.settings()
    empty = empty_lattice_dos(settings.frequency_grid(), settings.sigma)
    test = data.dos[: cfg.n_test].double()
    train = data.dos[cfg.n_test + cfg.n_val :].double()
    slope = ((test + empty)[:, cfg.skip :] * empty[cfg.skip :]).sum(1) / empty[
        cfg.skip :
    ].square().sum()
    predictions = {
        "train-mean DOS": train.mean(0, keepdim=True).expand_as(test),
        "homogeneous medium of the mean eps": homogeneous_medium_target(data.cells[: cfg.n_test]),
        "oracle straight line": (slope[:, None] - 1) * empty,
    }
    for name, pred in predictions.items():
        error = relative_l1(pred, test, empty, cfg.skip).mean()
        print(f"{args.family}: {name}: {100 * float(error):.2f} %")


def pair_head(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    cells = normalise(load_dataset(dataset_dir(args)).unlabeled)
    size = cells.shape[-1]
    torch.manual_seed(0)
    encoder = build_encoder("cnn", 16, args.pool, size)
    combine = HEADS[args.head]
    width = combine(torch.zeros(1, encoder.num_features), torch.zeros(1, encoder.num_features))
    head = transformation_head(width.shape[1], 256, 4)
    eq, augment = equivariance_transform(args.family, size), invariance_augment(args.family, size)
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    accs = torch.zeros(args.steps)
    for step in range(args.steps):
        v = cells[torch.randint(cells.shape[0], (128,), generator=g)]
        v = augment(v, g) if args.augment else v
        labels = eq.sample(128, g, v.device)
        h = encoder(torch.cat([v, eq.apply(v, labels)])).split(128)
        loss, accs[step] = prediction_loss(head(combine(h[0], h[1])), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    means = accs.view(-1, 40).mean(1).tolist()
    print(
        f"{args.family} head={args.head} pool={args.pool} augment={args.augment}: accuracy per 40 steps"
    )
    print(", ".join(f"{100 * m:.1f}" for m in means))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("check", choices=["references", "pair-head"])
    p.add_argument("--family", default="blob", choices=["blob", "pm"])
    p.add_argument("--root", default=".cache/equissl/photonics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", default="diff", choices=list(HEADS))
    p.add_argument("--pool", default="avg", choices=["avg", "flatten"])
    p.add_argument("--steps", type=int, default=240, help="a multiple of 40")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    args = p.parse_args()
    references(args) if args.check == "references" else pair_head(args)


if __name__ == "__main__":
    main()
