"""MSCN's path at laptop scale: train the laptop recipe (`--recipe laptop-v1` since the equal-budget sweep changed the
laptop one: crops 0.2-1, 4 epochs; the recipe of the stored results) with the first k steps of `mscn.MSCN_PATH` on, for every k
(0: no masks and no augmentation at all, the floor; len(MSCN_PATH): the full recipe), over N seeds, and measure each
encoder with kNN and a linear probe on mnist5k, next to the article's ImageNet linear-probe number for that step.

    python bench/mscn_ablation.py                            # every step, 2 seeds, the laptop recipe (~11 x 2 x 4 min on 2 CPU cores)
    python bench/mscn_ablation.py --steps 0 4 10 --seeds 0   # some steps only
    python bench/mscn_ablation.py --seeds 1 --threads 1 &    # seeds in parallel processes share OUT
    python bench/mscn_ablation.py --quick --out /tmp/mscn_q  # 1 epoch on 256 images, steps 0-1, one seed: checks the script

Resumable: each finished run (step, seed) is stored in OUT/results.json as soon as it ends and skipped when the
script runs again with the same settings (--overwrite measures everything again). Writes OUT/results.json and
OUT/results.md (OUT: bench/results/mscn_ablation), and each run's first-layer filters in OUT/conv1/.

Each pretraining goes through the one training path, `train.pretrain(train.pretrain_settings(...))`, into a run folder
OUT/runs/K-SEED (lock, provenance, metrics.csv, model.safetensors; not committed), with the step's settings
(`mscn.path_config`) and fp32, as before it went through that path; `build` makes the same Learner without training
only to keep its initial first-layer filters.

The linear probe is `evaluation.linear_probe_learner` with its BatchNorm's running statistics as a cumulative average
(momentum None): ResNet features vary little (std ~1e-3), and with the default momentum 0.1 the running variance is
still near its initial 1 after the probe's few steps, which leaves the probe at chance (measured: 10% -> 82% on the
same features).
"""
import argparse, json, os, platform, time
import pandas as pd
from pathlib import Path
import torch
from droppos_nb.core import set_seed
from droppos_nb.data import get_dls
from droppos_nb.learner import pretrain_learner
from droppos_nb.evaluation import eval_data, knn_eval, linear_probe_learner
from droppos_nb.registry import get_method, load_model
from droppos_nb.runs import read_config
from droppos_nb.train import pretrain, pretrain_settings
from droppos_nb.mscn import MSCN_PATH, PATH_OFF, path_config
# the recipe of the stored results (bench/results/mscn_ablation): the laptop recipe before the equal-budget sweep
from droppos_nb.mscn import MSCN_LAPTOP_V1 as MSCN_LAPTOP

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--steps', type=int, nargs='*', default=None, help=f"path steps k to run (default: all, 0..{len(MSCN_PATH)})")
p.add_argument('--seeds', type=int, nargs='*', default=[0, 1])
p.add_argument('--epochs', type=int, default=None, help="default: the laptop-v1 recipe's (4)")
p.add_argument('--max-items', type=int, default=None, help="training images (default: all of mnist5k's 4,000)")
p.add_argument('--eval-items', type=int, default=None, help="training images of the probes (default: all)")
p.add_argument('--probe-epochs', type=int, default=30)
p.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's)")
p.add_argument('--quick', action='store_true', help="1 epoch on 256 images, steps 0 and 1, seed 0, small probes: checks the script")
p.add_argument('--out', default='bench/results/mscn_ablation')
p.add_argument('--overwrite', action='store_true', help="measure finished runs again")
p.add_argument('--rebuild-init', action='store_true', help="write the initial first-layer filters of stored runs that lack them, then stop")
args = p.parse_args()
if args.quick:
    args.steps, args.seeds, args.epochs = args.steps or [0, 1], [0], args.epochs or 1
    args.max_items, args.eval_items, args.probe_epochs = args.max_items or 256, args.eval_items or 300, 3
steps = list(range(len(MSCN_PATH) + 1)) if args.steps is None else args.steps
bad = [k for k in steps if not 0 <= k <= len(MSCN_PATH)]
if bad: p.error(f"--steps {bad}: each step must be in 0..{len(MSCN_PATH)}")
if args.threads: torch.set_num_threads(args.threads)
out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
spec = get_method('mscn')
bs = MSCN_LAPTOP['bs']
if args.max_items is not None and args.max_items < bs: bs = args.max_items
# the settings that define a run: a stored result is reused only when they match
setup = dict(epochs=args.epochs or MSCN_LAPTOP['epochs'], max_items=args.max_items, eval_items=args.eval_items,
             probe_epochs=args.probe_epochs, bs=bs, data='mnist5k')

def step_name(k): return 'nothing (two identical views)' if k == 0 else MSCN_PATH[k - 1][0]

def linear_acc(enc, data, epochs, seed):
    set_seed(seed)
    learn = linear_probe_learner(enc, data, seed=seed)
    learn.model[0].momentum = None                       # cumulative BN statistics (see the docstring)
    learn.fit_warmup_cos(epochs, 1e-2, warmup_epochs=0.1 * epochs, wd=0.)
    return float(learn.validate()[1])

def save_conv1(enc, k, seed, when=None):
    "Keep the encoder's first-layer filters (OUT/conv1/K-SEED[-init].safetensors, float16): the tutorial draws them, and what training changed, with and without masks."
    from safetensors.torch import save_file
    w = next(m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)).weight.detach().cpu().half().contiguous()
    (out / 'conv1').mkdir(exist_ok=True); save_file({'weight': w}, str(out / 'conv1' / f"{k}-{seed}{'-' + when if when else ''}.safetensors"))

def build(k, seed):
    "The settings of step `k` and its Learner before training (the same random init for every step of a seed)."
    cfg = path_config(k, MSCN_LAPTOP)
    set_seed(seed)
    dls = get_dls('mnist5k', img_size=cfg['img_size'], bs=bs, seed=seed, max_items=args.max_items, device='cpu',
                  views=spec.views, scale=(cfg['min_scale'], 1.))
    return cfg, pretrain_learner(dls, 'mscn', csv=None, seed=seed, recipe='laptop-v1', **spec.model_kwargs(cfg))

def run(k, seed):
    cfg, learn = build(k, seed)                          # its initial weights only: `pretrain` draws the same ones
    save_conv1(learn.model.encoder, k, seed, 'init')
    folder = out / 'runs' / f"{k}-{seed}"
    settings = pretrain_settings(**{**cfg, 'method': 'mscn', 'data': 'mnist5k', 'seed': seed, 'epochs': setup['epochs'],
                                    'bs': bs, 'max_items': args.max_items, 'precision': 'fp32'})
    settings.out, settings.overwrite, settings.quiet, settings.silent = str(folder), True, True, True
    pretrain(settings)                                   # the one training path: a run folder per step and seed
    secs = read_config(folder)['train_seconds']
    model = load_model(folder / 'model.safetensors').eval()
    enc = model.encoder
    last = pd.read_csv(folder / 'metrics.csv').iloc[-1]
    save_conv1(enc, k, seed)
    data = eval_data('mnist5k', cfg['img_size'], max_items=args.eval_items)
    return dict(step=k, name=step_name(k), seed=seed, knn=knn_eval(enc, data)['acc'], linear=linear_acc(enc, data, args.probe_epochs, seed),
                train_loss=float(last['train_loss']), train_seconds=round(secs, 1),
                article=MSCN_PATH[k - 1][2] if k else None, settings={n: cfg[n] for n in PATH_OFF})

path = out / 'results.json'
res = json.loads(path.read_text()) if path.exists() and not args.overwrite else {}
if res.get('setup') != setup: res = dict(setup=setup, runs={})     # other settings: start again
res.update(machine=platform.platform(), torch=torch.__version__, recipe={k: v for k, v in MSCN_LAPTOP.items()})

def save():
    "Write the table, merged with the runs other processes stored meanwhile (one process per seed can share OUT)."
    import fcntl
    with open(out / '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disk = json.loads(path.read_text()) if path.exists() else {}
        if disk.get('setup') == setup:
            res['runs'] = disk['runs'] | res['runs']
            res['floors'] = disk.get('floors', {}) | res.get('floors', {})
        tmp = Path(str(path) + '.tmp'); tmp.write_text(json.dumps(res, indent=2, default=str)); os.replace(tmp, path)
    rows = ["| k | step | article linear % (ImageNet, ResNet-50) | kNN % | linear % | seeds |", "|---|---|---|---|---|---|"]
    for k in range(len(MSCN_PATH) + 1):
        rs = [r for r in res['runs'].values() if r['step'] == k]
        if not rs: continue
        m = lambda key: sum(r[key] for r in rs) / len(rs) * 100
        sd = lambda key: (sum((r[key] * 100 - m(key)) ** 2 for r in rs) / max(len(rs) - 1, 1)) ** .5
        art = MSCN_PATH[k - 1][2] if k else None
        rows.append(f"| {k} | {step_name(k)} | {'-' if art is None else art} | {m('knn'):.1f} ± {sd('knn'):.1f} | "
                    f"{m('linear'):.1f} ± {sd('linear'):.1f} | {len(rs)} |")
    for name in sorted({n for f in res.get('floors', {}).values() for n in f}):
        fs = [f[name] for f in res['floors'].values() if name in f]
        mean = lambda key: sum(f[key] for f in fs) / len(fs) * 100
        rows.append(f"| floor | {name} | - | {mean('knn'):.1f} | {mean('linear'):.1f} | {len(fs)} |")
    (out / 'results.md').write_text(f"# MSCN's path at laptop scale (mnist5k, {setup['epochs']} epochs, ResNet-18 at 32 px)\n\n"
                                    "Each step adds one change to the previous row (see `mscn.MSCN_PATH`); mean ± std over seeds.\n\n"
                                    + '\n'.join(rows) + '\n')

def random_floors(seed):
    "kNN and linear probe of a random-init ResNet of the recipe, with timm's zero-initialised last BN of each block (every image looks alike) and without it."
    import timm
    data = eval_data('mnist5k', MSCN_LAPTOP['img_size'], max_items=args.eval_items)
    res = {}
    for name, zero in (('random ResNet-18', True), ('random ResNet-18, zero_init_last=False', False)):
        set_seed(seed)
        enc = timm.create_model(MSCN_LAPTOP['arch'], num_classes=0, zero_init_last=zero)
        res[name] = dict(knn=knn_eval(enc, data)['acc'], linear=linear_acc(enc, data, args.probe_epochs, seed))
    return res

if args.rebuild_init:       # runs stored before the script kept their initial filters: rebuild them (build() runs the same calls)
    for r in res['runs'].values():
        f = out / 'conv1' / f"{r['step']}-{r['seed']}-init.safetensors"
        if not f.exists(): save_conv1(build(r['step'], r['seed'])[1].model.encoder, r['step'], r['seed'], 'init'); print('wrote', f)
    raise SystemExit

for k in steps:
    for seed in args.seeds:
        key = f"{k}-{seed}"
        if key in res['runs']: print(f"skip step {k} ({step_name(k)}), seed {seed}: done"); continue
        r = run(k, seed)
        res['runs'][key] = r; save()
        print(f"step {k} ({r['name']}), seed {seed}: kNN {r['knn']:.3f}, linear {r['linear']:.3f}, {r['train_seconds']} s", flush=True)
for seed in args.seeds:                    # the floors of the table, measured with the same probes
    if str(seed) not in res.setdefault('floors', {}): res['floors'][str(seed)] = random_floors(seed); save()
save()
print(f"wrote {path} and {out / 'results.md'}")
