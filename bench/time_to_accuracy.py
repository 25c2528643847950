"""Wall-clock until DropPos's validation position accuracy first reaches 10% and 20%, for one `droppos_nb pretrain` run.

    python bench/time_to_accuracy.py --name old_default -- --recipe paper          # the paper recipe (the old default)
    python bench/time_to_accuracy.py --name recipe --threads 1 --timeout 600 -- --depth 4 --embed-dim 192 ...

Everything after `--` goes to `droppos_nb pretrain` (default: nothing, i.e. the CLI defaults; `--method droppos`).
The run's `metrics.csv` has one row per epoch; its `seconds` column is the wall-clock of that epoch alone (training
and validation, `learner.EpochClock`), not a running total, so the time to a threshold is the sum of `seconds` up to
and including the first epoch whose `pos_acc` reaches it (accuracy is only measured at the end of an epoch: the
figure is an upper bound at epoch resolution). The JSON also gives the wall-clock since the command started, which
adds the start-up (imports, data) and the writing of checkpoints. `--timeout` stops the run (SIGTERM: it saves a
checkpoint and exits) after that many seconds, and `--stop-at` once the highest threshold is reached.
Output: bench/results/time_to_accuracy/NAME.json and NAME-metrics.csv; work folder bench/out/time_to_accuracy/NAME.
Commands run the installed library, or DROPPOS_LIB=DIR (a frozen copy of the library, see bench/sweep.py), as in
bench/sweep.py.
"""
import argparse, csv, json, os, platform, signal, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--name', required=True)
p.add_argument('--thresholds', type=float, nargs='+', default=[0.10, 0.20])
p.add_argument('--threads', type=int, default=1, help="OMP/MKL threads of the run")
p.add_argument('--timeout', type=float, default=None, help="stop the run after this many seconds")
p.add_argument('--stop-at', action='store_true', help="stop the run once the highest threshold is reached")
p.add_argument('flags', nargs=argparse.REMAINDER, help="-- then flags for droppos_nb pretrain")
args = p.parse_args()
flags = args.flags[1:] if args.flags[:1] == ['--'] else args.flags

LIB = Path(os.environ.get('DROPPOS_LIB', ''))
use_lib = str(LIB) not in ('', '.')
EXE = [sys.executable, '-m', 'droppos_nb.cli'] if use_lib else [str(Path(sys.executable).with_name('droppos_nb'))]
WORK, RES = ROOT / 'bench/out/time_to_accuracy' / args.name, ROOT / 'bench/results/time_to_accuracy'
if WORK.exists(): import shutil; shutil.rmtree(WORK)
env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), MPLBACKEND='Agg', PYTHONWARNINGS='ignore')
cmd = ['nice', '-n', '5', *EXE, 'pretrain', *flags, '--quiet', '--out', str(WORK)]

def rows():
    f = WORK / 'metrics.csv'
    return list(csv.DictReader(f.open())) if f.exists() else []

def first_reach(rs, th):
    "Epoch, summed epoch seconds and wall-clock since start when `pos_acc` first reaches `th` (None if never)."
    cum = 0.
    for r in rs:
        cum += float(r['seconds'])
        if r.get('pos_acc') and float(r['pos_acc']) >= th: return dict(epoch=int(r['epoch']), epoch_seconds=round(cum, 1))
    return None

WORK.parent.mkdir(parents=True, exist_ok=True)
log = open(WORK.parent / f'{args.name}.log', 'w')
t0 = time.perf_counter()
proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=LIB if use_lib else ROOT)
seen, wall, stopped = 0, {}, None
while proc.poll() is None:
    time.sleep(1)
    rs = rows()
    if len(rs) > seen:                                   # a new epoch: note the wall-clock at which each threshold showed
        seen = len(rs)
        for th in args.thresholds:
            if th not in wall and first_reach(rs, th): wall[th] = round(time.perf_counter() - t0, 1)
        if args.stop_at and all(th in wall for th in args.thresholds): stopped = 'thresholds reached'
    if args.timeout and time.perf_counter() - t0 > args.timeout: stopped = f'timeout {args.timeout:.0f} s'
    if stopped:
        proc.send_signal(signal.SIGTERM); proc.wait(); break
total = time.perf_counter() - t0
rs = rows()
import torch
torch.set_num_threads(args.threads)
cfg = json.loads((WORK / 'config.json').read_text()) if (WORK / 'config.json').exists() else {}
res = dict(name=args.name, command=' '.join(cmd), returncode=proc.returncode, stopped=stopped,
           thresholds={f'{th:g}': (dict(first_reach(rs, th), wall_seconds_since_start=wall.get(th)) if first_reach(rs, th) else None)
                       for th in args.thresholds},
           epochs_run=len(rs), epochs_planned=cfg.get('epochs'), final_pos_acc=float(rs[-1]['pos_acc']) if rs else None,
           best_pos_acc=max((float(r['pos_acc']) for r in rs), default=None), summed_epoch_seconds=round(sum(float(r['seconds']) for r in rs), 1),
           wall_seconds=round(total, 1),
           machine=dict(platform=platform.platform(), cpu=next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo')
                        if l.startswith('model name')), platform.processor()), cpu_count=os.cpu_count(),
                        cpus_usable=len(os.sched_getaffinity(0)), torch_threads=torch.get_num_threads(),
                        omp_num_threads=env['OMP_NUM_THREADS'], torch=torch.__version__, load_average=os.getloadavg()),
           config=cfg, date=time.strftime('%Y-%m-%d %H:%M'))
RES.mkdir(parents=True, exist_ok=True)
(RES / f'{args.name}.json').write_text(json.dumps(res, indent=1))
if (WORK / 'metrics.csv').exists(): (RES / f'{args.name}-metrics.csv').write_text((WORK / 'metrics.csv').read_text())
print(json.dumps({k: res[k] for k in ('thresholds', 'epochs_run', 'final_pos_acc', 'best_pos_acc', 'summed_epoch_seconds', 'wall_seconds', 'stopped')}, indent=1))
