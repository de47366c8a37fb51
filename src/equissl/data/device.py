"""Where the uint8 training set lives: on the accelerator when it fits, else pinned CPU memory."""

from __future__ import annotations

import torch

POLICIES = ("auto", "always", "never")
MAX_FREE_FRACTION = 0.5  # "auto" moves the set when it takes less than this of free memory


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether `nbytes` is under half the free memory of a CUDA device (others: always)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < MAX_FREE_FRACTION * free


def place_on_device(
    images: torch.Tensor, device: torch.device | str, policy: str = "auto"
) -> torch.Tensor:
    """`images` moved to `device` ("always"), kept on the CPU ("never", pinned for CUDA), or
    moved when it fits ("auto": always for the CPU, under half the free memory for CUDA)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown device policy {policy!r}; choose one of {', '.join(POLICIES)}")
    device = torch.device(device)
    move = policy == "always" or (
        policy == "auto" and fits_on_device(images.numel() * images.element_size(), device)
    )
    if move:
        return images.to(device)
    if device.type == "cuda" and images.device.type == "cpu":
        return images.pin_memory()
    return images.cpu()
