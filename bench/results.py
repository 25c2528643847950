"""The small-scale results table: pretrain, then measure every encoder with every protocol, for several seeds.

    python bench/results.py                      # mnist5k, seeds 0 1 2 (141 min on 2 CPU cores for the committed table)
    python bench/results.py --seeds 0 --quick --out bench/out/quick   # a smoke test of the whole pipeline (minutes)
    python bench/results.py --seeds 3 4          # add seeds to the table in bench/results/small_scale (kept: the others)

Rows: a random-init encoder, an encoder trained supervised from scratch (the fine-tune protocol from random init),
DropPos, DropPos with sigma = 0 (one-hot targets), DropPos with tau = inf (uniform weights) and MAE, each pretrained
by `droppos_nb pretrain --recipe paper` (ViT-Tiny, 32 px digits, 4 px patches, 8 epochs, batch 128; the default before the laptop recipe) in
bf16 autocast and the seed of the row. Columns: the final pretraining position accuracy (DropPos rows), the position
probe (75% of position embeddings dropped), the linear probe, kNN (k = 20), fine-tuning (5 epochs, bf16), all with
`droppos_nb eval` and otherwise its defaults, and the wall-clock of pretraining. The seed article's motivating
experiment comes from the same runs: the position probe of the random, pretrained and fine-tuned encoders.

Every job is a command-line call, run two at a time with one thread each (the machine's two cores), as soon as the
jobs it needs are done; a finished job is never run again (its output file is its record), so an interrupted run
continues where it stopped. Everything is kept under --work (default bench/out/small_scale, not committed); the
table goes to --out (bench/results/small_scale/results.json and .md), with every seed and the mean and spread.
"""
import argparse, csv, json, os, platform, statistics, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor, wait, FIRST_COMPLETED
from pathlib import Path

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
p.add_argument('--data', default='mnist5k')
p.add_argument('--jobs', type=int, default=2, help="jobs at a time (each with cores / jobs threads)")
p.add_argument('--work', default='bench/out/small_scale'); p.add_argument('--out', default='bench/results/small_scale')
p.add_argument('--quick', action='store_true', help="tiny settings (1 epoch, few images): checks the pipeline, measures nothing")
p.add_argument('--table-only', action='store_true', help="run nothing: make the table from the finished jobs (the motivating "
               "experiment from the seeds whose fine-tuned encoders are probed)")
p.add_argument('--fresh', action='store_true', help="start a new table instead of adding these seeds to the one in --out")
args = p.parse_args()
ROOT = Path(__file__).resolve().parents[1]
WORK, OUT = (ROOT / args.work).resolve(), (ROOT / args.out).resolve()
EXE = str(Path(sys.executable).with_name('droppos_nb'))
THREADS = max(1, (os.cpu_count() or 2) // args.jobs)
QUICK_PRE = ['--epochs', '1', '--max-items', '256', '--bs', '64'] if args.quick else []
QUICK_EVAL = ['--epochs', '1', '--max-items', '512', '--max-valid', '256'] if args.quick else []
# The table's settings beyond the built-in defaults: pretraining and fine-tuning in bf16 autocast (faster on a CPU
# core: bench/scaling.py measures it against fp32; the official MAE recipe trains in mixed precision too) and 5
# fine-tuning epochs instead of 10, so that three seeds fit into one session on two cores. The probes keep their
# defaults (fp32).
PRE = ['--recipe', 'paper', '--precision', 'bf16']   # the recipe the committed table was measured with (the default then)
# the settings string that marks which runs may be merged: the committed table's runs had no --recipe flag, since the
# paper recipe was the only default; they are the same runs as '--recipe paper'
SETTINGS_PRE = '--precision bf16' if PRE[:2] == ['--recipe', 'paper'] else ' '.join(PRE)
FINETUNE = ['--precision', 'bf16', '--epochs', '5']
SETTINGS = dict(pretrain=SETTINGS_PRE, finetune=' '.join(FINETUNE))

PRETRAINED = {'DropPos': ['--method', 'droppos'], 'DropPos σ=0': ['--method', 'droppos', '--sigma', '0'],
              'DropPos τ=∞': ['--method', 'droppos', '--tau', 'inf'], 'MAE': ['--method', 'mae']}
ROWS = ['random init', 'supervised', *PRETRAINED]
PROTOCOLS = ['position', 'linear', 'knn', 'finetune']
slug = lambda row: row.lower().replace(' ', '_').replace('σ=0', 'sigma0').replace('τ=∞', 'tauinf')

def run(cmd, log):
    "Run one command line with THREADS threads; its output goes to `log`. Returns the seconds it took."
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), MPLBACKEND='Agg', PYTHONWARNINGS='ignore')
    log.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with open(log, 'w') as f: r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if r.returncode: raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}\n{log.read_text()[-2000:]}")
    return time.perf_counter() - t

def pretrain_job(row, seed):
    d = WORK / slug(row) / f's{seed}'
    if (d / 'encoder.safetensors').exists(): return
    secs = run([EXE, 'pretrain', *PRETRAINED[row], '--data', args.data, '--seed', str(seed), '--out', str(d), '--quiet', *PRE, *QUICK_PRE],
               WORK / 'logs' / f'pretrain-{slug(row)}-s{seed}.log')
    (d / 'wallclock.json').write_text(json.dumps(dict(seconds=secs, threads=THREADS, jobs=args.jobs)))

def encoder_of(row, seed):
    "The checkpoint a row's protocols measure, and the folder their results go to."
    if row == 'random init': return 'random', WORK / 'random_init' / f's{seed}'
    if row == 'supervised': return WORK / 'random_init' / f's{seed}' / 'encoder-finetuned.safetensors', WORK / 'supervised' / f's{seed}'
    d = WORK / slug(row) / f's{seed}'
    return d / 'encoder.safetensors', d

def eval_job(row, seed, protocol, finetuned=False):
    ck, d = encoder_of(row, seed)
    if finetuned: ck, d = d / 'encoder-finetuned.safetensors', d / 'finetuned'
    if (d / f'eval-{protocol}.json').exists(): return
    extra = ['--save-encoder', *FINETUNE] if protocol == 'finetune' else []
    run([EXE, 'eval', '--protocol', protocol, '--checkpoint', str(ck), '--data', args.data, '--seed', str(seed), '--out', str(d),
         '--quiet', *extra, *QUICK_EVAL], WORK / 'logs' / f"eval-{slug(row)}{'-finetuned' if finetuned else ''}-{protocol}-s{seed}.log")

# The jobs and what each waits for. Two run at a time; a free slot takes the ready job of the lowest seed (so seeds
# finish one after the other and an interrupted run leaves whole seeds), then the one with the longest chain of work
# behind it (so the other slot is not left idle at the end). Costs are rough minutes on one core.
JOBS = {}
def job(name, fn, deps=(), cost=1): JOBS[name] = dict(fn=fn, deps=list(deps), cost=cost, seed=name[-1])
S = args.seeds
for s in S:
    for r in PRETRAINED: job(('pretrain', r, s), lambda r=r, s=s: pretrain_job(r, s), cost=12)
    for p in PROTOCOLS:
        job(('eval', 'random init', p, s), lambda p=p, s=s: eval_job('random init', s, p), cost=20 if p == 'finetune' else 1)
        if p != 'finetune':
            job(('eval', 'supervised', p, s), lambda p=p, s=s: eval_job('supervised', s, p), [('eval', 'random init', 'finetune', s)])
        for r in PRETRAINED:
            job(('eval', r, p, s), lambda r=r, p=p, s=s: eval_job(r, s, p), [('pretrain', r, s)], cost=20 if p == 'finetune' else 1)
    # the position probe of the fine-tuned encoders (the motivating experiment)
    for r in PRETRAINED: job(('after', r, s), lambda r=r, s=s: eval_job(r, s, 'position', finetuned=True), [('eval', r, 'finetune', s)])

def chain(n, memo={}):
    "Minutes of work from the start of job `n` to the end of the longest chain of jobs that wait for it."
    if n not in memo: memo[n] = JOBS[n]['cost'] + max((chain(m) for m in JOBS if n in JOBS[m]['deps']), default=0)
    return memo[n]

def run_all():
    "Run every job once its dependencies are done, `args.jobs` at a time; stop at the first failure."
    pending, done, running, t = set(JOBS), set(), {}, time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as ex:
        while pending or running:
            ready = sorted((n for n in pending if all(d in done for d in JOBS[n]['deps'])), key=lambda n: (JOBS[n]['seed'], -chain(n)))
            for n in ready[:args.jobs - len(running)]: pending.remove(n); running[ex.submit(JOBS[n]['fn'])] = n
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                n = running.pop(f); f.result(); done.add(n)
                print(f"{time.perf_counter() - t:6.0f} s  done: {' '.join(map(str, n))}", flush=True)

if not args.table_only: run_all()

# the table
def result_file(row, seed, protocol, finetuned=False):
    "The record of a protocol for a row and seed; `finetuned`: measured on the row's encoder after fine-tuning."
    if finetuned and row == 'random init': d = encoder_of('supervised', seed)[1]    # random init, fine-tuned = supervised
    elif finetuned: d = encoder_of(row, seed)[1] / 'finetuned'
    elif row == 'supervised' and protocol == 'finetune': d = encoder_of('random init', seed)[1]   # the run that trained it
    else: d = encoder_of(row, seed)[1]
    return d / f'eval-{protocol}.json'

def metric(row, seed, protocol, finetuned=False):
    "A protocol's figure for a row and seed (see `result_file`)."
    m = json.loads(result_file(row, seed, protocol, finetuned).read_text())['metrics']
    return m['pos_acc'] if protocol == 'position' else m['acc']

def pretrain_figures(row, seed):
    if row not in PRETRAINED: return None, None
    d = WORK / slug(row) / f's{seed}'
    last = list(csv.DictReader((d / 'metrics.csv').open()))[-1]
    return (float(last['pos_acc']) if 'pos_acc' in last else None), json.loads((d / 'wallclock.json').read_text())['seconds']

COLS = ['pretrain_pos_acc', 'position', 'linear', 'knn', 'finetune', 'pretrain_seconds']
table = {}
for row in ROWS:
    per_seed = {}
    for s in S:
        acc, secs = pretrain_figures(row, s)
        per_seed[str(s)] = dict(pretrain_pos_acc=acc, pretrain_seconds=secs,
                                **{p: metric(row, s, p) for p in PROTOCOLS if not (row == 'random init' and p == 'finetune')})
    table[row] = per_seed
probed = lambda row, s: result_file(row, s, 'position', finetuned=True).exists()
motivating = {row: {str(s): dict(before=metric(row, s, 'position'), after=metric(row, s, 'position', finetuned=True))
                    for s in S if probed(row, s)}
              for row in ['random init', *PRETRAINED]}
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
runs = [dict(seeds=S, cpu=cpu, machine=platform.platform(), jobs=args.jobs, threads_per_job=THREADS,
             date=time.strftime('%Y-%m-%d'))]

# Seeds add up: the seeds of an earlier table with the same data and settings are kept (a seed measured again replaces
# its old figures), so `--seeds 1 2` after `--seeds 0` gives the table of all three.
prev_file = OUT / 'results.json'
prev = json.loads(prev_file.read_text()) if prev_file.exists() and not args.fresh else None
if prev and prev['data'] == args.data and prev['quick'] == args.quick and prev.get('settings') == SETTINGS:
    keep = lambda old, new: {s: v for s, v in old.items() if s not in new} | new
    table = {r: keep(prev['table'].get(r, {}), table[r]) for r in ROWS}
    motivating = {r: keep(prev['motivating'].get(r, {}), motivating[r]) for r in motivating}
    runs = [dict(u, seeds=[s for s in u['seeds'] if s not in S]) for u in prev.get('runs', [])] + runs
    runs = [u for u in runs if u['seeds']]
SEEDS = sorted({int(s) for r in ROWS for s in table[r]})
S = [str(s) for s in SEEDS]

def summary(vals):
    vals = [v for v in vals if v is not None]
    if not vals: return None
    return dict(mean=statistics.fmean(vals), std=statistics.stdev(vals) if len(vals) > 1 else 0., n=len(vals))

res = dict(data=args.data, seeds=SEEDS, quick=args.quick, settings=SETTINGS, runs=runs, cpu=runs[-1]['cpu'], jobs=args.jobs,
           threads_per_job=THREADS, table=table, summary={r: {c: summary([table[r][s].get(c) for s in S]) for c in COLS} for r in ROWS},
           motivating=motivating,
           motivating_summary={r: {k: summary([v[k] for v in motivating[r].values()]) for k in ('before', 'after')} for r in motivating})
OUT.mkdir(parents=True, exist_ok=True)
(OUT / 'results.json').write_text(json.dumps(res, indent=1, ensure_ascii=False))

def cell(v, pct=True):
    if v is None: return '–'
    return f"{100 * v:.1f}" if pct else f"{v:.0f}"
def mcell(sm, pct=True):
    if sm is None: return '–'
    k = 100 if pct else 1
    return f"{k * sm['mean']:.1f} ± {k * sm['std']:.1f}" if pct else f"{sm['mean']:.0f} ± {sm['std']:.0f}"
head = '| row | seed | pretraining position acc. (%) | position probe (%) | linear (%) | kNN (%) | fine-tune (%) | pretraining (s) |'
md = [f"{args.data}, seeds {', '.join(S)}{' (QUICK: not a measurement)' if args.quick else ''}; " +
      '; '.join(f"seeds {', '.join(map(str, u['seeds']))} on {u['cpu']} ({u['date']}), {u['jobs']} jobs at a time with "
                f"{u['threads_per_job']} thread(s) each" for u in runs) +
      f"; beyond the defaults: pretrain `{SETTINGS['pretrain']}`, fine-tune `{SETTINGS['finetune']}`", '', head, '|' + '---|' * 8]
for r in ROWS:
    for s in S:
        v = table[r][s]
        md.append(f"| {r} | {s} | " + ' | '.join(cell(v.get(c), c != 'pretrain_seconds') for c in COLS) + ' |')
    md.append(f"| **{r}** | mean ± sd | " + ' | '.join(mcell(res['summary'][r][c], c != 'pretrain_seconds') for c in COLS) + ' |')
MS = sorted({s for r in motivating for s in motivating[r]}, key=int)
md += ['', f"| encoder (seeds {', '.join(MS)}) | position probe before fine-tuning (%) | after fine-tuning (%) |", '|---|---|---|']
md += [f"| {r} | {mcell(res['motivating_summary'][r]['before'])} | {mcell(res['motivating_summary'][r]['after'])} |" for r in motivating]
(OUT / 'results.md').write_text('\n'.join(md) + '\n')
print('\n'.join(md))
