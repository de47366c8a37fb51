#!/usr/bin/env bash
# The items of ../shared/GPU.md as prepared commands, each about 8 minutes at most, writing
# their raw output under $OUT (the device tool brings it back). Prepare here once:
#   .venv/bin/python benchmarks/speed_gpu.py --prepare      # data/ and .cache/gpu-site/
# Then on the device (carry ["data", ".cache/gpu-site"]):
#   bash benchmarks/gpu_items.sh 1 <commit>        # step anatomy, 4 bench rows
#   bash benchmarks/gpu_items.sh 2 <commit> [EPOCHS]  # E-SimCLR, a dedicated short schedule
#   bash benchmarks/gpu_items.sh 3 <commit> [EPOCHS]  # SimCLR, the same schedule
#   bash benchmarks/gpu_items.sh 5 <commit>        # CARE and the C4 EqResNet-18 step
# Item 4 (the conventional PIL pipeline) is benchmarks/peers/ (it needs torchvision there).
# Items 2 and 3 resume where a call stopped: call again until the summary says done.
set -euo pipefail
item=${1:?item number}
commit=${2:-unknown}
epochs=${3:-100}
out=${OUT:-gpu-out}
mkdir -p "$out"
export PYTHONPATH=src:.cache/gpu-site
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  echo "commit $commit, item $item, $(date -u +%FT%TZ)"
} | tee "$out/machine.txt"
bench() {  # bench NAME PRESETS... : one `equissl bench` row into $out/NAME.json
  local name=$1
  shift
  python3 -m equissl bench "$@" data.path=data/cifar10-jpeg.zip steps=20 warmup=5 \
    "out=$out/$name.json" | tee "$out/$name.md"
}
case $item in
  1)
    for method in simclr esimclr; do
      bench "$method" "$method" cifar10-gpu-speed
      bench "$method-compiled" "$method" cifar10-gpu-speed trainer.compile=true
    done
    ;;
  2 | 3)
    method=$([ "$item" = 2 ] && echo esimclr || echo simclr)
    python3 benchmarks/speed_gpu.py --method "$method" --epochs "$epochs" \
      --snapshots "$epochs" --budget 470 --commit "$commit" --out "$out"
    ;;
  5)
    bench care care cifar10-gpu-speed
    bench esimclr-eqresnet18-c4 esimclr cifar10-gpu-speed backbone=eqresnet18 group=c4
    ;;
  *)
    echo "item $item: see benchmarks/gpu_items.sh's header" >&2
    exit 2
    ;;
esac
