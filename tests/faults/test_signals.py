"""Signals on real processes, as a scheduler and a user send them: SIGTERM writes a checkpoint
at the next step boundary and exits 143, SIGINT exits 130 with the checkpoint whole, SIGKILL
loses at most the epoch in progress; the same command then continues exactly. A second process
cannot share a run folder."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from cases import (
    LONG,
    cli_process,
    signal_before_training,
    signal_run,
    step_losses,
    tiny,
    wait_for,
)

from equissl.app.cli import main


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run every interrupted one is compared with."""
    tmp = tmp_path_factory.mktemp("whole")
    assert main(tiny(tmp, *LONG, name="whole")) == 0
    run = tmp / "runs" / "whole"
    return step_losses(run), json.loads((run / "results.json").read_text())


@pytest.mark.parametrize(
    "signum,status,line",
    [
        (signal.SIGTERM, 143, "equissl: terminated (SIGTERM) at step "),
        (signal.SIGINT, 130, "equissl: interrupted (SIGINT) at step "),
        (signal.SIGKILL, -9, None),
    ],
    ids=["SIGTERM", "SIGINT", "SIGKILL"],
)
def test_a_signalled_run_continues_exactly(signum, status, line, whole, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "system-tmp"))
    (tmp_path / "system-tmp").mkdir()
    code, err, run = signal_run(tmp_path, signum, "cut")
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == status, err
    if line is None:
        assert not lines
    else:
        assert len(lines) == 1 and lines[0].startswith(line), lines
        assert "run the same command again (resume=auto)" in lines[0]
        step = int(lines[0].removeprefix(line).split(";")[0])
        ckpt = torch.load(run / "last.ckpt", weights_only=False)
        assert ckpt["global_step"] == step  # written at the step boundary it names
    assert not (run / "results.json").exists()  # a stopped run never reports a result
    temps = [p for p in run.iterdir() if p.name.endswith(".tmp")]
    if signum == signal.SIGKILL:  # a kill may leave the file it was writing, beside the whole one
        assert all(p.name.startswith((".last.ckpt.", ".metrics.csv.")) for p in temps), temps
    else:
        assert not temps  # a held signal finishes its writes
    assert not list((tmp_path / "system-tmp").iterdir())  # nothing staged in the system temp

    assert main(tiny(tmp_path, *LONG, name="cut")) == 0
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # the resumed run cleans up
    losses, results = whole
    assert step_losses(run) == losses  # every step, bit for bit
    again = json.loads((run / "results.json").read_text())
    assert again["linear_acc"] == results["linear_acc"]
    assert again["knn_acc"] == results["knn_acc"]


def test_sigterm_during_start_up_stops_with_one_line(tmp_path):
    code, err = signal_before_training(tmp_path)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 143
    assert len(lines) == 1 and lines[0].startswith("equissl: terminated (SIGTERM)"), lines


def test_a_second_process_cannot_share_a_run_folder(tmp_path):
    first = cli_process(tiny(tmp_path, *LONG, "optim.epochs=1000", name="shared"))  # minutes
    try:
        wait_for(tmp_path / "runs" / "shared" / "last.ckpt", first)
        second = cli_process(tiny(tmp_path, *LONG, name="shared"))
        _, err = second.communicate(timeout=120)
        lines = [x for x in err.splitlines() if x.strip()]
        assert second.returncode == 2
        assert len(lines) == 1, lines
        assert f"is in use by process {first.pid}; wait for it" in lines[0]
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143  # the first run was not disturbed by the second


def test_equissl_holds_the_signals_while_it_trains(tmp_path):
    """Lightning puts in a SIGTERM handler of its own when fitting starts; left there, it would
    stop the run between two steps without a checkpoint."""
    from lightning.pytorch.callbacks import Callback

    from equissl.app import signals
    from equissl.app.config import build_config
    from equissl.app.runner import pretrain

    seen = []

    class Look(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append((signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)))

    before = signal.getsignal(signal.SIGTERM)
    with signals.installed():
        pretrain(build_config(["simclr"], tiny(tmp_path)[2:]), callbacks=[Look()])
    assert seen and all(h == (signals._handler, signals._handler) for h in seen)
    assert signal.getsignal(signal.SIGTERM) is before  # given back afterwards


FORKED_WORKER = """
import multiprocessing, signal, time
from equissl.app import signals

def work():
    time.sleep(60)

with signals.installed():
    child = multiprocessing.get_context("fork").Process(target=work)
    child.start()
    time.sleep(0.5)
    child.terminate()  # SIGTERM, as Pool.terminate() sends its workers
    child.join(30)
print(child.exitcode)
"""


def test_a_forked_worker_ends_quietly_on_sigterm():
    """A decoding pool's workers inherit equissl's handler when they fork; the SIGTERM that
    Pool.terminate() sends them must end them as the default action does, with no traceback.
    (In a fresh interpreter without torch: forking this test process could hang the child.)"""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", FORKED_WORKER], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == str(-signal.SIGTERM), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
