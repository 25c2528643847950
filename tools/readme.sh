#!/usr/bin/env bash
# Render README.md from nbs/index.ipynb (stored outputs, no code shown). quarto, behind nbdev_readme, needs a
# binary download; nbconvert does the same job here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
if [ "${1:-}" == "--run" ]; then
  (cd nbs && ../.venv/bin/jupyter nbconvert --to notebook --execute --inplace index.ipynb)
  .venv/bin/nbdev_clean --fname nbs/index.ipynb
fi
rm -rf README_files
.venv/bin/jupyter nbconvert --to markdown --no-input nbs/index.ipynb --output README --output-dir . 2>/dev/null
echo "README.md written from nbs/index.ipynb"
