"""`equissl baseline pixels|random`: raw-pixel kNN equals scikit-learn's weighted kNN on the same
normalised pixels; a separable set is probed perfectly; the random-init baseline is the
untrained encoder a 0-epoch pretraining evaluates, the same for the same seed; `equissl report`
tables both beside each other."""

import json

import numpy as np
import pytest

from equissl.app.baseline import run_baseline
from equissl.app.cli import main
from equissl.app.config import build_config
from equissl.app.runner import pretrain
from equissl.data import load_data

TINY = ["data.size=12", "backbone.width=4", "eval.linear.epochs=20", "eval.knn.k=7"]


def _cfg(tmp_path, name, *extra):
    return build_config(["smoke"], [*TINY, f"out_dir={tmp_path}", f"name={name}", *extra])


def test_pixel_knn_is_sklearns_weighted_knn_on_normalised_pixels(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier

    cfg = _cfg(tmp_path, "px")
    results = run_baseline("pixels", cfg)
    assert json.loads((tmp_path / "px" / "results.json").read_text()) == results
    assert results["method"] == "raw-pixels" and results["steps"] == 0

    data = load_data(cfg.data)  # the reference: numpy pixels, sklearn's brute-force kNN
    train = data.train.images.numpy().astype(np.float64) / 255
    mean, std = train.mean(axis=(0, 2, 3)), train.std(axis=(0, 2, 3))

    def pixels(images):
        x = images.numpy().astype(np.float64) / 255
        return ((x - mean[:, None, None]) / std[:, None, None]).reshape(len(x), -1)

    t = cfg.eval.knn.temperature
    knn = KNeighborsClassifier(
        n_neighbors=7, metric="cosine", algorithm="brute", weights=lambda d: np.exp((1 - d) / t)
    )
    knn.fit(pixels(data.train.images), data.train.labels.numpy())
    expected = 100 * np.mean(knn.predict(pixels(data.test.images)) == data.test.labels.numpy())
    assert results["knn_acc"] == pytest.approx(expected, abs=1e-4)


def test_pixels_of_a_separable_set_are_probed_perfectly(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, n in (("train", 12), ("test", 6)):
        for label, (low, high) in enumerate(((0, 90), (166, 256))):  # dark vs bright noise
            folder = tmp_path / "set" / part / f"c{label}"
            folder.mkdir(parents=True)
            for i in range(n):
                image = rng.integers(low, high, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f"{i}.png")
    cfg = _cfg(
        tmp_path,
        "sep",
        "data.name=imagefolder",
        f"data.path={tmp_path / 'set'}",
        "data.size=null",
        "data.limit=null",
        "data.test_limit=null",
        "eval.knn.k=3",
    )
    results = run_baseline("pixels", cfg)
    assert results["linear_acc"] == 100.0 and results["knn_acc"] == 100.0


def test_random_baseline_is_the_untrained_encoder_and_deterministic(tmp_path, capsys):
    first = run_baseline("random", _cfg(tmp_path, "r0"))
    again = run_baseline("random", _cfg(tmp_path, "r0b"))
    other = run_baseline("random", _cfg(tmp_path, "r1", "seed=1"))
    untrained = pretrain(_cfg(tmp_path, "p0", "optim.epochs=0"))
    keys = ("linear_acc", "linear_std", "knn_acc")
    assert [first[k] for k in keys] == [again[k] for k in keys]
    assert [first[k] for k in keys] == [untrained[k] for k in keys]
    assert (first["knn_acc"], first["linear_acc"]) != (other["knn_acc"], other["linear_acc"])
    assert first["method"] == "random-init" and first["backbone"] == "resnet18-w4"
    assert "online_acc" not in first  # an untrained classifier's

    run_baseline("pixels", _cfg(tmp_path, "px"))
    out = tmp_path / "table"
    assert main(["report", str(tmp_path / "px"), str(tmp_path / "r0"), f"out={out}"]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "raw-pixels" in table and "random-init" in table


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["baseline"], "baseline needs its kind first: pixels or random"),
        (["baseline", "smoke"], "baseline needs its kind first: pixels or random"),
    ],
)
def test_baseline_usage_errors_are_one_line(argv, expected, capsys, tmp_path):
    assert main([*argv, f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
    assert not any(tmp_path.iterdir())
