"""Low-label splits are class-balanced and seeded; fine-tuning learns and leaves the given
encoder untouched."""

import torch

from equissl.data.convert import resize, to_channels
from equissl.data.digits import read_digits
from equissl.eval.low_label import finetune_accuracy, low_label_indices
from equissl.models import build_backbone


def test_split_is_class_balanced_seeded_and_sized():
    labels = torch.arange(10).repeat_interleave(500)[torch.randperm(5000)]
    for fraction, per_class in ((0.01, 5), (0.1, 50)):
        keep = low_label_indices(labels, fraction, seed=3)
        assert keep.numel() == round(fraction * 5000)
        assert torch.equal(torch.bincount(labels[keep], minlength=10), torch.full((10,), per_class))
        assert torch.equal(keep, low_label_indices(labels, fraction, seed=3))
        assert not torch.equal(keep, low_label_indices(labels, fraction, seed=4))
        assert keep.unique().numel() == keep.numel()
    # never fewer than one label per class
    assert torch.equal(
        torch.bincount(labels[low_label_indices(labels, 1e-4)]), torch.ones(10).long()
    )


def test_finetuning_learns_and_does_not_touch_the_encoder():
    digits = read_digits()
    images = to_channels(resize(digits.train.images, 16), 3)
    test = to_channels(resize(digits.test.images, 16), 3)
    torch.manual_seed(0)
    net = build_backbone("resnet18", width=4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    keep = low_label_indices(digits.train.labels, 0.2)
    kw = dict(num_classes=10, mean=torch.full((3,), 0.3), std=torch.full((3,), 0.3))
    split = (images[keep], digits.train.labels[keep], test, digits.test.labels)
    trained = finetune_accuracy(net, *split, epochs=10, lr=0.1, batch_size=64, **kw)
    untrained = finetune_accuracy(net, *split, epochs=0, **kw)
    assert trained > 35 and trained > untrained + 20, (trained, untrained)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
