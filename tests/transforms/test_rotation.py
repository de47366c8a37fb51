import torch

from equissl.transforms import expand_rotations, rotate


def test_rotation_labels_match_rot90_of_the_inputs():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    rotated, labels = expand_rotations(x)
    assert rotated.shape == (8, 3, 5, 5)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for i in range(8):
        assert torch.equal(rotated[i], torch.rot90(x[i % 2], int(labels[i]), dims=(1, 2)))


def test_rotation_is_an_exact_c4_action():
    x = torch.randn(3, 2, 6, 6)
    assert torch.equal(rotate(rotate(rotate(rotate(x, 1), 1), 1), 1), x)
    assert torch.equal(rotate(rotate(x, 1), 3), x)
    assert torch.equal(rotate(x, 2), x.flip(2).flip(3))
    # the official E-SSL code's 90-degree turn: flip the width axis, then transpose
    assert torch.equal(rotate(x, 1), x.flip(3).transpose(2, 3))
