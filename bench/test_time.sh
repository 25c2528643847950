#!/usr/bin/env bash
# The test command's own time on this machine: `bash tools/test.sh` in full, then `QUICK=1`, each from an empty runs/
# cache (as on a fresh clone; the runs folder is moved aside and put back), written to
# bench/results/test_time/cpu-<precision>.json (precision: what `--precision auto` picks on this CPU, i.e. whether its
# bf16 is native). Setup is excluded (tools/test.sh times itself after it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
P=$(.venv/bin/python -c "from droppos_nb.scale import choose_precision; print(choose_precision('auto', 'cpu')[0])")
OUT=bench/results/test_time; mkdir -p "$OUT"
KEEP=""; [ -d runs ] && { KEEP=$(mktemp -d); mv runs "$KEEP/runs"; }
restore() { rm -rf runs; [ -n "$KEEP" ] && mv "$KEEP/runs" runs || true; }
trap restore EXIT
declare -A LINE
for mode in full quick; do
  rm -rf runs
  log=$(mktemp)
  if [ $mode = quick ]; then QUICK=1 bash tools/test.sh 2>&1 | tee "$log"; else bash tools/test.sh 2>&1 | tee "$log"; fi
  LINE[$mode]=$(grep '^== time:' "$log" | tail -1)
  grep -A15 'the 15 slowest notebooks' "$log" | grep -E '\.ipynb: [0-9]+ secs' > "$OUT/.$mode-notebooks" || true
  sed -n '/slowest 15 durations/,/^=\+ .*passed/p' "$log" | grep -E '^[0-9.]+s ' > "$OUT/.$mode-tests" || true
done
.venv/bin/python - "$OUT" "$P" "${LINE[full]}" "${LINE[quick]}" <<'PY'
import json, os, re, sys, time
out, precision, full, quick = sys.argv[1:]
from droppos_nb.scale import cpu_name, cpu_bf16
def secs(line): return {k: int(v) for k, v in re.findall(r'(model|notebooks|pytest|total) (\d+) s', line)}
def lines(f): return open(f).read().splitlines() if os.path.exists(f) else []
native, why = cpu_bf16()
res = dict(cpu=cpu_name(), cores=os.cpu_count(), bf16_native=native, precision_auto=precision, why=why,
           full=secs(full), quick=secs(quick), date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
           slowest_notebooks=lines(f'{out}/.full-notebooks'), slowest_tests=lines(f'{out}/.full-tests'))
json.dump(res, open(f'{out}/cpu-{precision}.json', 'w'), indent=1)
for f in ('.full-notebooks', '.full-tests', '.quick-notebooks', '.quick-tests'):
    if os.path.exists(f'{out}/{f}'): os.remove(f'{out}/{f}')
print(json.dumps({k: res[k] for k in ('cpu', 'bf16_native', 'full', 'quick')}))
PY
