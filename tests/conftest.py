"""Tests run on one CPU thread: tiny models gain nothing from more, and it keeps timings stable.
The decode cache of every test (and of the processes tests start) is a session folder, never the
user's cache."""

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    previous = os.environ.get("EQUISSL_CACHE")
    os.environ["EQUISSL_CACHE"] = str(tmp_path_factory.mktemp("equissl-cache"))
    yield
    if previous is None:
        os.environ.pop("EQUISSL_CACHE", None)
    else:
        os.environ["EQUISSL_CACHE"] = previous
