#!/usr/bin/env bash
# Build the peer virtualenv of benchmarks/peers/peers.py (default .cache/peers-venv, ignored by
# git): the regular torch 2.13.0 wheel (the CUDA build its users install; the peers run on the
# CPU), torchvision 0.28.0, lightly 1.6.0, Pillow and NumPy, and equissl's own dependencies
# (from pyproject.toml), so that peers.py --equissl-python can run equissl on the same torch
# build as a control. About 5 minutes and 5.2 GB.
#   benchmarks/peers/setup.sh
#   PEERS_VENV=/path PYTHON=python3.11 benchmarks/peers/setup.sh
# No +cpu fallback: PyPI's torchvision wheel does not load with torch 2.13.0+cpu ("operator
# torchvision::nms does not exist"), and torchvision's +cpu wheel is not on PyPI.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${PEERS_VENV:-$root/.cache/peers-venv}"
start=$(date +%s)
"${PYTHON:-python3}" -m venv "$venv"
# Without the machine's pip settings: they pin torch (a constraint file) and offer the +cpu
# wheel from a local folder (find-links), which would satisfy torch==2.13.0.
env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
  "$venv/bin/python" -m pip install --disable-pip-version-check \
  torch==2.13.0 torchvision==0.28.0 lightly==1.6.0 pillow numpy \
  $("$venv/bin/python" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print(" ".join(d for d in deps if not d.startswith("torch")))  # torch is pinned above
PY
)
"$venv/bin/python" - <<'PY'
import lightly, torch, torchvision
print(f"peers venv: torch {torch.__version__} (CUDA build {torch.version.cuda}), "
      f"torchvision {torchvision.__version__}, lightly {lightly.__version__}")
PY
PYTHONPATH="$root/src" "$venv/bin/python" -c "import equissl.app.train"  # equissl runs there
echo "built $venv in $(( $(date +%s) - start )) s, $(du -sh "$venv" | cut -f1)"
