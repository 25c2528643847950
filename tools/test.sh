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
# QUICK=1: the developers' quick loop, without the cells and tests marked slow; the default (and CI) runs everything
if [ "${QUICK:-0}" = 1 ]; then FLAGS=(); MARK=(-m "not slow"); else FLAGS=(--flags slow); MARK=(); fi
echo "== nbdev_test: every notebook in nbs/ =="
.venv/bin/nbdev_test --n_workers 2 --timing "${FLAGS[@]}"
echo "== pytest: tests/ =="
.venv/bin/python -m pytest -q tests "${MARK[@]}" "$@"
