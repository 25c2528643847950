#!/usr/bin/env bash
# Run every test: the notebooks (nbdev_test) and the command-line / end-to-end tests (pytest). Sets itself up first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export MPLBACKEND=Agg PYTHONWARNINGS=ignore
echo "== nbdev_test: every notebook in nbs/ =="
.venv/bin/nbdev_test --n_workers 2 --timing
echo "== pytest: tests/ =="
.venv/bin/python -m pytest -q tests "$@"
