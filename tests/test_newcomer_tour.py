"""benchmarks/newcomer_tour.py reads the README's quick tour as the shell would, and the tour
runs in order: whatever reads a run's folder comes after the command that names that run."""

import re
from pathlib import Path

from scripts import ROOT, load_script

tour = load_script(Path("benchmarks/newcomer_tour.py"))


def test_commands_are_split_as_the_shell_would():
    readme = (
        '## Quick tour\n\n```\nequissl a b=1 \\\n    c=2   # note\nequissl d "e=[{x: y}]"\n```\n'
    )
    assert tour.tour_commands(readme) == [
        ["equissl", "a", "b=1", "c=2"],
        ["equissl", "d", "e=[{x: y}]"],
    ]


def test_the_readme_tour_runs_in_order():
    commands = tour.tour_commands((ROOT / "README.md").read_text())
    assert len(commands) >= 20 and all(c[0] == "equissl" for c in commands)
    named = set()
    for argv in commands:
        for arg in argv[1:]:
            read = re.findall(r"runs/([^/*\s]+)", arg)
            assert all(r in named for r in read), f"{' '.join(argv)} reads a run made later"
        named |= {a.split("=", 1)[1] for a in argv if a.startswith("name=")}


def test_long_outputs_are_cut_in_the_middle():
    text = "\n".join(str(i) for i in range(200))
    kept = tour.cut(text).splitlines()
    assert kept[0] == "0" and kept[-1] == "199" and len(kept) == 2 * tour.KEEP + 1
    assert "cut" in kept[tour.KEEP] and tour.cut("a\nb") == "a\nb"
