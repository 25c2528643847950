"""Every method's equal-budget recipe timed side by side: images per second, seconds per epoch and per run.

    OMP_NUM_THREADS=1 python bench/method_costs.py                 # every method, the recipes' precision (auto)
    OMP_NUM_THREADS=1 python bench/method_costs.py --size          # ... and the epochs that give each run one budget
    python bench/method_costs.py --methods droppos,mae --precision fp32 --steps 4 --recipe laptop

`--recipe equal` (the default) is the recipe of the results table (bench/results.py): the equal-budget sweep's pick
(bench/results/sweep/equal_budget.md) of each method, trained for the epochs that cost one budget, which this script
measures: the budget is BUDGET seconds of training on one quiet thread of the machine the recipes were sized on; a
VQ-KD tokenizer gets a third of it and BEiT v2 the rest (the sweep's split), every other method all of it. `--size`
prints the epochs that would make each run cost the budget on this machine; the recipes' epochs come from such a run
(its table's last column says how close each run is).

Each method trains through the real fastai Learner (`learner.pretrain_learner`, the recipe's model, batch size,
optimiser, views and precision: `auto` gives bf16 where the CPU runs it natively, else fp32) on the same data
(mnist5k, 32 px, the same seed). After `--warmup` steps, `--steps` training steps are timed (data loading included,
no validation); seconds per epoch = seconds per step x the recipe's steps per epoch on the full training split, and
a run's minutes = that x the recipe's epochs. VQ-KD distils the stored DropPos encoder (`runs/droppos-mnist5k`, a
ViT-Tiny of the laptop shape; a random one of that shape, in the temporary folder, where it is missing: a teacher's
cost does not depend on its weights); BEiT v2 reads its targets from an untrained VQ-KD of the same recipe (the same
reason). Writes `bench/results/method_costs/` (JSON, CSV, markdown).
"""
import argparse, csv, json, os, platform, tempfile, time
from pathlib import Path
import torch
from fastai.callback.core import Callback, CancelFitException
from droppos_nb.core import set_seed
from droppos_nb.data import get_dls
from droppos_nb.registry import get_method, method_names
from droppos_nb.learner import pretrain_learner, scaled_lr
from droppos_nb.scale import precision_callbacks, choose_precision, cpu_name

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / 'bench' / 'results' / 'method_costs'
TEACHER = ROOT / 'runs' / 'droppos-mnist5k' / 'encoder.safetensors'


class Clock(Callback):
    "Time `steps` training steps after `warmup` steps, then stop the fit."
    order = 100
    def __init__(self, warmup:int, steps:int): self.warmup, self.steps, self.seconds = warmup, steps, None
    def before_batch(self):
        if self.training and self.iter == self.warmup: self.t = time.perf_counter()
    def after_batch(self):
        if self.training and self.iter == self.warmup + self.steps - 1:
            self.seconds = time.perf_counter() - self.t
            raise CancelFitException


def teacher() -> str:
    "The stored DropPos encoder, or a random ViT-Tiny of the laptop shape in the temporary folder (the same cost)."
    if TEACHER.exists(): return str(TEACHER)
    f = Path(tempfile.gettempdir()) / 'method_costs_teacher.safetensors'
    if not f.exists(): export_random_vit(f)
    return str(f)


def export_random_vit(f:Path):
    "A random DropPos laptop-shape encoder as an `encoder.safetensors` (VQ-KD's teacher when none is trained)."
    from droppos_nb.checkpoint import export_encoder
    spec = get_method('droppos')
    set_seed(0)
    rec = spec.recipe('laptop')
    export_encoder(spec.build(rec), f, arch=rec['arch'], img_size=rec['img_size'], patch_size=rec['patch_size'])


def model_kwargs(name:str, rec:dict, recipe:str='equal') -> dict:
    "The recipe's constructor arguments, plus the teacher (VQ-KD) or tokenizer (BEiT v2) the recipe leaves to the user."
    spec = get_method(name)
    kw = spec.model_kwargs(rec)
    if name == 'vqkd': kw['teacher'] = teacher()
    if name == 'beitv2':
        vq = get_method('vqkd')
        kw['tokenizer'] = vq.build({**vq.recipe(recipe), 'teacher': teacher()})
    return kw


def time_method(name:str, precision:str, warmup:int, steps:int, recipe:str='equal') -> dict:
    "One method's `recipe`: seconds per step after warm-up, images/s, seconds per epoch and per run."
    spec = get_method(name)
    rec = spec.recipe(recipe)
    bs, img = rec['bs'], rec.get('img_size', 32)
    prec = choose_precision(rec.get('precision') or 'auto' if precision == 'recipe' else precision, 'cpu')[0]
    set_seed(0)
    dls = get_dls('mnist5k', img_size=img, bs=bs, seed=0, device='cpu', views=spec.views,
                  scale=(rec.get('min_scale', 0.2), 1.))
    per_epoch = len(dls.train)
    if per_epoch < warmup + steps: raise SystemExit(f"{name}: {per_epoch} batches per epoch; lower --steps")
    clock = Clock(warmup, steps)
    learn = pretrain_learner(dls, name, csv=None, cbs=[clock, *precision_callbacks(prec, 'cpu')], config=rec,
                             **model_kwargs(name, rec, recipe))
    lr = rec['lr'] if rec.get('lr') is not None else scaled_lr(rec['blr'], bs)
    with learn.no_bar(), learn.no_logging():
        learn.fit_warmup_cos(1, lr, warmup_epochs=rec.get('warmup_epochs', 1.), min_lr=rec.get('min_lr', 0.),
                             wd=rec['wd'])
    s = clock.seconds / steps
    n_views = spec.views if isinstance(spec.views, int) else len(spec.views)
    params = sum(p.numel() for p in learn.model.parameters() if p.requires_grad)
    blocks = getattr(getattr(learn.model, 'encoder', None), 'blocks', None)
    return dict(method=name, arch=rec.get('arch'), depth=rec.get('depth') or (len(blocks) if blocks else None),
                img_size=img,
                patch_size=rec.get('patch_size'), views=n_views, bs=bs, precision=prec, trainable_params=params,
                sec_per_step=s, img_per_s=bs / s, steps_per_epoch=per_epoch, sec_per_epoch=s * per_epoch,
                epochs=rec['epochs'], run_minutes=s * per_epoch * rec['epochs'] / 60, recipe=recipe)


# The budget: seconds of training per method on one quiet thread of the machine the recipes were sized on (an AMD
# EPYC with native bf16, 2026-12-08): what the equal-budget sweep's selected configs of MAE, CAE, BEiT v2, MoCo v3 and
# MSCN cost there (their sweep epochs x 3/4, for mnist5k's 4,000 training digits instead of the sweep's 3,000). The
# sweep had given DropPos less (its calibration epoch ran slow): its equal recipe gets the same budget as the others.
BUDGET = 240.
SHARE = dict(vqkd=1 / 3)   # of the budget: BEiT v2's tokenizer (the sweep's TOKENIZER_SHARE); beitv2 gets the rest


def sized_epochs(rows:list, budget:float=BUDGET) -> dict:
    "`{method: epochs}` that make each run cost `budget` seconds at the measured seconds per epoch."
    by = {r['method']: r for r in rows}
    out = {}
    for m, r in by.items():
        avail = budget * SHARE.get(m, 1.)
        if m == 'beitv2' and 'vqkd' in by: avail = budget - by['vqkd']['sec_per_epoch'] * by['vqkd']['epochs']
        out[m] = max(1, round(avail / r['sec_per_epoch']))
    return out


def run_vs_budget(rows:list, budget:float=BUDGET) -> dict:
    "`{method: its run's seconds over the budget}` (BEiT v2 with its tokenizer's run; VQ-KD over its share)."
    by = {r['method']: r for r in rows}
    run = {m: r['sec_per_epoch'] * r['epochs'] for m, r in by.items()}
    if 'beitv2' in run and 'vqkd' in run: run['beitv2'] += run['vqkd']
    return {m: v / budget / SHARE.get(m, 1.) for m, v in run.items()}


def markdown(rows:list, machine:dict) -> str:
    base = next((r for r in rows if r['method'] == 'droppos'), rows[0])
    lines = [f"machine: {machine['cpu']}, {machine['cores']} cores, torch threads {machine['threads']} "
             f"(OMP_NUM_THREADS={machine['omp_num_threads']}); torch {machine['torch']}; load average before the run "
             f"{machine['load_before']}; {machine['date']}",
             "", machine['note'], "",
             "| method | recipe | encoder | views | batch | precision | s/step | img/s | steps/epoch | s/epoch "
             "| epochs "
             f"| min/run | s/epoch vs {base['method']} | run vs budget |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ratio = run_vs_budget(rows)
    for r in rows:
        enc = f"{r['arch']}" + (f", depth {r['depth']}" if r['depth'] else '') + \
              (f", {r['img_size']} px / {r['patch_size']}" if r['patch_size'] else f", {r['img_size']} px")
        rb = '–' if ratio.get(r['method']) is None else f"{ratio[r['method']]:.2f}"
        lines.append(f"| {r['method']} | {r.get('recipe', 'laptop')} | {enc} | {r['views']} | {r['bs']} "
                     f"| {r['precision']} | {r['sec_per_step']:.3f} "
                     f"| {r['img_per_s']:.0f} | {r['steps_per_epoch']} | {r['sec_per_epoch']:.1f} | {r['epochs']} "
                     f"| {r['run_minutes']:.1f} | {r['sec_per_epoch'] / base['sec_per_epoch']:.2f}x | {rb} |")
    lines += ["", "img/s counts source images (a step of MoCo v3 and MSCN encodes 2 and 3 views of each). s/epoch = "
              "s/step x the recipe's steps per epoch on the 4,000 training digits; min/run x its epochs, without "
              f"validation. Run vs budget: the run's seconds over the budget ({BUDGET:g} s on one quiet thread of the "
              "machine the recipes were sized on; on another the ratios between rows are the meaningful numbers), a "
              "VQ-KD run over its third "
              "of it, a BEiT v2 run with its tokenizer's over the whole; 1.00 = equal cost."]
    return '\n'.join(lines) + '\n'


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--methods', default=','.join(method_names()))
    p.add_argument('--precision', default='recipe', help="'recipe' (each recipe's, auto) or fp32 / bf16 for all")
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--busy', action='store_true', help="say that other processes shared the machine")
    p.add_argument('--recipe', default='equal', help="the recipe timed: equal (the results table's), laptop, ...")
    p.add_argument('--size', action='store_true', help="print the epochs that give every run the budget")
    p.add_argument('--out', default=str(OUT))
    p.add_argument('--table-only', action='store_true', help="rewrite the markdown table from the stored JSON")
    a = p.parse_args()
    if a.table_only:
        res = json.loads((Path(a.out) / 'method_costs_cpu.json').read_text())
        (Path(a.out) / 'method_costs_cpu.md').write_text(markdown(res['rows'], res['machine']))
        return
    machine = dict(cpu=cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads(),
                   omp_num_threads=os.environ.get('OMP_NUM_THREADS'), torch=torch.__version__,
                   platform=platform.platform(), load_before=' '.join(f"{x:.2f}" for x in os.getloadavg()),
                   date=time.strftime('%Y-%m-%d %H:%M %Z'), warmup=a.warmup, steps=a.steps, data='mnist5k',
                   teacher=str(TEACHER) if TEACHER.exists() else 'a random DropPos laptop-shape encoder',
                   note=("Other processes were using the machine's cores during this run (a shared machine): the "
                         "absolute numbers are lower than on a quiet machine, and the ratios between methods, "
                         "timed in the same run, are the meaningful numbers." if a.busy else
                         "Timed in one run: the ratios between methods are the meaningful numbers."))
    rows = []
    for name in a.methods.split(','):
        r = time_method(name, a.precision, a.warmup, a.steps, a.recipe)
        print(f"{name:8s} {r['precision']}  {r['sec_per_step']:.3f} s/step  {r['img_per_s']:7.1f} img/s  "
              f"{r['sec_per_epoch']:7.1f} s/epoch  {r['run_minutes']:6.1f} min/run", flush=True)
        rows.append(r)
    machine['load_after'] = ' '.join(f"{x:.2f}" for x in os.getloadavg())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'method_costs_cpu.json').write_text(json.dumps(dict(machine=machine, rows=rows), indent=1) + '\n')
    with open(out / 'method_costs_cpu.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / 'method_costs_cpu.md').write_text(markdown(rows, machine))
    print(markdown(rows, machine))
    if a.size:
        print('epochs for one budget:', json.dumps(sized_epochs(rows)))


if __name__ == '__main__': main()
