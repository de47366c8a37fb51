"""Tests run on one CPU thread: tiny models gain nothing from more, and it keeps timings stable."""

import torch

torch.set_num_threads(1)
