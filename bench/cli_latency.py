"""How fast the `droppos_nb` command answers `--help` and a malformed argument (issue 26): through its front door
(`cmdline.main`, the console script: parsers rebuilt from `droppos_nb/cli_manifest.json`, no torch imported) against
the full parsers (`python -m droppos_nb.cli`, which imports torch, fastai, timm and every method first), measured in
the same run on the same machine. Each command runs in a fresh process, `--repeats` times; the median is kept.

    .venv/bin/python bench/cli_latency.py            # writes bench/results/cli_latency/<cpu>.json and prints the table
"""
import argparse, json, os, platform, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
p.add_argument('--repeats', type=int, default=5)
args = p.parse_args()

EXE = Path(sys.executable)
FRONT = [str(EXE.with_name('droppos_nb'))]                   # the console script: droppos_nb.cmdline:main
FULL = [str(EXE), '-m', 'droppos_nb.cli']                     # the full parsers, as torchrun launches it
CASES = {'droppos_nb --help': ['--help'], 'droppos_nb pretrain --help': ['pretrain', '--help'],
         'a refusal: pretrain --epochs abc': ['pretrain', '--epochs', 'abc'],
         'a refusal: pretrain --method simclr': ['pretrain', '--method', 'simclr'],
         'a refusal: eval (no --protocol)': ['eval'], 'a refusal: pretrain --epochs 0': ['pretrain', '--epochs', '0'],
         'a refusal: pretrain --lr inf': ['pretrain', '--lr', 'inf']}

def seconds(cmd) -> float:
    "Median wall-clock seconds of `cmd` in a fresh process, over `args.repeats` runs."
    ts = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS='ignore'))
        ts.append(time.perf_counter() - t0)
    return round(statistics.median(ts), 3)

from droppos_nb.scale import cpu_name
from droppos_nb.cmdline import read_manifest
if read_manifest() is None:
    sys.exit("cli_latency: droppos_nb/cli_manifest.json is stale, so the front door would use the full parsers: write it "
             "with `.venv/bin/python -c 'from droppos_nb.cli import write_manifest; write_manifest()'` first")
rows = {name: dict(front=seconds(FRONT + a), full=seconds(FULL + a)) for name, a in CASES.items()}
for r in rows.values(): r['speedup'] = round(r['full'] / r['front'], 1)
res = dict(cpu=cpu_name(), cores=os.cpu_count(), machine=platform.platform(), python=platform.python_version(),
           repeats=args.repeats, date=time.strftime('%Y-%m-%d'), seconds=rows)
out = ROOT / 'bench' / 'results' / 'cli_latency'
out.mkdir(parents=True, exist_ok=True)
name = ''.join(c if c.isalnum() else '-' for c in cpu_name().lower()).strip('-')[:60] or 'cpu'
(out / f'{name}.json').write_text(json.dumps(res, indent=1) + '\n')
print(f"{res['cpu']}, {res['cores']} cores (median of {args.repeats} fresh processes)")
print('| command | front door (s) | full parsers (s) | ratio |\n|---|---|---|---|')
for k, r in rows.items(): print(f"| `{k}` | {r['front']:.2f} | {r['full']:.2f} | {r['speedup']:.0f}x |")
