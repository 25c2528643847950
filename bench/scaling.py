"""Training speed of DropPos on this machine, in one run: fp32 vs bf16, and 1 process vs 2 (DDP over gloo).

    python bench/scaling.py                  # default model (ViT-Tiny, 32 px / 4 px), global batch 128, CPU
    python bench/scaling.py --steps 6        # quicker

Each setting runs the real training path (fastai Learner, our callbacks, DDP through accelerate for 2 processes)
in a fresh process started by `torchrun`, on the same global batch, and times `--steps` optimiser steps after a
warm-up. One process uses all cores; two processes get one core's worth of threads each (OMP_NUM_THREADS =
cores / processes). Ratios are against 1 process in fp32, measured in the same run. Writes
bench/results/scaling_cpu.json and .md.
"""
import argparse, json, os, platform, subprocess, sys, tempfile
from pathlib import Path
import torch

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--steps', type=int, default=12); p.add_argument('--warmup', type=int, default=3)
p.add_argument('--global-bs', type=int, default=128); p.add_argument('--out', default='bench/results/scaling_cpu')
args = p.parse_args()
root = Path(__file__).resolve().parents[1]
cores = os.cpu_count()
bin_dir = Path(sys.executable).parent

def cpu_name():
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or platform.machine()

def run(procs, precision):
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / 'r.json'
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cores // procs)), ACCELERATE_USE_CPU='true', PYTHONWARNINGS='ignore')
        cmd = [str(bin_dir / 'torchrun'), '--standalone', f'--nproc_per_node={procs}', str(root / 'bench' / '_train_steps.py'),
               '--out', str(out), '--precision', precision, '--steps', str(args.steps), '--warmup', str(args.warmup),
               '--global-bs', str(args.global_bs)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
        if r.returncode: raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
        return json.loads(out.read_text())

rows = [run(n, prec) for n, prec in [(1, 'fp32'), (1, 'bf16'), (2, 'fp32'), (2, 'bf16')]]
base = rows[0]['img_per_s']
for r in rows: r['vs_1proc_fp32'] = r['img_per_s'] / base
machine = f"{cpu_name()}, {cores} cores; torch {torch.__version__}"
res = dict(machine=machine, steps=args.steps, warmup=args.warmup, global_bs=args.global_bs, rows=rows)
out = Path(args.out); out.parent.mkdir(parents=True, exist_ok=True)
out.with_suffix('.json').write_text(json.dumps(res, indent=1))
md = [f"machine: {machine}; DropPos default model (ViT-Tiny, 32 px / 4 px), global batch {args.global_bs}, "
      f"{args.steps} timed steps after {args.warmup} warm-up steps", '',
      '| processes | threads each | precision | img/s | vs 1 process fp32 |', '|---|---|---|---|---|']
md += [f"| {r['processes']} | {r['threads']} | {r['precision']} | {r['img_per_s']:.1f} | {r['vs_1proc_fp32']:.2f}x |" for r in rows]
out.with_suffix('.md').write_text('\n'.join(md) + '\n')
print('\n'.join(md))
