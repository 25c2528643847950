#!/usr/bin/env bash
# Pretrain DropPos on the built-in default, the laptop recipe (a 4-block ViT-Tiny, 32 px MNIST digits in 8 px patches,
# 16 epochs) after setting itself up.
# Extra arguments go to `droppos_nb pretrain` (see `.venv/bin/droppos_nb pretrain --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export MPLBACKEND=Agg
.venv/bin/droppos_nb pretrain --out "${OUT:-runs/droppos-mnist5k}" "$@"
