"""The small-scale results table: pretrain, then measure every encoder with every protocol, for several seeds.

    python bench/results.py                      # mnist5k, seeds 0 1 2, every method at one budget, on the CPU
    python bench/results.py --seeds 1            # add seed 1 to bench/results/small_scale_equal (kept: the others)
    python bench/results.py --recipe laptop --out bench/results/small_scale   # the laptop recipes (the earlier table)
    python bench/results.py --seeds 0 --quick --out bench/out/quick   # a smoke test of the whole pipeline (minutes)
    python bench/results.py --device cuda --jobs 12 --deadline 330   # the GPU table: longer schedules (bench/results/small_scale_cuda)
    python bench/results.py --recipe paper --out bench/results/small_scale_paper   # the paper recipe (the table before the laptop recipe)

Rows: two floors on the raw pixels of the same split (logistic regression and kNN, from bench/floors.py), a random-init
encoder of the recipe's architecture, an encoder trained supervised from scratch (the fine-tune protocol from random
init), DropPos, DropPos with sigma = 0 (one-hot targets), DropPos with tau = inf (uniform weights), MAE, CAE, MoCo v3,
MSCN and BEiT v2 with and without patch aggregation, each pretrained by `droppos_nb pretrain --recipe RECIPE` with the
seed of the row (`--recipe equal`, the default: each method's pick of the equal-budget sweep, bench/sweep.py, trained
for the epochs that cost one budget on one thread, bench/method_costs.py; BEiT v2's budget includes its tokenizer's,
and its teacher, the seed's supervised encoder, is not counted, as the paper does not count CLIP); the other architectures' own floors beside them (a random ResNet-18 as timm builds it and with
zero_init_last=False for MSCN, a random Beit of BEiT v2's recipe), each with its fine-tune column trained from scratch. Columns: the final pretraining position
accuracy (DropPos rows), the position probe (75% of position embeddings dropped), the linear probe, kNN (k = 20),
fine-tuning, all with `droppos_nb eval` and its defaults except the fine-tuning schedule (FINETUNE below), the
wall-clock of pretraining, and its CPU-minutes (wall-clock x threads, BEiT v2's with its tokenizer's). The seed article's motivating experiment comes from the same runs: the position probe of
the random, pretrained and fine-tuned encoders.

On the CPU (the default) pretraining runs the recipe as it is. `--device cuda` runs every command on the GPU with
longer schedules (GPU_EPOCHS: three times the recipe's pretraining epochs, 24 fine-tuning epochs), which is what a
GPU buys at this scale; the table records the device and the settings.

Every job is a command-line call, run `--jobs` at a time (cores / jobs threads each), as soon as the jobs it needs
are done; a finished job is never run again (its output file is its record), so an interrupted run continues where
it stopped. `--deadline S` starts no job after S seconds, and the table then holds the seeds whose jobs all
finished. Everything is kept under --work (default bench/out/small_scale[_cuda], not committed); the table goes to
--out (default bench/results/small_scale[_cuda][_equal|_paper]/results.json and .md), with every seed and the mean and
spread. Seeds add up across calls and machines (the table keeps the seeds of the same settings); a seed's jobs must
finish in the --work folder where they started (it is not committed).
"""
import argparse, csv, json, os, platform, re, statistics, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor, wait, FIRST_COMPLETED
from pathlib import Path

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
p.add_argument('--data', default='mnist5k')
p.add_argument('--recipe', default='equal', choices=['equal', 'laptop', 'paper'],
               help="the pretraining recipe of every method (equal: every method at one budget, the default)")
p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'], help="cuda: every command on the GPU, longer schedules")
p.add_argument('--jobs', type=int, default=2, help="jobs at a time (each with cores / jobs threads)")
p.add_argument('--deadline', type=float, default=None, help="start no job after this many seconds; the table keeps the finished seeds")
p.add_argument('--work', default=None, help="default bench/out/small_scale (+ _cuda, _paper)")
p.add_argument('--out', default=None, help="default bench/results/small_scale (+ _cuda, _paper)")
p.add_argument('--floors', default='bench/results/floors.json', help="the raw-pixel floors (bench/floors.py)")
p.add_argument('--quick', action='store_true', help="tiny settings (1 epoch, few images): checks the pipeline, measures nothing")
p.add_argument('--table-only', action='store_true', help="run nothing: make the table from the finished jobs (the motivating "
               "experiment from the seeds whose fine-tuned encoders are probed)")
p.add_argument('--rows', nargs='+', default=None, help="run the jobs of these pretrained rows only (e.g. 'MoCo v3' CAE); the table "
               "keeps every row's finished seeds")
p.add_argument('--fresh', action='store_true', help="start a new table instead of adding these seeds to the one in --out")
args = p.parse_args()
ROOT = Path(__file__).resolve().parents[1]
suffix = ('_cuda' if args.device == 'cuda' else '') + {'paper': '_paper', 'equal': '_equal'}.get(args.recipe, '')
WORK = (ROOT / (args.work or f'bench/out/small_scale{suffix}')).resolve()
OUT = (ROOT / (args.out or f'bench/results/small_scale{suffix}')).resolve()
# The command line: the installed console script, else the module (a checkout on PYTHONPATH, as on a bare GPU
# machine). DROPPOS_LIB=DIR runs a frozen copy of the library instead (see bench/sweep.py), so that the working tree
# can change while a table is measured: `mkdir -p L && git archive HEAD droppos_nb | tar -x -C L`.
_script, LIB = Path(sys.executable).with_name('droppos_nb'), os.environ.get('DROPPOS_LIB')
EXE = [str(_script)] if _script.exists() and not LIB else [sys.executable, '-m', 'droppos_nb.cli']
if LIB: sys.path.insert(0, str(Path(LIB).resolve()))
THREADS = max(1, (os.cpu_count() or 2) // args.jobs)
QUICK_PRE = ['--epochs', '1', '--max-items', '256', '--bs', '64'] if args.quick else []
QUICK_EVAL = ['--epochs', '1', '--max-items', '512', '--max-valid', '256'] if args.quick else []
DEVICE = ['--device', 'cuda'] if args.device == 'cuda' else []

from droppos_nb.registry import get_method
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _references import random_resnet18, random_beit   # the floors --checkpoint random cannot build
PRETRAINED = {'DropPos': ['--method', 'droppos'], 'DropPos σ=0': ['--method', 'droppos', '--sigma', '0'],
              'DropPos τ=∞': ['--method', 'droppos', '--tau', 'inf'], 'MAE': ['--method', 'mae'],
              # CAE: with the laptop-v1 and paper recipes (12 blocks, 4 px patches) the row used the shape of the
              # others, the settings the explorers train it with (CAE_SMALL in nbs/12_cae.ipynb); the equal recipe
              # is that shape already (the sweep's pick)
              'CAE': ['--method', 'cae'] if args.recipe == 'equal' else
                     ['--method', 'cae', '--patch-size', '8', '--depth', '4', '--embed-dim', '192', '--num-heads', '3', '--decoder-depth', '2',
                      '--regressor-depth', '2', '--drop-path', '0', '--min-scale', '1', '--blr', '2e-3', '--epochs', '16'],
              'MoCo v3': ['--method', 'mocov3'], 'MSCN': ['--method', 'mscn'],
              'BEiT v2': ['--method', 'beitv2'], 'BEiT v2 w/o aggregation': ['--method', 'beitv2', '--aggregation', 'off']}
# rows whose encoder is a ConvNet (a ResNet-18): no patch positions, so no position probe
CONVNET = {'MSCN'}
# BEiT v2 rows: pretrained on the codes of the seed's VQ-KD tokenizer, which distils the seed's supervised encoder (the
# teacher: what the codes mean comes from it); their encoder is a timm Beit (relative position bias, no absolute
# position embedding): the position probe drops a patch's position by zeroing its rows and columns of the bias
BEIT = {'BEiT v2', 'BEiT v2 w/o aggregation'}
RANDOM_CNN = ['--checkpoint', 'random', '--arch', 'resnet18', '--img-size', '32']
# the BEiT v2 rows' own floor: a random-init Beit of their recipe (BEiT v2's init), exported like theirs; its fine-tune
# column is that architecture trained from scratch on the labels
bad = set(args.rows or []) - set(PRETRAINED)
if bad: p.error(f"unknown row(s) {sorted(bad)}: choose from {', '.join(PRETRAINED)}")
RUN = [r for r in PRETRAINED if args.rows is None or r in args.rows]
PRETRAINED_METHODS = list(dict.fromkeys([v[1] for v in PRETRAINED.values()] + ['vqkd']))            # the rows whose jobs this call runs
RECIPES = {m: get_method(m).recipe(args.recipe) for m in dict.fromkeys(['droppos', 'mae'] + [PRETRAINED[r][1] for r in RUN])}
# BEiT v2's tokenizer: the recipe's (the paper tables used the laptop one: the official VQ-KD is a ViT-B at 224 px)
TOKENIZER_RECIPE = 'laptop' if args.recipe == 'paper' else args.recipe
# Pretraining: the recipe as it is, in the machine's precision (`--precision auto`: bf16 autocast where the hardware
# runs it natively, else fp32; the committed tables ran in bf16 on CPUs with native bf16, the paper recipe's too).
# On the GPU, three times the recipe's epochs.
GPU_EPOCHS = {m: 3 * r['epochs'] for m, r in RECIPES.items()}
PRE = ['--recipe', args.recipe] + (['--precision', 'auto'] if args.recipe == 'paper' else [])
def pre_flags(method): return PRE + (['--epochs', str(GPU_EPOCHS[method])] if args.device == 'cuda' else [])
# Fine-tuning, the same for every row (the supervised row is this protocol from random init): auto precision, no layer decay
# (the encoders have 4 blocks; a decay meant for 12 or 24 starves the lower ones), lr 2e-3, 12 epochs on the CPU
# (supervised from scratch then reaches 93.6%, above the pixel floors; 65% with the old 5-epoch, 12-block protocol),
# 24 on the GPU. The paper recipe's table keeps its own protocol (5 epochs, the defaults otherwise).
FINETUNE = (['--precision', 'auto', '--epochs', '5'] if args.recipe == 'paper' else
            ['--precision', 'auto', '--epochs', '24' if args.device == 'cuda' else '12', '--lr', '2e-3', '--layer-decay', '1'])
# a random encoder of the recipe's architecture (the pretrained rows' architecture, with random weights)
_r = RECIPES['droppos']
RANDOM = ['--checkpoint', 'random'] + [a for k in ('arch', 'depth', 'embed_dim', 'num_heads', 'img_size', 'patch_size')
                                       if _r.get(k) is not None for a in (f"--{k.replace('_', '-')}", str(_r[k]))]
# the settings string that marks which runs may be merged (the paper recipe's committed table kept its old string)
SETTINGS = (dict(pretrain='--precision auto', finetune=' '.join(FINETUNE)) if args.recipe == 'paper' and args.device == 'cpu' else
            dict(pretrain=' '.join(PRE) + (f" --epochs {GPU_EPOCHS['droppos']} (MAE {GPU_EPOCHS['mae']})" if args.device == 'cuda' else ''),
                 finetune=' '.join(FINETUNE), random=' '.join(RANDOM[2:]), device=args.device))
if args.recipe == 'equal':   # which epochs the budget bought: a table made with other recipe epochs does not add up
    SETTINGS['epochs'] = ' '.join(f"{m} {get_method(m).recipe('equal')['epochs']}" for m in PRETRAINED_METHODS)

ROWS = ['random init', 'random ResNet-18', 'random ResNet-18, no zero init', 'random Beit', 'supervised', *PRETRAINED]
def protocols_of(row): return ['linear', 'knn', 'finetune'] if row in CONVNET or row.startswith('random ResNet-18') else PROTOCOLS
def tokenizer_of(seed): return WORK / 'vqkd' / f's{seed}' / 'model.safetensors'
def random_cnn_job(seed):
    "MSCN's fair floor: a random-init ResNet-18 without timm's zero-initialised last BN of each residual block (bench/_references.py)."
    d = WORK / 'random_resnet18_no_zero_init' / f's{seed}'
    if not (d / 'encoder.safetensors').exists(): random_resnet18(d, seed)

def random_beit_job(seed):
    "BEiT v2's own floor: a random-init Beit of the BEiT v2 recipe (its init, this seed), written as its pretraining would write it."
    d = WORK / 'random_beit' / f's{seed}'
    if not (d / 'encoder.safetensors').exists(): random_beit(d, seed, args.recipe, TOKENIZER_RECIPE)
PROTOCOLS = ['position', 'linear', 'knn', 'finetune']
slug = lambda row: row.lower().replace('w/o', 'without').replace(' ', '_').replace('σ=0', 'sigma0').replace('τ=∞', 'tauinf')

def run(cmd, log):
    "Run one command line with THREADS threads; its output goes to `log`. Returns the seconds it took."
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), MPLBACKEND='Agg', PYTHONWARNINGS='ignore')
    if LIB: env['PYTHONPATH'] = os.pathsep.join([str(Path(LIB).resolve()), env.get('PYTHONPATH', '')])
    log.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with open(log, "w") as f: r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=Path(LIB).resolve() if LIB else ROOT)
    if r.returncode: raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}\n{log.read_text()[-2000:]}")
    return time.perf_counter() - t

def pretrain_job(row, seed):
    d = WORK / slug(row) / f's{seed}'
    if (d / 'encoder.safetensors').exists(): return
    method = PRETRAINED[row][1]
    log = WORK / 'logs' / f'pretrain-{slug(row)}-s{seed}.log'
    if (d / 'checkpoint.pt').exists():     # cut short after an epoch: continue it (its wall-clock is then the rest's only)
        secs = run([*EXE, 'pretrain', '--resume', str(d), '--quiet', *DEVICE], log.with_suffix('.resumed.log'))
    else:                                  # never started, or cut short in its first epoch: start it (again)
        secs = run([*EXE, 'pretrain', *PRETRAINED[row], *(['--tokenizer', str(tokenizer_of(seed))] if row in BEIT else []),
                    '--data', args.data, '--seed', str(seed), '--out', str(d), '--quiet',
                    *pre_flags(method), *DEVICE, *QUICK_PRE, *(['--overwrite'] if d.exists() else [])], log)
    (d / 'wallclock.json').write_text(json.dumps(dict(seconds=secs, threads=THREADS, jobs=args.jobs)))

def tokenizer_job(seed):
    "The seed's VQ-KD tokenizer (its laptop recipe), taught by the seed's supervised encoder."
    d = tokenizer_of(seed).parent
    if (d / 'model.safetensors').exists(): return
    teacher = encoder_of('supervised', seed)[0]
    if (d / 'checkpoint.pt').exists(): run([*EXE, 'pretrain', '--resume', str(d), '--quiet', *DEVICE], WORK / 'logs' / f'tokenizer-s{seed}.resumed.log')
    else:
        secs = run([*EXE, 'pretrain', '--method', 'vqkd', '--recipe', TOKENIZER_RECIPE, '--teacher', str(teacher), '--data', args.data,
                    '--seed', str(seed), '--out', str(d), '--quiet', *DEVICE, *QUICK_PRE, *(['--overwrite'] if d.exists() else [])],
                   WORK / 'logs' / f'tokenizer-s{seed}.log')
        (d / 'wallclock.json').write_text(json.dumps(dict(seconds=secs, threads=THREADS, jobs=args.jobs)))

def encoder_of(row, seed):
    "The checkpoint a row's protocols measure, and the folder their results go to."
    if row == 'random init': return RANDOM[1], WORK / 'random_init' / f's{seed}'
    if row == 'random ResNet-18': return 'random-cnn', WORK / 'random_resnet18' / f's{seed}'
    if row == 'random ResNet-18, no zero init': return WORK / 'random_resnet18_no_zero_init' / f's{seed}' / 'encoder.safetensors', WORK / 'random_resnet18_no_zero_init' / f's{seed}'
    if row == 'random Beit': return WORK / 'random_beit' / f's{seed}' / 'encoder.safetensors', WORK / 'random_beit' / f's{seed}'
    if row == 'supervised': return WORK / 'random_init' / f's{seed}' / 'encoder-finetuned.safetensors', WORK / 'supervised' / f's{seed}'
    d = WORK / slug(row) / f's{seed}'
    return d / 'encoder.safetensors', d

def eval_job(row, seed, protocol, finetuned=False):
    ck, d = encoder_of(row, seed)
    if finetuned: ck, d = d / 'encoder-finetuned.safetensors', d / 'finetuned'
    if (d / f'eval-{protocol}.json').exists(): return
    extra = ['--save-encoder', *FINETUNE] if protocol == 'finetune' else []
    quick = [a for i, a in enumerate(QUICK_EVAL) if protocol != 'knn' or '--epochs' not in QUICK_EVAL[max(0, i - 1):i + 1]]
    enc = RANDOM if ck == 'random' else RANDOM_CNN if ck == 'random-cnn' else ['--checkpoint', str(ck)]
    run([*EXE, 'eval', '--protocol', protocol, *enc, '--data', args.data, '--seed', str(seed), '--out', str(d),
         '--quiet', *extra, *DEVICE, *quick], WORK / 'logs' / f"eval-{slug(row)}{'-finetuned' if finetuned else ''}-{protocol}-s{seed}.log")

# The jobs and what each waits for. Two run at a time; a free slot takes the ready job of the lowest seed (so seeds
# finish one after the other and an interrupted run leaves whole seeds), then the one with the longest chain of work
# behind it (so the other slot is not left idle at the end). Costs are rough minutes on one core.
JOBS = {}
def job(name, fn, deps=(), cost=1): JOBS[name] = dict(fn=fn, deps=list(deps), cost=cost, seed=name[-1])
S = args.seeds
for s in S:
    if BEIT & set(RUN): job(('tokenizer', s), lambda s=s: tokenizer_job(s), [('eval', 'random init', 'finetune', s)], cost=6)
    for r in RUN: job(('pretrain', r, s), lambda r=r, s=s: pretrain_job(r, s), [('tokenizer', s)] if r in BEIT else [], cost=12)
    if BEIT & set(RUN):
        job(('pretrain', 'random Beit', s), lambda s=s: random_beit_job(s))
        for p in PROTOCOLS: job(('eval', 'random Beit', p, s), lambda p=p, s=s: eval_job('random Beit', s, p), [('pretrain', 'random Beit', s)],
                                cost=20 if p == 'finetune' else 1)
        job(('after', 'random Beit', s), lambda s=s: eval_job('random Beit', s, 'position', finetuned=True), [('eval', 'random Beit', 'finetune', s)])
    if CONVNET & set(RUN):
        for p in protocols_of('random ResNet-18'): job(('eval', 'random ResNet-18', p, s), lambda p=p, s=s: eval_job('random ResNet-18', s, p))
        job(('pretrain', 'random ResNet-18, no zero init', s), lambda s=s: random_cnn_job(s))
        for p in protocols_of('random ResNet-18'):
            job(('eval', 'random ResNet-18, no zero init', p, s), lambda p=p, s=s: eval_job('random ResNet-18, no zero init', s, p),
                [('pretrain', 'random ResNet-18, no zero init', s)])
    for p in PROTOCOLS:
        job(('eval', 'random init', p, s), lambda p=p, s=s: eval_job('random init', s, p), cost=20 if p == 'finetune' else 1)
        if p != 'finetune':
            job(('eval', 'supervised', p, s), lambda p=p, s=s: eval_job('supervised', s, p), [('eval', 'random init', 'finetune', s)])
        for r in [r for r in RUN if p in protocols_of(r)]:
            job(('eval', r, p, s), lambda r=r, p=p, s=s: eval_job(r, s, p), [('pretrain', r, s)], cost=20 if p == 'finetune' else 1)
    # the position probe of the fine-tuned encoders (the motivating experiment)
    for r in [r for r in RUN if r not in CONVNET]: job(('after', r, s), lambda r=r, s=s: eval_job(r, s, 'position', finetuned=True), [('eval', r, 'finetune', s)])

def chain(n, memo={}):
    "Minutes of work from the start of job `n` to the end of the longest chain of jobs that wait for it."
    if n not in memo: memo[n] = JOBS[n]['cost'] + max((chain(m) for m in JOBS if n in JOBS[m]['deps']), default=0)
    return memo[n]

def run_all():
    """Run every job once its dependencies are done, `args.jobs` at a time. A failed job is reported and the jobs that
    need it are dropped (the others go on); after `--deadline` seconds no job is started. Returns the failures."""
    pending, done, running, failed, t = set(JOBS), set(), {}, {}, time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as ex:
        while pending or running:
            if args.deadline is not None and time.perf_counter() - t > args.deadline and pending:
                print(f"deadline of {args.deadline:.0f} s: {len(pending)} jobs not started", flush=True); pending.clear()
            for n in [n for n in pending if any(d in failed for d in JOBS[n]['deps'])]: pending.remove(n); failed[n] = 'a job it needs failed'
            ready = sorted((n for n in pending if all(d in done for d in JOBS[n]['deps'])), key=lambda n: (JOBS[n]['seed'], -chain(n)))
            for n in ready[:args.jobs - len(running)]: pending.remove(n); running[ex.submit(JOBS[n]['fn'])] = n
            if not running: break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                n = running.pop(f)
                if f.exception() is not None:
                    failed[n] = str(f.exception()); print(f"{time.perf_counter() - t:6.0f} s  FAILED: {' '.join(map(str, n))}\n{f.exception()}", flush=True)
                else:
                    done.add(n); print(f"{time.perf_counter() - t:6.0f} s  done: {' '.join(map(str, n))}", flush=True)
    return failed

failures = {} if args.table_only else run_all()

# the table
def result_file(row, seed, protocol, finetuned=False):
    "The record of a protocol for a row and seed; `finetuned`: measured on the row's encoder after fine-tuning."
    if finetuned and row == 'random init': d = encoder_of('supervised', seed)[1]    # random init, fine-tuned = supervised
    elif finetuned: d = encoder_of(row, seed)[1] / 'finetuned'
    elif row == 'supervised' and protocol == 'finetune': d = encoder_of('random init', seed)[1]   # the run that trained it
    else: d = encoder_of(row, seed)[1]
    return d / f'eval-{protocol}.json'

def metric(row, seed, protocol, finetuned=False):
    "A protocol's figure for a row and seed (see `result_file`); None when that job has not finished."
    f = result_file(row, seed, protocol, finetuned)
    if not f.exists(): return None
    m = json.loads(f.read_text())['metrics']
    return m['pos_acc'] if protocol == 'position' else m['acc']

def pretrain_figures(row, seed):
    """The last pretraining position accuracy, the pretraining seconds and CPU-minutes of a row and seed (None where not
    finished): CPU-minutes = wall-clock x threads, a BEiT v2 row's with its tokenizer's (None where that was not timed)."""
    d = WORK / slug(row) / f's{seed}'
    if row not in PRETRAINED or not (d / 'wallclock.json').exists(): return None, None, None
    last = list(csv.DictReader((d / 'metrics.csv').open()))[-1]
    w = json.loads((d / 'wallclock.json').read_text())
    cpu_min = w['seconds'] * w.get('threads', THREADS) / 60
    if row in BEIT:
        tw = tokenizer_of(seed).parent / 'wallclock.json'
        t = json.loads(tw.read_text()) if tw.exists() else None
        cpu_min = cpu_min + t['seconds'] * t.get('threads', THREADS) / 60 if t else None
    return (float(last['pos_acc']) if 'pos_acc' in last else None), w['seconds'], cpu_min

# A cell holds the seeds whose job finished: a seed cut short by --deadline or a failure fills the cells it finished,
# and a cell with fewer seeds than the table says how many it has (n).
def finished(s):
    return any(metric(r, s, p) is not None for r in ROWS for p in PROTOCOLS) or any(pretrain_figures(r, s)[1] for r in PRETRAINED)
S = [s for s in S if finished(s)]
if not S and not (OUT / 'results.json').exists(): sys.exit("no job finished: no table written")

COLS = ['pretrain_pos_acc', 'position', 'linear', 'knn', 'finetune', 'pretrain_seconds', 'pretrain_cpu_min']
table = {}
for row in ROWS:
    per_seed = {}
    for s in S:
        acc, secs, cpu_min = pretrain_figures(row, s)
        v = dict(pretrain_pos_acc=acc, pretrain_seconds=secs, pretrain_cpu_min=cpu_min,
                 **{p: metric(row, s, p) for p in PROTOCOLS if not (row == 'random init' and p == 'finetune')})
        if any(x is not None for x in v.values()): per_seed[str(s)] = v
    table[row] = per_seed
probed = lambda row, s: result_file(row, s, 'position', finetuned=True).exists() and metric(row, s, 'position') is not None
motivating = {row: {str(s): dict(before=metric(row, s, 'position'), after=metric(row, s, 'position', finetuned=True))
                    for s in S if probed(row, s)}
              for row in ['random init', 'random Beit', *[r for r in PRETRAINED if r not in CONVNET]]}
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
if args.device == 'cuda' and not args.table_only:
    import torch
    cpu = f"{torch.cuda.get_device_name(0)} (with {os.cpu_count()} cores of {cpu}), torch {torch.__version__}"
runs = [dict(seeds=S, cpu=cpu, machine=platform.platform(), jobs=args.jobs, threads_per_job=THREADS,
             date=time.strftime('%Y-%m-%d'))] if S else []
prev_file = OUT / 'results.json'
prev = json.loads(prev_file.read_text()) if prev_file.exists() and not args.fresh else None
if args.table_only and prev and prev.get('runs'):     # the jobs ran where the table in --out was made, not here
    runs = [dict(prev['runs'][-1], seeds=S)]
    cpu, args.jobs, THREADS = runs[0]['cpu'], runs[0]['jobs'], runs[0]['threads_per_job']

# Seeds add up: the seeds of an earlier table with the same data and settings are kept (a seed measured again replaces
# its old figures), so `--seeds 1 2` after `--seeds 0` gives the table of all three.
# The precision is the machine's, not the protocol's: settings that differ only in it (bf16 on a CPU with native bf16,
# fp32 elsewhere, or the committed tables' explicit bf16) still add up; every job's eval record names what it ran in.
def same_settings(a, b):
    drop = lambda d: {k: re.sub(r'--precision \S+ ?', '', v) if isinstance(v, str) else v for k, v in (d or {}).items()}
    return drop(a) == drop(b)
if prev and prev['data'] == args.data and prev['quick'] == args.quick and same_settings(prev.get('settings'), SETTINGS):
    keep = lambda old, new: {s: v for s, v in old.items() if s not in new} | new
    table = {r: keep(prev['table'].get(r, {}), table[r]) for r in ROWS}
    motivating = {r: keep(prev['motivating'].get(r, {}), motivating[r]) for r in motivating}
    runs = [dict(u, seeds=[s for s in u['seeds'] if s not in S]) for u in prev.get('runs', [])] + runs
    runs = [u for u in runs if u['seeds']]
SEEDS = sorted({int(s) for r in ROWS for s in table[r]})
if failures or not all(str(s) in table[r] for r in ROWS for s in SEEDS):
    print("not every job finished: the cells show how many seeds they hold (n)")
S = [str(s) for s in SEEDS]

def summary(vals):
    vals = [v for v in vals if v is not None]
    if not vals: return None
    return dict(mean=statistics.fmean(vals), std=statistics.stdev(vals) if len(vals) > 1 else 0., n=len(vals))

res = dict(data=args.data, seeds=SEEDS, quick=args.quick, settings=SETTINGS, runs=runs, cpu=runs[-1]['cpu'] if runs else cpu, jobs=args.jobs,
           threads_per_job=THREADS, table=table, summary={r: {c: summary([table[r].get(s, {}).get(c) for s in S]) for c in COLS} for r in ROWS},
           motivating=motivating,
           motivating_summary={r: {k: summary([v[k] for v in motivating[r].values()]) for k in ('before', 'after')} for r in motivating})
# the floors: logistic regression and kNN on the raw pixels of the same split (bench/floors.py; device-independent)
ff = ROOT / args.floors
floors = json.loads(ff.read_text()) if ff.exists() else None
if floors and floors.get('data') == args.data:
    res['floors'] = dict(source=args.floors, linear=floors['acc']['logreg'], knn=floors['acc']['knn_protocol'],
                         knn_euclidean=floors['acc']['knn_euclidean'], settings=floors.get('settings'))
if failures: res['failures'] = {' '.join(map(str, n)): why[-500:] for n, why in failures.items()}
OUT.mkdir(parents=True, exist_ok=True)
(OUT / 'results.json').write_text(json.dumps(res, indent=1, ensure_ascii=False))

def cell(v, pct=True, digits=0):
    if v is None: return '–'
    return f"{100 * v:.1f}" if pct else f"{v:.{digits}f}"
def mcell(sm, pct=True, digits=0):
    if sm is None: return '–'
    k = 100 if pct else 1
    n = f" (n={sm['n']})" if sm['n'] < len(S) else ''
    return (f"{k * sm['mean']:.1f} ± {k * sm['std']:.1f}" if pct else f"{sm['mean']:.{digits}f} ± {sm['std']:.{digits}f}") + n
head = ('| row | seed | pretraining position acc. (%) | position probe (%) | linear (%) | kNN (%) | fine-tune (%) | pretraining (s) '
        '| pretraining CPU-min |')
md = [f"{args.data}, seeds {', '.join(S)}{' (QUICK: not a measurement)' if args.quick else ''}; " +
      '; '.join(f"seeds {', '.join(map(str, u['seeds']))} on {u['cpu']} ({u['date']}), {u['jobs']} jobs at a time with "
                f"{u['threads_per_job']} thread(s) each" for u in runs) +
      f"; beyond the defaults: pretrain `{SETTINGS['pretrain']}`, fine-tune `{SETTINGS['finetune']}`" +
      (f", random init `{SETTINGS['random']}`" if 'random' in SETTINGS else '') +
      (f"; epochs of the equal budget: {SETTINGS['epochs']}" if 'epochs' in SETTINGS else ''), '', head, '|' + '---|' * 9]
if any(sm and sm['n'] < len(S) for r in ROWS for sm in res['summary'][r].values()):
    md[0] += ("; a cell marked (n=K) holds the K seeds whose job finished (the others were cut short by --deadline "
              "or failed; rerun the same command to finish them)")
if 'floors' in res:
    fl = res['floors']
    md.append(f"| pixels: logistic regression (floor) | – | – | – | {cell(fl['linear'])} | – | – | – | – |")
    md.append(f"| pixels: kNN, the protocol's (floor) | – | – | – | – | {cell(fl['knn'])} | – | – | – |")
RAW = dict(pretrain_seconds=0, pretrain_cpu_min=1)   # not percentages: their decimals
NA = lambda r, c: (r in CONVNET or r.startswith('random ResNet-18')) and c in ('pretrain_pos_acc', 'position')
for r in ROWS:
    for s in S:
        v = table[r].get(s, {})
        md.append(f"| {r} | {s} | " + ' | '.join('n/a' if NA(r, c) else cell(v.get(c), c not in RAW, RAW.get(c, 0)) for c in COLS) + ' |')
    md.append(f"| **{r}** | mean ± sd | " + ' | '.join('n/a' if NA(r, c) else mcell(res['summary'][r][c], c not in RAW, RAW.get(c, 0)) for c in COLS) + ' |')
md.insert(1, "n/a: the position probe needs patch positions, which a ResNet-18 (MSCN, and its two random-init floors) does not have "
             "(BEiT v2's encoder has them as a relative position bias: its probe zeroes a dropped patch's rows and columns of it); the fine-tune column of the random-init ResNet-18 is a "
             "ResNet-18 trained from scratch on the labels (the supervised row of the ResNets).")
MS = sorted({s for r in motivating for s in motivating[r]}, key=int)
md += ['', f"| encoder (seeds {', '.join(MS)}) | position probe before fine-tuning (%) | after fine-tuning (%) |", '|---|---|---|']
md += [f"| {r} | {mcell(res['motivating_summary'][r]['before'])} | {mcell(res['motivating_summary'][r]['after'])} |" for r in motivating]
(OUT / 'results.md').write_text('\n'.join(md) + '\n')
print('\n'.join(md))
