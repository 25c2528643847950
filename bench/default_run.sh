#!/usr/bin/env bash
# Make bench/results/default_run/cpu-<precision>/ again: the README's default run (bash tools/pretrain.sh) on this
# machine's CPU, in the precision `--precision auto` chose here (bf16 where the CPU runs it natively, else fp32), and
# the machine it ran on. A CPU of the other kind fills the other folder; the README shows both.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=bench/results/default_run/.run
rm -rf "$TMP"
OUT=$TMP bash tools/pretrain.sh --quiet "$@"
P=$(python3 -c "import json; print(json.load(open('$TMP/config.json'))['precision_used'])")
python3 - "$TMP" <<'PY' > "$TMP/machine.txt"
import csv, json, os, sys
run = sys.argv[1]
cfg = json.load(open(f'{run}/config.json'))
cpu = cfg.get('cpu') or next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
secs = sum(float(r['seconds']) for r in csv.DictReader(open(f'{run}/metrics.csv')))
native = 'bf16 native' if cfg['precision_used'] == 'bf16' else 'bf16 not native'
print(f"{cpu}, {os.cpu_count()} cores, {native}, {cfg['precision_used']}, {secs:.0f} s of training")
print(cfg.get('hardware', ''))
PY
rm -f "$TMP"/*.safetensors "$TMP"/checkpoint.pt      # keep the repository small
rm -rf "bench/results/default_run/cpu-$P"
mv "$TMP" "bench/results/default_run/cpu-$P"
cat "bench/results/default_run/cpu-$P/machine.txt"
