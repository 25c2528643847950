#!/usr/bin/env bash
# Create .venv and install droppos_nb with everything it needs (idempotent: reinstalls only when the settings change).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.droppos_nb_installed
want=$(cat settings.ini setup.py tools/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv (first time: a few minutes, torch is large)..." >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -c "import droppos_nb, torch, torchvision, fastai, timm, nbdev" \
    || { echo "setup failed: see the pip output above" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
# Jupyter's pre-save hook runs nbdev_clean (settings.ini: jupyter_hooks = True), so a notebook opened and saved in
# JupyterLab stays unchanged in git; it goes into ~/.jupyter once (DROPPOS_NO_HOOKS=1: leave ~/.jupyter alone)
if [ "${DROPPOS_NO_HOOKS:-0}" != 1 ] && ! grep -qs nbdev_clean_jupyter "$HOME/.jupyter/jupyter_server_config.py"; then
  .venv/bin/nbdev_install_hooks >/dev/null 2>&1 || echo "could not install nbdev's Jupyter hooks (nbdev_install_hooks)" >&2
fi
