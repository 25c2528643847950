#!/usr/bin/env bash
# The explorers as a web app, for a reader without JupyterLab (a class, a talk): Voila runs demo/explorers.ipynb (the
# DropPos, attention, CAE and codebook explorers on the trained runs in runs/) and serves it on 127.0.0.1 with no code
# shown. Loopback only, so no token; no browser is opened: open the URL it prints.
#   bash tools/demo.sh                 # http://127.0.0.1:8866/
#   bash tools/demo.sh --port 9000     # another port
#   bash tools/demo.sh --train         # first train the missing runs (DropPos, MAE, small CAE: minutes on a CPU)
# Each page load starts a kernel and builds the explorers (about 10 s on 2 cores); a run that is missing is named on the
# page with the command that trains it. DROPPOS_NB_RUNS=FOLDER: take the trained runs from FOLDER.
set -euo pipefail
cd "$(dirname "$0")/.."
port=8866 train=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="${2:-}"; shift $(( $# > 1 ? 2 : 1 ));;
    --port=*) port="${1#--port=}"; shift;;
    --train) train=1; shift;;
    -h|--help) sed -n '2,9p' "$0" | cut -c3-; exit 0;;
    *) echo "demo: unknown option '$1' (options: --port N, --train, --help)" >&2; exit 2;;
  esac
done
if ! [[ "$port" =~ ^[0-9]+$ ]] || (( port < 1 || port > 65535 )); then
  echo "demo: --port takes a port number from 1 to 65535, not '$port'" >&2; exit 2
fi
bash tools/setup.sh
if [ ! -x .venv/bin/voila ]; then
  echo "demo: voila is not installed: .venv/bin/pip install voila (settings.ini's dev_requirements has it)" >&2; exit 1
fi
export MPLBACKEND=Agg PYTHONWARNINGS=ignore
if [ "$train" = 1 ]; then
  echo "demo: training the missing runs (the demo notebook, run once with DROPPOS_NB_DEMO_TRAIN=1) ..." >&2
  DROPPOS_NB_DEMO_TRAIN=1 .venv/bin/jupyter nbconvert --to notebook --execute --stdout \
    --ExecutePreprocessor.timeout=7200 demo/explorers.ipynb >/dev/null
fi
echo "demo: the explorers at http://127.0.0.1:$port/ (Ctrl-C stops the server)"
exec .venv/bin/voila demo/explorers.ipynb --no-browser --port="$port" --Voila.port_retries=0 --Voila.ip=127.0.0.1 \
  --show_tracebacks=True --theme=light
