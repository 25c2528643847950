"""The seed articles' comparisons with MoCo v3 (issue 14), measured at small scale on the built-in digits.

    python bench/comparisons.py                    # seeds 0 1 2 on the CPU (resumable: finished jobs are kept)
    python bench/comparisons.py --seeds 0 --quick  # a smoke test of the pipeline (minutes), measures nothing
    python bench/comparisons.py --attention-only   # only the attention table and figure, from finished runs

1. Position-embedding ablation (DropPos's motivation, MoCo v3's table): the same ViT with a fixed 2D sin-cos, a
   learned or no position embedding, (a) trained supervised from random init (the fine-tune protocol of
   bench/results.py, with `--pos-embed`, which keeps a fixed or absent embedding fixed during fine-tuning) and (b)
   pretrained with MoCo v3's laptop recipe of the stored results (`--recipe laptop-v1`, 16 epochs, since the
   equal-budget sweep resized the laptop one; `--pos-embed`) and measured with the linear probe and kNN.
2. Attention, measured (CAE's comparison): the share of the head-mean [CLS] attention of the last block that falls
   on the digit's strokes (against the strokes' area share, the level of evenly spread attention) and its normalised
   entropy, on 512 validation digits, for a random encoder, the supervised one and the MoCo v3, CAE, MAE and DropPos encoders of
   bench/results.py (its --work folder: run it first; missing rows are left out and named), with a figure.

Every job is a `droppos_nb` command; its output file is its record, so a cut-short run continues where it stopped.
The MoCo v3 sin-cos runs are bench/results.py's MoCo v3 runs (the same command): whichever script runs first makes
them. Results: bench/results/comparisons/results.json, results.md, attention.png.
"""
import argparse, json, os, statistics, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
p.add_argument('--jobs', type=int, default=2)
p.add_argument('--quick', action='store_true')
p.add_argument('--attention-only', action='store_true')
p.add_argument('--results-work', default='bench/out/small_scale', help="bench/results.py's --work folder (its encoders)")
p.add_argument('--work', default='bench/out/comparisons')
p.add_argument('--out', default='bench/results/comparisons')
args = p.parse_args()
ROOT = Path(__file__).resolve().parents[1]
WORK, RWORK, OUT = (ROOT / args.work).resolve(), (ROOT / args.results_work).resolve(), (ROOT / args.out).resolve()
if args.quick: WORK, RWORK, OUT = WORK / 'quick', WORK / 'quick_results', OUT.with_name(OUT.name + '_quick')
# DROPPOS_LIB=DIR runs a frozen copy of the library (as bench/results.py does), so the working tree can change meanwhile
_script, LIB = Path(sys.executable).with_name('droppos_nb'), os.environ.get('DROPPOS_LIB')
EXE = [str(_script)] if _script.exists() and not LIB else [sys.executable, '-m', 'droppos_nb.cli']
if LIB: sys.path.insert(0, str(Path(LIB).resolve()))
THREADS = max(1, (os.cpu_count() or 2) // args.jobs)
KINDS = ('sincos', 'learned', 'none')
from droppos_nb.registry import get_method
R = get_method('droppos').recipe('laptop')
ARCH = [a for k in ('arch', 'depth', 'embed_dim', 'num_heads', 'img_size', 'patch_size') if R.get(k) is not None
        for a in (f"--{k.replace('_', '-')}", str(R[k]))]
FINETUNE = ['--precision', 'auto', '--epochs', '12', '--lr', '2e-3', '--layer-decay', '1']     # bench/results.py's protocol
QUICK_PRE = ['--epochs', '1', '--max-items', '256', '--bs', '64'] if args.quick else []
QUICK_EVAL = ['--epochs', '1', '--max-items', '512', '--max-valid', '256'] if args.quick else []
# MoCo v3 (arXiv 2104.02057), ViT-B linear probe with each position embedding, as its paper reports them
PAPER = dict(sincos=76.5, learned=76.1, none=74.9)

def run(cmd, log):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), MPLBACKEND='Agg', PYTHONWARNINGS='ignore')
    if LIB: env['PYTHONPATH'] = os.pathsep.join([str(Path(LIB).resolve()), env.get('PYTHONPATH', '')])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, 'w') as f: r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=Path(LIB).resolve() if LIB else ROOT)
    if r.returncode: raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}\n{log.read_text()[-1500:]}")

def moco_dir(kind, s): return (RWORK / 'moco_v3' / f's{s}') if kind == 'sincos' else WORK / f'mocov3_{kind}' / f's{s}'

def supervised(kind, s):
    d = WORK / f'supervised_{kind}' / f's{s}'
    if not (d / 'eval-finetune.json').exists():
        run([*EXE, 'eval', '--protocol', 'finetune', '--checkpoint', 'random', *ARCH, '--pos-embed', kind, '--seed', str(s),
             '--out', str(d), '--quiet', *(['--overwrite'] if d.exists() else []), *FINETUNE, *QUICK_EVAL], WORK / 'logs' / f'sup-{kind}-s{s}.log')

def mocov3(kind, s):
    d = moco_dir(kind, s)
    if not (d / 'encoder.safetensors').exists():
        if (d / 'checkpoint.pt').exists(): run([*EXE, 'pretrain', '--resume', str(d), '--quiet'], WORK / 'logs' / f'moco-{kind}-s{s}.resumed.log')
        else:
            run([*EXE, 'pretrain', '--method', 'mocov3', '--recipe', 'laptop-v1', '--data', 'mnist5k', '--seed', str(s), '--out', str(d), '--quiet',
                 *([] if kind == 'sincos' else ['--pos-embed', kind]), *(['--overwrite'] if d.exists() else []), *QUICK_PRE],
                WORK / 'logs' / f'moco-{kind}-s{s}.log')
    for protocol in ('linear', 'knn'):
        if not (d / f'eval-{protocol}.json').exists():
            run([*EXE, 'eval', '--protocol', protocol, '--checkpoint', str(d / 'encoder.safetensors'), '--seed', str(s), '--out', str(d),
                 '--quiet', *QUICK_EVAL], WORK / 'logs' / f'moco-{kind}-{protocol}-s{s}.log')

def acc(f):
    return json.loads(f.read_text())['metrics']['acc'] if f.exists() else None

if not args.attention_only:
    jobs = [(supervised, k, s) for s in args.seeds for k in KINDS] + [(mocov3, k, s) for s in args.seeds for k in KINDS]
    t = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as ex:
        futs = {ex.submit(fn, k, s): (fn.__name__, k, s) for fn, k, s in jobs}
        for f, n in futs.items():
            try: f.result(); print(f"{time.perf_counter() - t:6.0f} s  done: {' '.join(map(str, n))}", flush=True)
            except Exception as e: print(f"FAILED: {n}: {e}", flush=True)

def summary(vals):
    vals = [v for v in vals if v is not None]
    return dict(mean=statistics.fmean(vals), std=statistics.stdev(vals) if len(vals) > 1 else 0., n=len(vals)) if vals else None

ablation = {k: dict(supervised_finetune={str(s): acc(WORK / f'supervised_{k}' / f's{s}' / 'eval-finetune.json') for s in args.seeds},
                    mocov3_linear={str(s): acc(moco_dir(k, s) / 'eval-linear.json') for s in args.seeds},
                    mocov3_knn={str(s): acc(moco_dir(k, s) / 'eval-knn.json') for s in args.seeds}) for k in KINDS}

# attention, measured on the encoders that exist
import torch
from droppos_nb.evaluation import eval_data, normalize_images, load_eval_encoder
from droppos_nb.viz import encoder_attention_summary, plot_attention_comparison
torch.set_num_threads(os.cpu_count() or 2)
data = eval_data('mnist5k', R['img_size'], max_valid=512)
imgs = normalize_images(data.valid_x, 'cpu')
ENCODERS = {'random init': None, 'supervised': 'supervised', 'MoCo v3': 'moco_v3', 'CAE': 'cae', 'MAE': 'mae', 'DropPos': 'droppos'}
attention, missing, shown = {}, [], {}
for name, slug in ENCODERS.items():
    per = {}
    for s in args.seeds:
        ck = ('random' if slug is None else RWORK / 'random_init' / f's{s}' / 'encoder-finetuned.safetensors' if slug == 'supervised'
              else RWORK / slug / f's{s}' / 'encoder.safetensors')
        if ck != 'random' and not ck.exists(): missing.append(f"{name} seed {s}"); continue
        kw = dict(arch=R['arch'], depth=R['depth'], img_size=R['img_size'], patch_size=R['patch_size']) if ck == 'random' else {}
        enc = load_eval_encoder(ck, seed=s, device='cpu', **kw).eval()
        per[str(s)] = encoder_attention_summary(enc, imgs)
        if s == args.seeds[0]: shown[name] = enc
    if per: attention[name] = per
att_summary = {n: {k: summary([v[k] for v in per.values()]) for k in ('object_share', 'area_share', 'entropy')} for n, per in attention.items()}
OUT.mkdir(parents=True, exist_ok=True)
if shown:
    fig = plot_attention_comparison(shown, imgs, n=8, size=1.1)
    fig.savefig(OUT / 'attention.png', dpi=110, bbox_inches='tight')
res = dict(seeds=args.seeds, quick=args.quick, finetune=' '.join(FINETUNE), encoder=' '.join(ARCH), paper_linear_vit_b=PAPER,
           ablation=ablation, ablation_summary={k: {c: summary(list(v.values())) for c, v in ablation[k].items()} for k in KINDS},
           attention=attention, attention_summary=att_summary, missing=missing, date=time.strftime('%Y-%m-%d'))
(OUT / 'results.json').write_text(json.dumps(res, indent=1))

def m(sm, k=100):
    if sm is None: return '–'
    d = 1 if k == 100 else 3
    return f"{k * sm['mean']:.{d}f} ± {k * sm['std']:.{d}f}" + (f" (n={sm['n']})" if sm['n'] < len(args.seeds) else '')
md = [f"mnist5k, seeds {', '.join(map(str, args.seeds))}{' (QUICK: not a measurement)' if args.quick else ''}; encoder `{' '.join(ARCH)}`; "
      f"supervised = fine-tune `{' '.join(FINETUNE)}` from random init", '',
      '| position embedding | supervised, fine-tune (%) | MoCo v3, linear (%) | MoCo v3, kNN (%) | MoCo v3 paper, ViT-B linear (%) |', '|---|---|---|---|---|']
for k in KINDS:
    sm = res['ablation_summary'][k]
    md.append(f"| {k} | {m(sm['supervised_finetune'])} | {m(sm['mocov3_linear'])} | {m(sm['mocov3_knn'])} | {PAPER[k]} |")
md += ['', '| encoder | [CLS] attention on the strokes (%) | strokes\' area (%) | attention entropy (1 = even) |', '|---|---|---|---|']
for n, sm in att_summary.items():
    md.append(f"| {n} | {m(sm['object_share'])} | {m(sm['area_share'])} | {m(sm['entropy'], 1)} |")
if missing: md += ['', f"not measured (no encoder yet; run bench/results.py): {', '.join(missing)}"]
(OUT / 'results.md').write_text('\n'.join(md) + '\n')
print('\n'.join(md))
