"""benchmarks/peers/peers.py's pure helpers (the plan of alternating runs, the medians and the
ratio table), in the project's venv: the measurement itself needs the peer venv and is not a test."""

from pathlib import Path

from scripts import load_script

peers = load_script(Path("benchmarks/peers/peers.py"))


def run(system, workers, img_s, method="simclr"):
    return {
        "method": method,
        "width": 16,
        "batch": 256,
        "system": system,
        "workers": workers,
        "img_s": img_s,
    }


def test_plan_alternates_systems_and_skips_lightly_for_esimclr():
    args = peers.argparse.Namespace(
        methods=["simclr", "esimclr"], widths=[16], batch=256, repeats=2, workers=[1, 2]
    )
    order = [(r["method"], r["system"], r["workers"], r["repeat"]) for r in peers.plan(args)]
    simclr = [o[1:] for o in order if o[0] == "simclr"]
    assert simclr[:5] == [
        ("equissl", 0, 0),
        ("lightly", 1, 0),
        ("lightly", 2, 0),
        ("conventional", 1, 0),
        ("conventional", 2, 0),
    ]
    assert simclr[5][0] == "equissl" and simclr[5][2] == 1 and len(simclr) == 10
    assert not any(o[0] == "esimclr" and o[1] == "lightly" for o in order)


def test_summary_keeps_each_peers_fastest_worker_count_and_the_ratio_to_the_best_peer():
    results = [run("equissl", 0, r) for r in (30, 33, 31)]
    results += [run("lightly", 1, r) for r in (20, 22, 21)]
    results += [run("lightly", 2, r) for r in (24, 25, 23)]
    results += [run("conventional", 2, r) for r in (10, 12, 11)]
    results += [run("equissl", 0, 20, "esimclr"), run("conventional", 1, 16, "esimclr")]
    simclr, esimclr = peers.summarize(results)
    assert simclr["equissl"] == {"median": 31, "min": 30, "max": 33, "workers": 0, "n": 3}
    assert simclr["lightly"]["workers"] == 2 and simclr["lightly"]["median"] == 24
    assert simclr["ratio"] == 31 / 24 and esimclr["ratio"] == 20 / 16
    table = peers.ratio_table([simclr, esimclr]).splitlines()
    assert table[2] == (
        "| simclr | 16 | 256 | 31.0 (30.0–33.0) | 24.0 (23.0–25.0, 2 workers) "
        "| 11.0 (10.0–12.0, 2 workers) | **1.29x** |"
    )
    assert table[3].split(" | ")[4] == "—" and table[3].endswith("**1.25x** |")
