"""The evaluation suite end to end on a tiny digits run: `equissl eval` with low-label probes
and fine-tuning, transfer to a dataset of another image size, corruptions and the embedding
pictures; and the one-line errors of its settings."""

import json

import pytest
import torch

from equissl.app.cli import main
from equissl.app.config import build_config
from equissl.app.runner import pretrain


def write_imagefolder(root, per_class, size):
    """root/{train,test}/<class>/NNNN.png of random colour images, 3 classes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, count in per_class.items():
        for name in ("ant", "bee", "cow"):
            (root / part / name).mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(image).save(root / part / name / f"{i:04d}.png")


TINY = [
    "data.limit=200",
    "data.test_limit=100",
    "data.size=12",
    "backbone.width=4",
    "optim.batch_size=50",
    "optim.epochs=1",
    "optim.warmup_epochs=0",
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "eval.at_end=false",
    "eval.linear.epochs=5",
    "eval.linear.seeds=2",
    "eval.knn.k=5",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    pretrain(build_config(["simclr"], [*TINY, f"out_dir={root}", "name=run"]))
    return root / "run" / "last.ckpt"


def test_eval_runs_the_whole_suite(checkpoint, tmp_path):
    other = tmp_path / "other"
    write_imagefolder(other, {"train": 6, "test": 4}, size=20)
    argv = [
        "eval",
        f"ckpt={checkpoint}",
        "out=suite.json",
        "eval.low_label=[0.1,0.5]",
        "eval.finetune.epochs=1",
        "eval.finetune.batch_size=10",
        "eval.transfer.name=imagefolder",
        f"eval.transfer.path={other}",
        "eval.corruptions=[all]",
        "eval.corruption_limit=30",
        "eval.embedding_plot=true",
        "eval.embedding_limit=60",
        "eval.linear.solver=lbfgs",
    ]
    assert main(argv) == 0
    run = checkpoint.parent
    r = json.loads((run / "suite.json").read_text())
    assert not (run / "eval.json").exists()
    assert "online_acc" not in r  # the checkpoint's classifier is not loaded: nothing to report
    for key, labels in (("low_label_10", 20), ("low_label_50", 100)):
        assert r[key]["labels"] == labels  # of the 200 training images
        assert 0 <= r[key]["linear_acc"] <= 100 and 0 <= r[key]["finetune_acc"] <= 100
    # the 20x20 images are resized to the 12x12 of pretraining; 3 classes
    assert r["transfer_data"] == "imagefolder" and 0 <= r["transfer_linear_acc"] <= 100
    from equissl.eval.corruptions import CORRUPTIONS

    assert set(r["corruption_acc"]) == set(CORRUPTIONS)
    assert all(len(accs) == 5 for accs in r["corruption_acc"].values())
    mean = sum(map(sum, r["corruption_acc"].values())) / (5 * len(CORRUPTIONS))
    assert r["corruption_mean_acc"] == pytest.approx(mean)
    assert 0 <= r["retrieval_precision"] <= 100 and r["embedding_maps"][0] == "t-SNE"
    for png in ("corruptions.png", "embedding_map.png", "retrieval.png"):
        assert (run / png).stat().st_size > 1000, png


def test_eval_reports_the_augmented_probe_beside_the_cached_one(checkpoint, tmp_path):
    """eval.linear.protocol=augmented (E-SSL's linear evaluation, small limits here): its result
    is under linear_aug_*, the cached probe's under linear_*."""
    argv = [
        "eval",
        f"ckpt={checkpoint}",
        "out=aug.json",
        "eval.linear.protocol=augmented",
        "eval.linear.augmented.epochs=1",
        "eval.linear.augmented.seeds=2",
        "eval.linear.augmented.batch_size=64",
        "eval.linear.augmented.test_resize=14",
        "eval.linear.augmented.test_crop=12",
    ]
    assert main(argv) == 0
    r = json.loads((checkpoint.parent / "aug.json").read_text())
    assert len(r["linear_aug_accs"]) == 2 and 0 <= r["linear_aug_acc"] <= 100
    assert 0 <= r["linear_acc"] <= 100 and r["linear_aug_seconds"] > 0


@pytest.mark.parametrize(
    "override,message",
    [
        ("eval.low_label=[0]", "bad value for 'eval.low_label.0': 0"),
        ("eval.low_label=[1.5]", "a label fraction in (0, 1]"),
        ("eval.corruptions=[rain]", "bad value for 'eval.corruptions.0': 'rain'"),
        ("eval.linear.solver=sgd", "choose one of adamw, lbfgs"),
        ("eval.linear.protocol=fast", "choose one of cached, augmented"),
        ("eval.linear.augmented.optimizer=lbfgs", "choose one of sgd, adam"),
        ("eval.finetune.epochs=-1", "'eval.finetune.epochs'"),
    ],
)
def test_bad_suite_settings_exit_2_with_one_line(override, message, capsys, tmp_path):
    # were the setting accepted, the run would be short: no epochs, no evaluation
    argv = ["pretrain", override, "optim.epochs=0", "eval.at_end=false", f"out_dir={tmp_path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_transfer_to_a_missing_dataset_is_one_line(checkpoint, capsys):
    argv = ["eval", f"ckpt={checkpoint}", "eval.transfer.name=cifar10", "eval.transfer.path=/no"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/no" in err, err


def test_eval_out_must_be_a_json_name(checkpoint, capsys):
    assert main(["eval", f"ckpt={checkpoint}", "out=../x.json"]) == 2
    assert "out= names a .json file" in capsys.readouterr().err


def test_online_accuracy_is_the_classifiers_test_accuracy():
    """Wang et al.'s reported number: the online classifier's argmax on test features."""
    from equissl.app.runner import online_accuracy

    classifier = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        classifier.weight.copy_(torch.eye(3))
    features = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [5.0, 0, 0]])
    assert online_accuracy(classifier, features, torch.tensor([0, 1, 2, 1])) == 75.0
    assert online_accuracy(classifier, features, torch.tensor([1, 1, 1, 1])) == 25.0
