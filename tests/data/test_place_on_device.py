"""place_on_device policies; the CUDA memory check is tested with a stubbed mem_get_info."""

from __future__ import annotations

import pytest
import torch

from equissl.data import place_on_device
from equissl.data.device import fits_on_device


@pytest.mark.parametrize("policy", ["auto", "always", "never"])
def test_cpu_device_keeps_the_tensor(policy):
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    placed = place_on_device(images, torch.device("cpu"), policy)
    assert placed.device.type == "cpu" and torch.equal(placed, images)


def test_unknown_policy():
    with pytest.raises(ValueError, match="unknown device policy"):
        place_on_device(torch.zeros(1, 1, 1, 1, dtype=torch.uint8), "cpu", "sometimes")


def test_fits_under_half_of_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    cuda = torch.device("cuda", 0)
    assert fits_on_device(499, cuda) and not fits_on_device(500, cuda)
    assert fits_on_device(10**12, torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_policies():
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    assert place_on_device(images, "cuda", "always").is_cuda
    assert place_on_device(images, "cuda", "auto").is_cuda
    kept = place_on_device(images, "cuda", "never")
    assert kept.device.type == "cpu" and kept.is_pinned()
