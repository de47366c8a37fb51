"""The documentation: the site builds with no warnings (`mkdocs build --strict`, as `make docs`),
and the Python blocks of docs/building-blocks.md run as they are."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "Quick tour" in home and 'href="guide.html"' in home  # the README, links rewritten
    api = (site / "api" / "models.html").read_text(encoding="utf-8")
    assert "as_backbone" in api and "build_backbone" in api  # from the docstrings


@pytest.mark.parametrize("index", [0, 1])
def test_building_blocks_examples_run(index, monkeypatch, tmp_path, capsys):
    blocks = python_blocks(ROOT / "docs" / "building-blocks.md")
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "building_blocks"}
    exec(compile(blocks[index], f"building-blocks.md[{index}]", "exec"), namespace)
    if index == 1:  # the user's network trained inside a method
        assert "rotation accuracy" in capsys.readouterr().out
        assert namespace["method"].backbone.module.__class__.__name__ == "SmallConvNet"
