#!/usr/bin/env bash
# Run every test: the notebooks (nbdev_test) and the command-line / end-to-end tests (pytest). Sets itself up first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
# the browser test (tests/test_browser.py) drives Debian's chromium with Playwright; never `playwright install`
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the browser test..." >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "could not install chromium: tests/test_browser.py will skip (or fail under CI=true)" >&2
fi
export MPLBACKEND=Agg PYTHONWARNINGS=ignore
# QUICK=1: the developers' quick loop, without the cells and tests marked slow; the default (and CI) runs everything.
# RETRAIN=1: also the cells marked `retrain`, which train models only to draw them (MAE and a small CAE in 11_mae,
# 12_cae and 40_viz, MoCo v3 in tutorials/mocov3_comparisons, and the BEiT v2 chain of tutorials/beitv2, which alone
# takes about 16 CPU-minutes: bench/results/beitv2/results.json);
# without it the notebooks keep those cells' stored outputs, and the claims they make are tested on stored bench
# results and in tests/. The DropPos model the explorers and figures show is trained in every full run (once, into runs/).
if [ "${QUICK:-0}" = 1 ]; then FLAGS=(); MARK=(-m "not slow"); else FLAGS=(slow); MARK=(); fi
[ "${RETRAIN:-0}" = 1 ] && FLAGS+=(retrain)
T0=$SECONDS
LOG=$(mktemp); trap 'rm -f "$LOG"' EXIT
if [ "${QUICK:-0}" != 1 ]; then
  # the laptop-recipe DropPos that 40_viz, 41_explorers and several tests show: trained once into runs/ (on all cores,
  # before the notebooks, so that no notebook waits idle for another to train it), then found there by everyone
  echo "== the shared trained model: runs/droppos-mnist5k =="
  .venv/bin/python -c "from droppos_nb.train import trained_model; from droppos_nb.viz import model_label; print(model_label(trained_model('droppos', verbose=False)))"
fi
TM=$SECONDS
echo "== nbdev_test: every notebook in nbs/ =="
# two notebooks at a time, one thread each: on 2 cores that beats two notebooks fighting over 2 threads each
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} .venv/bin/nbdev_test --n_workers 2 --timing ${FLAGS:+--flags "${FLAGS[*]}"} 2>&1 | tee "$LOG"
T1=$SECONDS
echo "== pytest: tests/ =="
status=0
.venv/bin/python -m pytest -q tests -n "${PYTEST_WORKERS:-2}" --dist loadgroup --durations=15 "${MARK[@]}" "$@" || status=$?
echo "== the 15 slowest notebooks (nbdev_test, 2 at a time) =="
grep -E '\.ipynb: [0-9]+ secs' "$LOG" | head -15
echo "== time: model $((TM - T0)) s, notebooks $((T1 - TM)) s, pytest $((SECONDS - T1)) s, total $((SECONDS - T0)) s (setup excluded) =="
exit $status
