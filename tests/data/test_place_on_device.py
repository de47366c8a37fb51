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


def test_auto_policy_on_cuda_moves_only_what_fits_in_half_the_free_memory(monkeypatch):
    from equissl.data import device as device_module

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    cuda = torch.device("cuda")
    assert device_module.fits_on_device(499, cuda)
    assert not device_module.fits_on_device(500, cuda)
    assert device_module.fits_on_device(10**12, torch.device("cpu"))
