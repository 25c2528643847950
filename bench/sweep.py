"""Resumable sweeps for the laptop pretraining recipes on mnist5k, one factor at a time.

The equal-budget sweep (issue 29, item 2; the default): every method (DropPos, MAE, CAE, BEiT v2 with its VQ-KD
tokenizer, MoCo v3, MSCN) gets the same wall-clock budget, BUDGET = 300 s of training on one thread, and every
recipe is selected on mnist5k-select, never on the validation digits the results table reports on.

    python bench/sweep.py                        # run every equal-budget config not yet done, then the table
    python bench/sweep.py --workers 2            # two configs at once, one per core (each on one thread)
    python bench/sweep.py --methods cae mocov3   # only these methods' configs (and what they need)
    python bench/sweep.py --quick                # the whole pipeline in minutes: centres only, a few seconds' budget,
                                                 # 256 digits, in a temporary --out (deleted unless --keep)
    python bench/sweep.py --list                 # the configs, their epochs once planned, whether they are done
    python bench/sweep.py --table-only           # rebuild the equal-budget table from the finished configs

- Split: `--data mnist5k-select` (nbs/01_data) for pretraining and evaluation: 3,000 of mnist5k's training digits to
  pretrain on (and for the probes' training), the other 1,000 training digits to select on. mnist5k's 1,000
  validation digits, on which bench/results.py reports, are never used (tests/test_sweep.py checks the commands).
- Budget: a config's epochs = its budget / its seconds per epoch, measured by a calibration epoch of the config's own
  shape on the same data and the same machine (cached in WORK/calibration-equal.json; `eq_epoch_seconds`), fixed at the
  config's first start (WORK/plans/NAME.json). "Training" is metrics.csv's seconds (each epoch's training and its validation
  on the 1,000 selection digits), on one thread; the table records the seconds each config actually took.
  bench/results/method_costs/ predicts, on 3,000 digits: DropPos ~29 epochs, MAE ~34, MoCo v3 ~8, MSCN ~4.
  Measured (2026-12-07, one thread on the shared 2-core machine, load ~3): eq-cae-c calibrated at 11.7 s per epoch,
  ran 26 epochs in 324 s of training (339 s wall), 405 s with calibration and its three evaluations; the 33 configs
  (29 pretrainings, 2 tokenizers, 2 random references) take about 3.5 hours on one thread.
  The run of 2026-12-07 (AMD EPYC, native bf16, `--workers 2`: one config per core): the 35 configs (with 4 random
  references) in 88 minutes, then the 6 BEiT v2 configs of the centre's shape again (their shape's calibration epoch had
  run beside other jobs: 23 s, against 11.5 s beside one other worker; the table's "budget used" column shows such a
  miscalibration). Configs of one shape share a calibration and so their epochs: the comparison within a shape is at
  equal epochs, the one across shapes and methods at equal seconds only as far as the machine's load stayed the same.
- Workers: `--workers N` starts N sweeps on the same folder; each config is claimed by one of them (WORK/claims), a
  config that needs another (BEiT v2 its tokenizer) waits for it, shared files are locked and replaced atomically. A
  second `python bench/sweep.py` started by hand joins the same way. Every finished step is copied to
  bench/results/sweep/runs/NAME (committed): on another machine the sweep skips what is recorded there, and trains again
  only a teacher or tokenizer that an unfinished config needs.
- BEiT v2: its VQ-KD tokenizer is trained once (eq-vqkd, a third of the budget) and shared by the BEiT v2 configs;
  its seconds count in their budget (a BEiT v2 stage gets the budget minus the tokenizer's seconds). The
  tokenizer's teacher is the sweep's own DropPos row (eq-dp, trained on the 3,000 digits: it never saw a selection
  digit); like the CLIP teacher of the paper, the teacher's cost is not counted.
- Centres: each method's laptop recipe (`--recipe laptop`) with the official behaviour where issue 29 item 1 made it
  an option (BEiT v2: `--beit-init official --color-jitter 0.4 --decay-groups official`, VQ-KD `--vqkd-pos learned`;
  MoCo v3 `--decay-groups official`), CAE in a laptop shape (4 blocks, 8 px patches, 2-block regressor and decoder)
  instead of its 12-block paper shape; then one factor at a time (learning rate, augmentation, the fidelity options,
  shapes that change the epochs the budget buys).
- Selection: per method, the config with the highest score = mean of kNN ([CLS], k = 20) and linear probe ([CLS],
  30 epochs) accuracy on the selection digits. Random-init encoders of the ViT and ResNet-18 shapes are reference
  rows. Results: bench/results/sweep/equal_budget.{json,md}, runs in bench/results/sweep/runs/, progress in
  bench/results/sweep/sweep.log. The winners became the laptop recipes of CAE, VQ-KD, BEiT v2, MoCo v3 and MSCN
  (2026-12-08; their earlier ones, this sweep's base, are `--recipe laptop-v1`: BASE below), each with the epochs of
  one budget (`--recipe equal` for DropPos and MAE, whose laptop recipes stay shorter; bench/method_costs.py).

The first sweep (project issue 11, 2026-12-04): DropPos and MAE, LEGACY below, selected on the validation split
(bench/results/sweep/sweep.{json,md}, kept as its record):

    python bench/sweep.py --legacy               # run the legacy configs not yet done
    python bench/sweep.py --legacy --only dp-c mae-c
    python bench/sweep.py --legacy --table-only  # rebuild bench/results/sweep/sweep.{json,md} from the finished configs
    python bench/sweep.py --probes --probe-on dp2-p8 --probe-ref random-d4w192p8   # position-probe settings (PROBES)

The sweep runs one config, rebuilds the table and starts itself again (so configs added to LEGACY while it runs
are picked up); stop it with `kill -- -PID` between configs. In the session of 2026-12-04 it was stopped after
mae-blr5e-4: dp3-e14 and the configs after it in LEGACY were not run.

In that sweep every pretraining got about the same wall-clock budget, 100 s of training on one core: every config in
LEGACY sets its epochs (the centre 7 epochs, about 14.5 s each measured; other shapes set by hand from the first
measurements; the table records the actual seconds, which the other jobs on the machine stretched by up to 1.5x).
A config without --epochs is calibrated instead (`epoch_seconds`: a one-epoch run on 1,024 images, scaled; cached in
bench/out/sweep/calibration.json; `--budget`). A config's epochs are fixed at its first start (plan.json).

Each config's folder bench/out/sweep/NAME is its record: pretraining outputs (metrics.csv, encoder.safetensors,
wallclock.json), then `droppos_nb eval` results eval-knn.json (k = 20, [CLS]), eval-knn_mean.json (k = 20, mean of
patch tokens), eval-linear.json ([CLS], 30 epochs); a finished step is never run again. Random-init encoders of the
same shapes are reference rows (eval only). The summary goes to bench/results/sweep/sweep.json and sweep.md, a copy
of each config's metrics.csv and config to bench/results/sweep/runs/, and progress to bench/results/sweep/sweep.log.
"""
import argparse, csv, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))   # bench/_references.py: the random reference encoders (with bench/results.py)
WORK, RES = ROOT / 'bench/out/sweep', ROOT / 'bench/results/sweep'
# The library the commands run: the installed `droppos_nb` by default; DROPPOS_LIB=DIR runs a frozen copy of one commit
# instead (the committed sweep ran commit fa32b40 that way, while the working tree was being edited), made with
#     mkdir -p bench/out/lib && git archive COMMIT droppos_nb | tar -x -C bench/out/lib
# Commands then run with that folder as working directory, so `python -m droppos_nb.cli` imports the copy.
# Every run passes --recipe paper, so its settings are the centre's flags on top of the paper recipe, as in fa32b40
# (which had no recipes), and not on top of the laptop recipe this sweep chose.
LIB = Path(os.environ.get('DROPPOS_LIB', ''))
EXE = [sys.executable, '-m', 'droppos_nb.cli'] if str(LIB) not in ('', '.') else [str(Path(sys.executable).with_name('droppos_nb'))]
CWD = LIB if str(LIB) not in ('', '.') else ROOT
RECIPE = [] if str(LIB) not in ('', '.') else ['--recipe', 'paper']   # fa32b40 had no --recipe
# a run cut short is started again (a finished one is skipped before): --overwrite, where the library has it
OVERWRITE = ['--overwrite'] if '--overwrite' in ((LIB if str(LIB) not in ('', '.') else ROOT) / 'droppos_nb/cli.py').read_text() else []

# --- the configs ---------------------------------------------------------------------------------------------------
# The centre: a 4-block ViT of ViT-Tiny's width (192, 3 heads), a small decoder (128 wide, 2 blocks, 4 heads), a
# learning rate 13x the paper's (blr 2e-3: lr 1e-3 at batch 128), the machine's precision (bf16 autocast where native), the default augmentation (min-scale 0.2),
# 7 epochs: about 100 s of training on one core (14.5 s per epoch measured, ~10 s start-up). Configs of another shape
# get the epochs that fit the same budget, from the centre's measured epoch time and each shape's cost (set by hand
# from the first measurements, checked against the wall-clock the table records); a config without --epochs is
# calibrated instead (see `epoch_seconds`).
CENTRE = {'--depth': 4, '--embed-dim': 192, '--num-heads': 3, '--decoder-dim': 128, '--decoder-depth': 2, '--decoder-heads': 4,
          '--blr': 2e-3, '--bs': 128, '--min-scale': 0.2, '--img-size': 32, '--patch-size': 4, '--precision': 'auto',
          '--epochs': 7}

def cfg(name, method, **changes):
    "A config: the centre with `changes` (keys are flags without the dashes, '_' for '-'; None drops a flag)."
    flags = dict(CENTRE)
    for k, v in changes.items():
        f = '--' + k.replace('_', '-')
        if v is None: flags.pop(f, None)
        else: flags[f] = v
    return dict(name=name, kind='pretrain', method=method, flags=flags)

def rnd(name, depth=4, embed_dim=192, num_heads=3, img_size=32, patch_size=4):
    return dict(name=name, kind='random', flags={'--depth': depth, '--embed-dim': embed_dim, '--num-heads': num_heads,
                                                   '--img-size': img_size, '--patch-size': patch_size})

# In the order they run: the most informative first, so that a sweep cut short still answers the main questions.
LEGACY = [
    cfg('dp-c', 'droppos'), rnd('random-d4w192'), cfg('mae-c', 'mae'), cfg('dp-c-e4', 'droppos', epochs=4),
    cfg('dp-ms1.0', 'droppos', min_scale=1.0), cfg('dp-blr5e-4', 'droppos', blr=5e-4), cfg('mae-ms1.0', 'mae', min_scale=1.0),
    cfg('dp-ms0.5', 'droppos', min_scale=0.5),
    # min-scale 1.0 (no crop) won the first round by far (pos_acc 16.9% vs 7.7%, kNN mean 55.0% vs 45.6%): the other
    # DropPos factors are varied around centre 2 = the centre with --min-scale 1.0 (coordinate descent); MAE was worse
    # without crops (linear 61.6% vs 75.5%), so its factors stay around the centre
    cfg('dp2-blr5e-4', 'droppos', min_scale=1.0, blr=5e-4),   # blr 5e-4 beat 2e-3 at min-scale 0.2 (linear 76.4% vs 65.2%)
    cfg('dp2-w128h4', 'droppos', min_scale=1.0, embed_dim=128, num_heads=4, epochs=9),
    cfg('dp2-d6', 'droppos', min_scale=1.0, depth=6, epochs=5), cfg('dp2-p8', 'droppos', min_scale=1.0, patch_size=8, epochs=16),
    rnd('random-d4w192p8', patch_size=8), rnd('random-d6w192', depth=6), rnd('random-d4w128h4', embed_dim=128, num_heads=4),
    # 8 px patches (a 4x4 grid) ran 16 epochs in 58 s, not 100 s, and won on kNN: the same with the budget's epochs,
    # and MAE with 8 px patches
    cfg('dp3-p8-e28', 'droppos', min_scale=1.0, patch_size=8, epochs=28), cfg('mae-p8', 'mae', patch_size=8, epochs=24),
    cfg('dp3-p8-blr5e-4', 'droppos', min_scale=1.0, patch_size=8, blr=5e-4, epochs=28),
    cfg('mae-npl', 'mae', norm_pix_loss=True), cfg('mae-blr5e-4', 'mae', blr=5e-4),
    # confirmation: the best DropPos settings (min-scale 1.0, blr 5e-4) for twice the budget
    cfg('dp3-e14', 'droppos', min_scale=1.0, blr=5e-4, epochs=14),
    cfg('dp2-blr5e-3', 'droppos', min_scale=1.0, blr=5e-3), cfg('dp2-bs256', 'droppos', min_scale=1.0, bs=256),
    cfg('dp2-dec256', 'droppos', min_scale=1.0, decoder_dim=256, decoder_heads=8, epochs=6),
    cfg('dp2-bs64', 'droppos', min_scale=1.0, bs=64),
]
# Position-probe settings tried on the best DropPos encoder and a random one of the same shape (issue item 4):
# (drop ratio, epochs, lr, training images: None for all 4,000); `--probe-on NAME` names the DropPos config, `--probes`
# runs them. The first is the protocol's default; the others train on 1,000 images to fit the hour (validation: all 1,000).
PROBES = [(0.75, 5, 1e-2, None), (0.75, 5, 1e-2, 1000), (0.25, 5, 1e-2, 1000), (0.5, 5, 1e-2, 1000), (0.9, 5, 1e-2, 1000),
          (0.75, 20, 1e-1, 1000), (0.25, 20, 1e-1, 1000)]
EVALS = {'knn': ['--protocol', 'knn'], 'knn_mean': ['--protocol', 'knn', '--pool', 'mean'], 'linear': ['--protocol', 'linear']}

# --- running -------------------------------------------------------------------------------------------------------
def log(msg):
    line = f"{time.strftime('%H:%M:%S')}  {msg}"
    print(line, flush=True)
    RES.mkdir(parents=True, exist_ok=True)
    with open(RES / 'sweep.log', 'a') as f: f.write(line + '\n')

def run(cmd, logfile):
    "Run a command line on one thread (nice 5), output to `logfile`; the seconds it took."
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', MPLBACKEND='Agg', PYTHONWARNINGS='ignore')
    logfile.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with open(logfile, 'w') as f: r = subprocess.run(['nice', '-n', '5', *cmd], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=CWD)
    if r.returncode: raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}\n{logfile.read_text()[-2000:]}")
    return time.perf_counter() - t

def flag_list(flags): return [str(x) for k, v in flags.items() for x in ((k,) if v is True else (k, v))]
def read_metrics(d): return list(csv.DictReader((d / 'metrics.csv').open())) if (d / 'metrics.csv').exists() else []

# The factor from the seconds of a calibration epoch (1024 training images + the 1,000 validation images) to the
# seconds of a full epoch (4,000 + 1,000), measured on the centre DropPos config: 14.6 s / 5.5 s.
CAL_ITEMS, CAL_FACTOR = 1024, 2.65
SPEED_KEYS = ('--depth', '--embed-dim', '--num-heads', '--decoder-dim', '--decoder-depth', '--decoder-heads', '--bs',
              '--img-size', '--patch-size', '--mask-ratio', '--precision')

def epoch_seconds(c):
    "Estimated seconds of one full epoch of config `c`, from a calibration run of its shape (cached)."
    key = c['method'] + ' ' + ' '.join(f"{k}={c['flags'].get(k)}" for k in SPEED_KEYS)
    cache_f = WORK / 'calibration.json'
    cache = json.loads(cache_f.read_text()) if cache_f.exists() else {}
    if key not in cache:
        d = WORK / '_cal' / str(len(cache))
        shutil.rmtree(d, ignore_errors=True)
        flags = {**c['flags'], '--epochs': 1, '--max-items': CAL_ITEMS}
        run([*EXE, 'pretrain', '--method', c['method'], *RECIPE, *flag_list(flags), *OVERWRITE, '--quiet', '--out', str(d)], d.with_suffix('.log'))
        cache[key] = CAL_FACTOR * float(read_metrics(d)[-1]['seconds'])
        cache_f.write_text(json.dumps(cache, indent=1))
        log(f"calibrated {key}: ~{cache[key]:.1f} s per epoch")
    return cache[key]

def pretrain(c, budget):
    d = WORK / c['name']
    if (d / 'wallclock.json').exists(): return
    plan_f = d / 'plan.json'
    if plan_f.exists(): plan = json.loads(plan_f.read_text())
    else:
        est = None if c['flags'].get('--epochs') else epoch_seconds(c)
        plan = dict(epochs=c['flags'].get('--epochs') or max(2, round(budget / est)), est_epoch_seconds=est, budget=budget)
        d.mkdir(parents=True, exist_ok=True); plan_f.write_text(json.dumps(plan))
    flags = {**c['flags'], '--epochs': plan['epochs']}
    log(f"pretrain {c['name']}: {c['method']} {' '.join(flag_list(flags))}")
    secs = run([*EXE, 'pretrain', '--method', c['method'], *RECIPE, *flag_list(flags), *OVERWRITE, '--seed', '0', '--quiet', '--out', str(d)],
               WORK / 'logs' / f"pretrain-{c['name']}.log")
    (d / 'wallclock.json').write_text(json.dumps(dict(seconds=secs, threads=1, epochs=plan['epochs'])))
    m = read_metrics(d)
    log(f"  done in {secs:.0f} s (training {sum(float(r['seconds']) for r in m):.0f} s), last pos_acc "
        f"{m[-1].get('pos_acc', '-')}")

def evaluate(c):
    d = WORK / c['name']
    ck = ['--checkpoint', 'random', *flag_list(c['flags'])] if c['kind'] == 'random' else ['--checkpoint', str(d / 'encoder.safetensors')]
    for nm, proto in EVALS.items():
        f = d / f'eval-{nm}.json'
        if f.exists(): continue
        tmp = d / f'_eval-{nm}'
        secs = run([*EXE, 'eval', *proto, *ck, '--data', 'mnist5k', '--seed', '0', '--quiet', '--out', str(tmp)],
                   WORK / 'logs' / f"eval-{c['name']}-{nm}.log")
        r = json.loads((tmp / f"eval-{proto[1]}.json").read_text()); r['wall_seconds'] = secs
        d.mkdir(parents=True, exist_ok=True); f.write_text(json.dumps(r, indent=1)); shutil.rmtree(tmp)
        log(f"  {c['name']} {nm}: {100 * r['metrics']['acc']:.1f}% ({secs:.0f} s)")

def probe(c, drop, epochs, lr, items=None):
    "The position probe of config `c`'s encoder (or its random-init shape) with the given settings; its record."
    d = WORK / c['name']
    ck = ['--checkpoint', 'random', *flag_list(c['flags'])] if c['kind'] == 'random' else ['--checkpoint', str(d / 'encoder.safetensors')]
    nm = f'position-drop{drop:g}-ep{epochs}-lr{lr:g}' + (f'-n{items}' if items else '')
    f = d / f'eval-{nm}.json'
    if not f.exists():
        tmp = d / f'_eval-{nm}'
        secs = run([*EXE, 'eval', '--protocol', 'position', *ck, '--drop-ratio', str(drop), '--epochs', str(epochs), '--lr', str(lr),
                    *(['--max-items', str(items)] if items else []), '--data', 'mnist5k', '--seed', '0', '--quiet', '--out', str(tmp)], WORK / 'logs' / f"eval-{c['name']}-{nm}.log")
        r = json.loads((tmp / 'eval-position.json').read_text()); r['wall_seconds'] = secs
        d.mkdir(parents=True, exist_ok=True); f.write_text(json.dumps(r, indent=1)); shutil.rmtree(tmp)
        log(f"  {c['name']} {nm}: {100 * r['metrics']['pos_acc']:.1f}% ({secs:.0f} s)")
    return json.loads(f.read_text())

def probe_table(pre, ref):
    "Position probe of DropPos config `pre` and random config `ref` for each finished setting in PROBES."
    out, md = [], ['| drop ratio | epochs | lr | training images | ' + f"{pre['name']} (%) | {ref['name']} (%) | difference (points) | seconds (both) |", '|---|---|---|---|---|---|---|---|']
    for drop, epochs, lr, items in PROBES:
        nm = f'position-drop{drop:g}-ep{epochs}-lr{lr:g}' + (f'-n{items}' if items else '')
        fs = [WORK / c['name'] / f'eval-{nm}.json' for c in (pre, ref)]
        if not all(f.exists() for f in fs): continue
        a, b = (json.loads(f.read_text()) for f in fs)
        out.append(dict(drop_ratio=drop, epochs=epochs, lr=lr, train_items=items or 4000, pretrained=a['metrics']['pos_acc'], random=b['metrics']['pos_acc'],
                        seconds=[a['seconds'], b['seconds']]))
        md.append(f"| {drop:g} | {epochs} | {lr:g} | {items or 4000} | {100 * out[-1]['pretrained']:.1f} | {100 * out[-1]['random']:.1f} | "
                  f"{100 * (out[-1]['pretrained'] - out[-1]['random']):+.1f} | {a['seconds'] + b['seconds']:.0f} |")
    RES.mkdir(parents=True, exist_ok=True)
    (RES / f"position_probe-{pre['name']}.json").write_text(json.dumps(dict(pretrained=pre['name'], random=ref['name'], rows=out), indent=1))
    (RES / f"position_probe-{pre['name']}.md").write_text('\n'.join(md) + '\n')
    print('\n'.join(md))

# --- the table -----------------------------------------------------------------------------------------------------
def row(c):
    d = WORK / c['name']
    r = dict(name=c['name'], kind=c['kind'], method=c.get('method', 'random init'), flags=c['flags'])
    if c['kind'] == 'pretrain':
        if not (d / 'wallclock.json').exists(): return None
        m, w = read_metrics(d), json.loads((d / 'wallclock.json').read_text())
        accs = [float(x['pos_acc']) for x in m if x.get('pos_acc')]
        r.update(epochs=w['epochs'], pretrain_seconds=round(w['seconds'], 1),
                 train_seconds=round(sum(float(x['seconds']) for x in m), 1),
                 pos_acc_final=accs[-1] if accs else None, pos_acc_best=max(accs) if accs else None,
                 valid_loss_final=float(m[-1]['valid_loss']))
        RUNS = RES / 'runs' / c['name']; RUNS.mkdir(parents=True, exist_ok=True)
        for fn in ('metrics.csv', 'config.json'): shutil.copy(d / fn, RUNS / fn)
    for nm in EVALS:
        f = d / f'eval-{nm}.json'
        if f.exists():
            e = json.loads(f.read_text())
            r[nm], r[f'{nm}_seconds'] = e['metrics']['acc'], e['seconds']
    return r

def short(c):
    "The flags where the config differs from the centre."
    if c['kind'] == 'random': return f"random init d{c['flags']['--depth']} w{c['flags']['--embed-dim']} h{c['flags']['--num-heads']} p{c['flags']['--patch-size']}"
    diff = {k: v for k, v in c['flags'].items() if CENTRE.get(k) != v}
    diff.update({k: '(default)' for k in CENTRE if k not in c['flags']})
    return 'centre' + ''.join(f" {k} {v}" for k, v in diff.items())

def table():
    rows = [r for r in (row(c) for c in LEGACY) if r is not None]
    if not any('pretrain_seconds' in r or 'knn' in r for r in rows):     # the runs are not on this machine
        return print(f"no finished legacy config in {WORK}: bench/results/sweep/sweep.md left as it is")
    pct = lambda v: '–' if v is None else f"{100 * v:.1f}"
    md = [f"mnist5k (4,000 train / 1,000 valid), seed 0, one thread on {cpu()}; centre: `{' '.join(flag_list(CENTRE))}`; "
          "kNN k = 20, T = 0.07 (cosine); linear probe 30 epochs, [CLS]", '',
          '| config | method | changes from centre | epochs | pretrain s (total / training) | pos_acc final / best (%) | kNN cls (%) | kNN mean (%) | linear cls (%) | eval s (knn+knn_mean+linear) |',
          '|' + '---|' * 10]
    for c, r in ((c, r) for c in LEGACY for r in rows if r['name'] == c['name']):
        secs = sum(r.get(f'{nm}_seconds', 0) for nm in EVALS)
        md.append(f"| {r['name']} | {r['method']} | {short(c)} | {r.get('epochs', '–')} | "
                  + (f"{r['pretrain_seconds']:.0f} / {r['train_seconds']:.0f}" if 'pretrain_seconds' in r else '–') + ' | '
                  + (f"{pct(r['pos_acc_final'])} / {pct(r['pos_acc_best'])}" if r.get('pos_acc_final') is not None else '–')
                  + f" | {pct(r.get('knn'))} | {pct(r.get('knn_mean'))} | {pct(r.get('linear'))} | {secs:.0f} |")
    RES.mkdir(parents=True, exist_ok=True)
    (RES / 'sweep.json').write_text(json.dumps(dict(data='mnist5k', seed=0, threads=1, cpu=cpu(), machine=platform.platform(),
                                                    centre=CENTRE, rows=rows), indent=1))
    (RES / 'sweep.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))

def cpu(): return next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())

# --- the equal-budget sweep (issue 29, item 2) ---------------------------------------------------------------------
SELECT = 'mnist5k-select'   # the split every equal-budget command uses: never mnist5k's validation digits
BUDGET = 300.               # seconds of training per method (one thread): the same for every config
TOKENIZER_SHARE = 1 / 3     # of the budget, for BEiT v2's VQ-KD tokenizer (eq-vqkd, shared by the BEiT v2 configs)
# settings that do not change a step's cost: configs that differ only in these share a calibration
COST_NEUTRAL = {'--blr', '--lr', '--min-scale', '--momentum', '--temperature', '--beit-init', '--decay-groups',
                '--color-jitter', '--vqkd-pos', '--multi-view', '--tokenizer', '--teacher', '--epochs'}
QUICK = dict(budget=8., items=256, valid=128, linear_epochs=2)   # --quick: the pipeline, not the recipes

def eq(name, method, needs=(), share=None, **changes):
    """An equal-budget config: the method's laptop recipe with `changes` (keys are flags without the dashes, '_' for
    '-'; True for a switch). `needs`: configs it reads (a teacher, a tokenizer); `share`: its part of the budget."""
    flags = {'--' + k.replace('_', '-'): v for k, v in changes.items()}
    return dict(name=name, kind='pretrain', method=method, flags=flags, needs=tuple(needs), share=share, sweep='equal')

def eq_rnd(name, **flags):
    "A random-init reference encoder of the shape `flags`, evaluated on the selection split."
    return dict(name=name, kind='random', method='random init', needs=(), sweep='equal',
                flags={'--' + k.replace('_', '-'): v for k, v in flags.items()})

def random_resnet18_nzi(d):
    "A random ResNet-18 with zero_init_last=False (bench/_references.py, as bench/results.py's floor): MSCN's fair floor."
    from _references import random_resnet18
    random_resnet18(d, seed=0)

def random_beit(d):
    "A random Beit of BEiT v2's base shape with the official init (bench/_references.py): BEiT v2's floor."
    from _references import random_beit as make
    make(d, seed=0, recipe=BASE['beitv2'], tokenizer_recipe=BASE['vqkd'], beit_init='official')

def eq_rnd_file(name, make):
    "A random-init reference encoder that `make(folder)` writes (shapes `--checkpoint random` cannot build)."
    return dict(name=name, kind='random', method='random init', needs=(), sweep='equal', flags={}, make=make)

CAE_C = dict(depth=4, patch_size=8, decoder_depth=2, regressor_depth=2, blr=2e-3, min_scale=0.2, drop_path=0.)
VQKD_C = dict(teacher='eq-dp', vqkd_pos='learned', decay_groups='official')
BEIT_C = dict(tokenizer='eq-vqkd', beit_init='official', color_jitter=0.4, decay_groups='official')
MOCO_C = dict(decay_groups='official')
# In the order they run: every method's centre first (a sweep cut short still compares the methods), then the
# one-factor variations, the likeliest to matter first.
EQUAL = [
    eq('eq-dp', 'droppos'), eq('eq-mae', 'mae'), eq('eq-cae-c', 'cae', **CAE_C),
    eq('eq-vqkd', 'vqkd', needs=('eq-dp',), share=TOKENIZER_SHARE, **VQKD_C),
    eq('eq-beit-c', 'beitv2', needs=('eq-vqkd',), **BEIT_C), eq('eq-moco-c', 'mocov3', **MOCO_C),
    eq('eq-mscn-c', 'mscn'),
    eq_rnd('eq-random-vit', depth=4, embed_dim=192, num_heads=3, img_size=32, patch_size=8),
    eq_rnd('eq-random-resnet18', arch='resnet18', img_size=32),
    eq_rnd_file('eq-random-resnet18-nzi', random_resnet18_nzi), eq_rnd_file('eq-random-beit', random_beit),
    # the fidelity options (issue 29, item 1) against the laptop's earlier choices
    eq('eq-beit-timm', 'beitv2', needs=('eq-vqkd',), **{**BEIT_C, 'beit_init': 'timm'}),
    eq('eq-beit-cj0', 'beitv2', needs=('eq-vqkd',), **{**BEIT_C, 'color_jitter': 0.}),
    eq('eq-beit-fastai', 'beitv2', needs=('eq-vqkd',), **{**BEIT_C, 'decay_groups': 'fastai'}),
    eq('eq-moco-fastai', 'mocov3', **{**MOCO_C, 'decay_groups': 'fastai'}),
    eq('eq-mscn-same', 'mscn', multi_view='same'),
    # learning rates
    eq('eq-cae-blr5e-4', 'cae', **{**CAE_C, 'blr': 5e-4}), eq('eq-cae-blr5e-3', 'cae', **{**CAE_C, 'blr': 5e-3}),
    eq('eq-beit-lr3e-4', 'beitv2', needs=('eq-vqkd',), **{**BEIT_C, 'lr': 3e-4}),
    eq('eq-beit-lr3e-3', 'beitv2', needs=('eq-vqkd',), **{**BEIT_C, 'lr': 3e-3}),
    eq('eq-moco-blr5e-4', 'mocov3', **{**MOCO_C, 'blr': 5e-4}), eq('eq-moco-blr5e-3', 'mocov3', **{**MOCO_C, 'blr': 5e-3}),
    eq('eq-mscn-blr1e-3', 'mscn', blr=1e-3), eq('eq-mscn-blr1e-2', 'mscn', blr=1e-2),
    # augmentation and the rest
    eq('eq-cae-ms0.08', 'cae', **{**CAE_C, 'min_scale': 0.08}),   # CAE's official crop scale
    eq('eq-cae-ms1.0', 'cae', **{**CAE_C, 'min_scale': 1.0}),     # DropPos's laptop winner: no crop
    eq('eq-moco-ms0.08', 'mocov3', **{**MOCO_C, 'min_scale': 0.08}),
    eq('eq-moco-m0.99', 'mocov3', **{**MOCO_C, 'momentum': 0.99}),
    eq('eq-mscn-t0.1', 'mscn', temperature=0.1), eq('eq-mscn-ms0.5', 'mscn', min_scale=0.5),
    eq('eq-beit-mr0.5', 'beitv2', needs=('eq-vqkd',), **{**BEIT_C, 'mask_ratio': 0.5}),
    # shapes: fewer epochs for a bigger model at the same budget
    eq('eq-cae-deep', 'cae', **{**CAE_C, 'decoder_depth': 4, 'regressor_depth': 4}),
    eq('eq-cae-dp0.1', 'cae', **{**CAE_C, 'drop_path': 0.1}),
    # the laptop tokenizer's earlier choices (fixed sin-cos positions, fastai's decay groups), with a BEiT v2 on it
    eq('eq-vqkd-sincos', 'vqkd', needs=('eq-dp',), share=TOKENIZER_SHARE, **{**VQKD_C, 'vqkd_pos': 'sincos',
                                                                              'decay_groups': 'fastai'}),
    eq('eq-beit-vqsincos', 'beitv2', needs=('eq-vqkd-sincos',), **{**BEIT_C, 'tokenizer': 'eq-vqkd-sincos'}),
]
CONFIGS = LEGACY + EQUAL
BY_NAME = {c['name']: c for c in CONFIGS}
# the evaluations of the equal-budget rows: kNN of the mean patch token only where there are patch tokens (ViTs)
EQ_EVALS = {'knn': ['--protocol', 'knn'], 'knn_mean': ['--protocol', 'knn', '--pool', 'mean'],
            'linear': ['--protocol', 'linear']}

def is_vit(c): return c['method'] != 'mscn' and c['flags'].get('--arch', 'vit') != 'resnet18' and 'resnet18' not in c['name']
def eq_evals(c): return {k: v for k, v in EQ_EVALS.items() if k != 'knn_mean' or is_vit(c)}
def selectors(c):
    "The configs `c` names by flag (teacher, tokenizer): their flags are replaced by the encoders' paths."
    return [v for k, v in c['flags'].items() if k in ('--teacher', '--tokenizer')]

def resolved(c, quick=None):
    "`c`'s flags with its teacher/tokenizer as paths; in quick mode on `quick['items']` digits."
    flags = {k: str(WORK / v / ('encoder.safetensors' if k == '--teacher' else 'model.safetensors'))
                if k in ('--teacher', '--tokenizer') else v for k, v in c['flags'].items()}
    if quick and c['kind'] == 'pretrain': flags['--max-items'] = quick['items']
    return flags

# The recipe every config changes: the laptop recipe of the sweep's day. The winners became the laptop recipes of
# CAE, VQ-KD, BEiT v2, MoCo v3 and MSCN; their earlier ones, this sweep's base, are `--recipe laptop-v1` now.
BASE = {m: 'laptop-v1' for m in ('cae', 'vqkd', 'beitv2', 'mocov3', 'mscn')}

def pretrain_cmd(c, epochs, out, quick=None):
    "The command line that pretrains equal-budget config `c` for `epochs` into `out`: always on the selection split."
    flags = {**resolved(c, quick), '--epochs': epochs}
    return [*EXE, 'pretrain', '--method', c['method'], '--recipe', BASE.get(c['method'], 'laptop'), *flag_list(flags),
            '--data', SELECT,
            '--seed', '0', *OVERWRITE, '--quiet', '--out', str(out)]

def eval_cmd(c, nm, out, quick=None):
    "The command line of evaluation `nm` of config `c`'s encoder (or its random-init shape): on the selection split."
    d = WORK / c['name']
    ck = ['--checkpoint', 'random', *flag_list(c['flags'])] if c['kind'] == 'random' and not c.get('make') else \
        ['--checkpoint', str(d / 'encoder.safetensors')]
    few = ['--max-items', str(quick['items']), '--max-valid', str(quick['valid'])] if quick else []
    if quick and nm == 'linear': few += ['--epochs', str(quick['linear_epochs'])]
    return [*EXE, 'eval', *EQ_EVALS[nm], *ck, '--data', SELECT, *few, '--seed', '0', '--quiet', '--out', str(out)]

def train_seconds(d): return sum(float(r['seconds']) for r in read_metrics(d))

def eq_epoch_seconds(c, quick=None):
    "Seconds of one epoch of `c`'s shape on the selection split: a calibration epoch on this machine (cached)."
    key = c['method'] + ' ' + ' '.join(f"{k}={v}" for k, v in sorted(c['flags'].items()) if k not in COST_NEUTRAL)
    key += ' tokenizer' if '--tokenizer' in c['flags'] else ''
    cache_f = WORK / 'calibration-equal.json'
    cache = json.loads(cache_f.read_text()) if cache_f.exists() else {}
    if key not in cache:
        d = WORK / '_cal-equal' / str(os.getpid())                  # one folder per worker
        shutil.rmtree(d, ignore_errors=True)
        run(pretrain_cmd(c, 1, d, quick), d.with_suffix('.log'))
        secs = float(read_metrics(d)[-1]['seconds'])
        with locked(cache_f):                                       # another worker may have added its own keys
            cache = json.loads(cache_f.read_text()) if cache_f.exists() else {}
            cache.setdefault(key, secs)
            write_atomic(cache_f, json.dumps(cache, indent=1))
        shutil.rmtree(d, ignore_errors=True)
        log(f"calibrated {key}: {cache[key]:.1f} s per epoch")
    return cache[key]

def eq_pretrain(c, budget, quick=None):
    "Pretrain equal-budget config `c` (and first what it needs) with the epochs that fit its budget."
    for n in c['needs']: eq_need(BY_NAME[n], budget, quick)
    d = WORK / c['name']
    if c['kind'] != 'pretrain' or (d / 'wallclock.json').exists(): return
    plan_f = WORK / 'plans' / f"{c['name']}.json"            # outside the run folder, which pretrain owns
    if plan_f.exists(): plan = json.loads(plan_f.read_text())
    else:
        est = eq_epoch_seconds(c, quick)
        tok = next((n for k, n in c['flags'].items() if k == '--tokenizer'), None)
        spent = train_seconds(WORK / tok) if tok else 0.      # the tokenizer's seconds count in BEiT v2's budget
        avail = budget * c['share'] if c['share'] else budget - spent
        plan = dict(epochs=max(1 if quick else 2, round(avail / est)), est_epoch_seconds=est, budget=budget,
                    available=avail, tokenizer_seconds=spent)
        plan_f.parent.mkdir(parents=True, exist_ok=True)
        plan_f.write_text(json.dumps(plan))
    log(f"pretrain {c['name']}: {c['method']} {' '.join(flag_list(c['flags']))}, {plan['epochs']} epochs")
    secs = run(pretrain_cmd(c, plan['epochs'], d, quick), WORK / 'logs' / f"pretrain-{c['name']}.log")
    (d / 'wallclock.json').write_text(json.dumps(dict(seconds=secs, threads=1, epochs=plan['epochs'])))
    log(f"  done in {secs:.0f} s (training {train_seconds(d):.0f} s)")

def model_file(c):
    "The file a config that others need hands on: a teacher's encoder, a tokenizer's model."
    return WORK / c['name'] / ('model.safetensors' if c['method'] == 'vqkd' else 'encoder.safetensors')

def eq_need(c, budget, quick=None):
    """Make sure config `c`, which another config needs, is trained on this machine: wait while another worker
    trains it, else train it here (also when its record is committed but its model file is not on this machine)."""
    ready = lambda: model_file(c).exists() and (WORK / c['name'] / 'wallclock.json').exists()
    while not ready():
        if claim(c['name']):
            try:
                if not ready():
                    if (WORK / c['name'] / 'wallclock.json').exists() or (RES / 'runs' / c['name']).exists():
                        log(f"{c['name']} is needed but its model is not on this machine: training it again")
                        (WORK / c['name'] / 'wallclock.json').unlink(missing_ok=True)
                        for f in (RES / 'runs' / c['name']).glob('*'): f.unlink()
                    eq_pretrain(c, budget, quick)
            finally: release(c['name'])
        else: time.sleep(5)                                        # another worker is training it

# --- workers: several sweeps at once share WORK, each config claimed by one of them ---------------------------------
def locked(f):
    "A context manager holding an exclusive lock on `f`.lock (fcntl): read-modify-write of shared files."
    import contextlib, fcntl
    @contextlib.contextmanager
    def cm():
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f.with_name(f.name + '.lock'), 'w') as h:
            fcntl.flock(h, fcntl.LOCK_EX)
            try: yield
            finally: fcntl.flock(h, fcntl.LOCK_UN)
    return cm()

def write_atomic(f, text):
    "Write `text` to `f` through a temporary file and a rename: a reader never sees half a file."
    tmp = f.with_name(f'.{f.name}.{os.getpid()}')
    tmp.write_text(text)
    os.replace(tmp, f)

def _alive(pid):
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    except PermissionError: pass
    return True

def claim(name):
    """Claim config `name` for this process (True), unless a live worker holds it (False). A claim is the folder
    WORK/claims/NAME holding the owner's pid and host; a dead owner's claim (killed, machine restarted) is taken over."""
    d = WORK / 'claims' / name
    d.parent.mkdir(parents=True, exist_ok=True)
    me = f"{platform.node()} {os.getpid()}"
    with locked(d.parent / 'claims'):
        if d.exists():
            try: host, pid = (d / 'owner').read_text().split()
            except (OSError, ValueError): host, pid = '', '0'
            if (host, pid) == tuple(me.split()): return True
            if host == platform.node() and _alive(int(pid)): return False
            shutil.rmtree(d, ignore_errors=True)                   # a dead worker's claim
        d.mkdir()
        (d / 'owner').write_text(me)
    return True

def release(name): shutil.rmtree(WORK / 'claims' / name, ignore_errors=True)

def eq_evaluate(c, quick=None):
    d = WORK / c['name']
    if c['method'] == 'vqkd': return                     # a tokenizer: BEiT v2's rows evaluate it
    if c.get('make') and not eq_done(c) and not (d / 'encoder.safetensors').exists():
        d.mkdir(parents=True, exist_ok=True)
        c['make'](d)
    for nm, proto in eq_evals(c).items():
        f = d / f'eval-{nm}.json'
        if f.exists(): continue
        tmp = d / f'_eval-{nm}'
        secs = run(eval_cmd(c, nm, tmp, quick), WORK / 'logs' / f"eval-{c['name']}-{nm}.log")
        r = json.loads((tmp / f"eval-{proto[1]}.json").read_text())
        r['wall_seconds'] = secs
        d.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(r, indent=1))
        shutil.rmtree(tmp)
        log(f"  {c['name']} {nm}: {100 * r['metrics']['acc']:.1f}% ({secs:.0f} s)")

def record(c, fn):
    "Config `c`'s file `fn`: in WORK where this machine ran it, else its committed copy in RES/runs (another machine's)."
    f = WORK / c['name'] / fn
    return f if f.exists() or RES == WORK else RES / 'runs' / c['name'] / fn

def eq_done(c):
    if c['method'] == 'vqkd': return record(c, 'wallclock.json').exists()
    return all(record(c, f'eval-{nm}.json').exists() for nm in eq_evals(c))

def eq_row(c, copy=True):
    d = WORK / c['name']
    r = dict(name=c['name'], kind=c['kind'], method=c['method'], flags=c['flags'])
    if c.get('make'): r['note'] = c['make'].__doc__.split(':')[0].split(' (')[0]
    if c['kind'] == 'pretrain':
        if not record(c, 'wallclock.json').exists(): return None
        w, m = json.loads(record(c, 'wallclock.json').read_text()), read_metrics(record(c, 'metrics.csv').parent)
        tok = next((n for k, n in c['flags'].items() if k == '--tokenizer'), None)
        r.update(epochs=w['epochs'], pretrain_seconds=round(w['seconds'], 1), train_seconds=round(sum(float(x['seconds']) for x in m), 1),
                 tokenizer_seconds=round(eq_row(BY_NAME[tok], copy=False)['train_seconds'], 1) if tok else 0.,
                 valid_loss_final=float(m[-1]['valid_loss']) if m and m[-1].get('valid_loss') else None)
        plan_f = WORK / 'plans' / f"{c['name']}.json"
        plan_f = plan_f if plan_f.exists() else RES / 'runs' / c['name'] / 'plan.json'
        if plan_f.exists():   # the seconds its plan made available, and the share of them its training took
            r['available_seconds'] = round(json.loads(plan_f.read_text())['available'], 1)
            r['budget_used'] = round(r['train_seconds'] / r['available_seconds'], 3)
    if copy and (d / 'wallclock.json').exists():   # this machine's run: its record, committed (the sweep resumes from it)
        dst = RES / 'runs' / c['name']
        dst.mkdir(parents=True, exist_ok=True)
        for fn in ('metrics.csv', 'config.json', 'wallclock.json', *(f'eval-{nm}.json' for nm in eq_evals(c))):
            if (d / fn).exists(): shutil.copy(d / fn, dst / fn)
        shutil.copy(WORK / 'plans' / f"{c['name']}.json", dst / 'plan.json')
    elif copy and c['kind'] == 'random':
        dst = RES / 'runs' / c['name']
        for nm in eq_evals(c):
            if (d / f'eval-{nm}.json').exists():
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copy(d / f'eval-{nm}.json', dst / f'eval-{nm}.json')
    for nm in eq_evals(c):
        f = record(c, f'eval-{nm}.json')
        if f.exists():
            e = json.loads(f.read_text())
            r[nm], r[f'{nm}_seconds'] = e['metrics']['acc'], e['seconds']
    if r.get('knn') is not None and r.get('linear') is not None: r['score'] = (r['knn'] + r['linear']) / 2
    return r

def eq_table(budget, quick=None, name='equal_budget'):
    "The equal-budget table: every finished config, the selected (highest-score) config of each method in bold."
    rows = [r for r in (eq_row(c, copy=not quick) for c in EQUAL) if r is not None]
    if not any(r.get('score') is not None or 'train_seconds' in r for r in rows):
        return print(f"no finished equal-budget config in {WORK}: no table written")
    best = {}
    for r in rows:
        if r['kind'] == 'pretrain' and r.get('score') is not None and r['score'] > best.get(r['method'], (-1, ''))[0]:
            best[r['method']] = (r['score'], r['name'])
    for r in rows: r['selected'] = best.get(r['method'], (0, ''))[1] == r['name']
    pct = lambda v: '–' if v is None else f"{100 * v:.1f}"
    md = [f"{SELECT}: pretrain on 3,000 of mnist5k's training digits, select on the other 1,000 (never on mnist5k's "
          f"validation digits); budget {budget:g} s of training per method on one thread of {cpu()}"
          + (f" (--quick: {quick['items']} digits)" if quick else '') + "; seed 0; kNN k = 20 (cosine); linear probe "
          "[CLS]; score = mean of kNN [CLS] and linear; **bold**: the selected config of each method; budget used = "
          "its training seconds over those its plan made available (far from 100%: its shape's calibration epoch ran "
          "under another load than its training; configs of one shape share a calibration, hence their epochs); base "
          "recipe: the laptop recipe of the sweep's day (DropPos, MAE: `--recipe laptop`; the others: `--recipe "
          "laptop-v1`, since the winners became their laptop recipes)", '',
          '| config | method | changes from its base recipe | epochs | training s (tokenizer + own) | budget used (%) '
          '| kNN cls (%) | kNN mean (%) | linear cls (%) | score (%) |', '|' + '---|' * 10]
    for r in rows:
        ch = r.get('note') or ' '.join(f"{k} {v}" for k, v in r['flags'].items()) or 'base recipe'
        nm = f"**{r['name']}**" if r['selected'] else r['name']
        tr = (f"{r['tokenizer_seconds']:.0f} + {r['train_seconds']:.0f}" if r.get('tokenizer_seconds')
              else f"{r['train_seconds']:.0f}") if 'train_seconds' in r else '–'
        md.append(f"| {nm} | {r['method']} | {ch} | {r.get('epochs', '–')} | {tr} | {pct(r.get('budget_used'))} | "
                  f"{pct(r.get('knn'))} | "
                  f"{pct(r.get('knn_mean'))} | {pct(r.get('linear'))} | {pct(r.get('score'))} |")
    out = RES if not quick else WORK
    out.mkdir(parents=True, exist_ok=True)
    with locked(out / name):                                      # workers rebuild the table after each config
        write_atomic(out / f'{name}.json', json.dumps(dict(data=SELECT, seed=0, threads=1, budget=budget, cpu=cpu(),
                                                          machine=platform.platform(), quick=quick, rows=rows), indent=1))
        write_atomic(out / f'{name}.md', '\n'.join(md) + '\n')
    print('\n'.join(md))

def with_needs(names):
    "The configs `names` and, before them, every config they need."
    out = []
    def add(n):
        for m in BY_NAME[n]['needs']: add(m)
        if n not in out: out.append(n)
    for n in names: add(n)
    return out

def eq_todo(methods=None, only=None, quick=False):
    "The equal-budget configs to run, in order: filtered by method or name (quick: the centres and references)."
    cs = [c for c in EQUAL if (not methods or c['method'] in methods or c['kind'] == 'random')
          and (not only or c['name'] in only) and (not quick or c['kind'] == 'random' or c['name'] in QUICK_CONFIGS)]
    return [BY_NAME[n] for n in with_needs([c['name'] for c in cs])]

QUICK_CONFIGS = ('eq-dp', 'eq-mae', 'eq-cae-c', 'eq-vqkd', 'eq-beit-c', 'eq-moco-c', 'eq-mscn-c')
METHODS = ('droppos', 'mae', 'cae', 'beitv2', 'mocov3', 'mscn')

def workers(args):
    """Run `args.workers` sweeps at once (one per core, each on one thread), sharing WORK: each config is claimed by
    one of them; a config that needs another (BEiT v2 its tokenizer) waits for it. Then the table."""
    argv = [a for a in sys.argv[1:]]
    i = argv.index('--workers'); del argv[i:i + 2]
    if args.quick and not args.out: argv += ['--out', str(WORK)]   # one temporary folder for all
    procs = []
    for k in range(args.workers):
        procs.append(subprocess.Popen([sys.executable, __file__, *argv]))
        time.sleep(2)                                               # claims in order: the first takes the first config
    rc = max(p.wait() for p in procs)
    log(f"{args.workers} workers done (exit {rc})")
    if rc: sys.exit(rc)
    eq_table(args.budget if args.budget is not None else (QUICK['budget'] if args.quick else BUDGET),
             dict(QUICK) if args.quick else None)

def main_equal(args):
    global WORK, RES
    quick = dict(QUICK) if args.quick else None
    budget = args.budget if args.budget is not None else (quick['budget'] if quick else BUDGET)
    tmp_out = None
    if args.out: WORK = RES = Path(args.out).resolve()
    elif quick: WORK = RES = tmp_out = Path(tempfile.mkdtemp(prefix='sweep-quick-'))
    todo = eq_todo(args.methods, args.only, quick=bool(quick))
    if args.list:
        for c in todo:
            plan = WORK / 'plans' / f"{c['name']}.json"
            ep = json.loads(plan.read_text())['epochs'] if plan.exists() else '?'
            print(f"{c['name']:20s} {c['method']:12s} epochs {ep!s:4s} {'done' if eq_done(c) else '':5s} "
                  + ' '.join(flag_list(c['flags'])))
        return
    if not args.table_only:
        fail_f = WORK / 'failed-equal.json'
        failed = set(json.loads(fail_f.read_text())) if fail_f.exists() else set()
        t0 = time.perf_counter()
        if args.workers > 1: return workers(args)
        for c in todo:
            if eq_done(c) or c['name'] in failed: continue
            if not claim(c['name']): continue                      # another worker runs it
            try:
                eq_pretrain(c, budget, quick)
                eq_evaluate(c, quick)
            except Exception as e:
                log(f"FAILED {c['name']}: {e}")
                with locked(fail_f):
                    failed = set(json.loads(fail_f.read_text())) if fail_f.exists() else set()
                    failed.add(c['name'])
                    write_atomic(fail_f, json.dumps(sorted(failed)))
            finally: release(c['name'])
            eq_table(budget, quick)
        log(f"equal-budget sweep: {len(todo)} configs in {time.perf_counter() - t0:.0f} s"
            + (f", {len(failed)} failed: {', '.join(sorted(failed))}" if failed else ''))
    eq_table(budget, quick)
    failed_any = (WORK / 'failed-equal.json').exists()
    if tmp_out and not args.keep and not failed_any: shutil.rmtree(tmp_out)
    elif quick: print(f"quick sweep kept in {WORK}")
    if quick and failed_any: sys.exit(1)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--budget', type=float, help="seconds of training per pretraining, one thread (equal-budget: "
                   f"{BUDGET:g}, --quick {QUICK['budget']:g}; --legacy: 100)")
    p.add_argument('--methods', nargs='+', choices=METHODS, help="equal-budget sweep: only these methods' configs")
    p.add_argument('--only', nargs='+', help="run only these configs")
    p.add_argument('--quick', action='store_true', help="check the pipeline: centres only, a tiny budget, few digits, "
                   "a temporary --out")
    p.add_argument('--out', help="the equal-budget sweep's work and results folder (default: bench/out/sweep and "
                   "bench/results/sweep; --quick: a temporary folder)")
    p.add_argument('--keep', action='store_true', help="--quick: keep the temporary folder")
    p.add_argument('--workers', type=int, default=1, help="equal-budget sweep: run this many configs at once (one "
                   "thread each; at most one per core, or the budget's seconds buy fewer epochs)")
    p.add_argument('--legacy', action='store_true', help="the first sweep (DropPos and MAE, issue 11)")
    p.add_argument('--table-only', action='store_true', help="run nothing: rebuild the tables from the finished configs")
    p.add_argument('--list', action='store_true')
    p.add_argument('--probes', action='store_true', help="run the position-probe settings PROBES on --probe-on and --probe-ref")
    p.add_argument('--probe-on', default='dp-c'); p.add_argument('--probe-ref', default='random-d4w192')
    p.add_argument('--probe-idx', type=int, nargs='+', help="run only these PROBES (indices)")
    args = p.parse_args()
    if not (args.legacy or args.probes):
        if str(LIB) not in ('', '.'): sys.exit("the equal-budget sweep runs the working tree's library: unset DROPPOS_LIB")
        main_equal(args)
        sys.exit()
    args.budget = 100. if args.budget is None else args.budget
    if args.list:
        for c in LEGACY: print(c['name'], 'done' if (WORK / c['name'] / 'eval-linear.json').exists() else '', short(c))
        sys.exit()
    if args.probes:
        pre, ref = (next(c for c in LEGACY if c['name'] == n) for n in (args.probe_on, args.probe_ref))
        for i, (drop, epochs, lr, items) in enumerate(PROBES):
            if not args.table_only and (args.probe_idx is None or i in args.probe_idx):
                for c in (pre, ref): probe(c, drop, epochs, lr, items)
            probe_table(pre, ref)
        sys.exit()
    fail_f = WORK / 'failed.json'
    failed = set(json.loads(fail_f.read_text())) if fail_f.exists() else set()
    if not args.table_only:
        todo = [c for c in LEGACY if (not args.only or c['name'] in args.only) and not (WORK / c['name'] / 'eval-linear.json').exists()
                and c['name'] not in failed]
        if todo:
            c = todo[0]
            try:
                if c['kind'] == 'pretrain': pretrain(c, args.budget)
                evaluate(c)
            except Exception as e: log(f"FAILED {c['name']}: {e}"); failed.add(c['name']); fail_f.write_text(json.dumps(sorted(failed)))
            table()
            # start again from the file: configs added to LEGACY while the sweep runs are picked up, finished ones skipped
            os.execv(sys.executable, [sys.executable, *sys.argv])
    table()
