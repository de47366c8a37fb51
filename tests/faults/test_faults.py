"""The fault-injection suite (cases in cases.py): every hostile input and unlucky event ends in
its exit status, one line on stderr naming the problem, nothing half-written and nothing lost."""

from __future__ import annotations

import pytest
from cases import (
    CASES,
    Context,
    apply_fault,
    leftovers,
    release_held,
    snapshot,
    trained_run,
)

from equissl.app.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("trained"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case, tmp_path, trained, monkeypatch, capsys):
    ctx = Context(tmp_path, trained)
    argv = case.argv(ctx)
    before = snapshot(tmp_path)
    apply_fault(case.fault, monkeypatch.setattr)
    capsys.readouterr()
    try:
        status = main(argv)
    finally:
        release_held()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]

    assert status == case.status, lines
    if case.status == 0:
        assert not lines
    else:
        assert len(lines) == 1, lines
        expect = case.expect.replace("$TMP", str(tmp_path))
        assert lines[0].startswith("equissl: ") and expect in lines[0], lines[0]
    assert not leftovers(tmp_path)
    if case.keeps_files:
        after = snapshot(tmp_path)
        changed = [k for k, v in before.items() if after.get(k) != v]
        assert not changed, f"changed or lost: {changed}"
    if case.check is not None:
        case.check(ctx)


def test_the_suite_covers_every_family_with_forty_cases():
    families = {c.family for c in CASES}
    assert families >= {
        "config",
        "data",
        "training",
        "checkpoints",
        "outputs",
        "run folders",
        "sweeps",
    }
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
