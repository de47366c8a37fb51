"""The runnable examples (examples/*.py): each is a short loop over public blocks only, and runs
at a tiny size to a finite, decreasing loss and a kNN accuracy in [0, 100]."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from types import ModuleType

import pytest

from scripts import load_script

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = ("esimclr", "care")
MAX_LINES = 120
# The tool on top of the blocks: an example that needs one of these is not a plain loop.
FORBIDDEN = (
    "equissl.app",
    "equissl.methods",
    "equissl.train",
    "equissl.runner",
    "equissl.config",
    "equissl.cli",
)
BLOCKS = ("augment", "transforms", "models", "objectives", "data", "eval")
TINY = ["--width", "4", "--size", "16", "--batch", "32", "--device", "cpu"]
# Per example: the steps and lr at which the tiny run learns visibly within a few seconds.
SETTINGS = {
    "esimclr": ["--steps", "30", "--lr", "2.0"],
    "care": ["--steps", "30", "--lr", "1e-3", "--chunks", "4"],
}


def load(name: str) -> ModuleType:
    return load_script(EXAMPLES / f"{name}.py", f"example_{name}")


def imported_modules(path: Path) -> list[str]:
    """Every module an example imports (`import a.b`, `from a.b import c` -> a.b and a.b.c)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("name", NAMES)
def test_example_is_short(name):
    lines = (EXAMPLES / f"{name}.py").read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"examples/{name}.py has {len(lines)} lines"


@pytest.mark.parametrize("name", NAMES)
def test_example_uses_public_blocks_only(name):
    ours = [m for m in imported_modules(EXAMPLES / f"{name}.py") if m.split(".")[0] == "equissl"]
    assert ours
    assert not [m for m in ours if m.startswith(FORBIDDEN)], f"examples/{name}.py: {ours}"
    assert all(m.split(".")[1] in BLOCKS for m in ours if m != "equissl"), ours
    assert "equissl" not in ours
    assert not [m for m in ours if any(p.startswith("_") for p in m.split("."))], ours


@pytest.mark.parametrize("name", NAMES)
def test_example_runs_tiny(name, capsys):
    result = load(name).main([*TINY, *SETTINGS[name]])
    losses = result["losses"]
    assert result["steps"] == len(losses) == 30
    assert all(math.isfinite(loss) for loss in losses)
    third = len(losses) // 3
    assert sum(losses[-third:]) < sum(losses[:third]), losses
    assert 0 <= result["knn_acc"] <= 100
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith(f"{'E-SimCLR' if name == 'esimclr' else 'CARE'}: kNN accuracy")
    assert f"after {len(losses)} steps" in out[-1]


def test_example_stops_at_steps(capsys):
    """--steps ends training mid-epoch."""
    result = load("care").main([*TINY, "--steps", "2", "--chunks", "2"])
    assert result["steps"] == 2 and len(result["losses"]) == 2


def test_extending_guide_lists_each_example_with_its_line_count():
    guide = (EXAMPLES.parent / "docs" / "extending.md").read_text()
    for name in NAMES:
        count = len((EXAMPLES / f"{name}.py").read_text().splitlines())
        assert f"[`examples/{name}.py`](../examples/{name}.py) | {count} |" in guide, name
