"""Every method's laptop recipe timed side by side: images per second and seconds per epoch, one run, one machine.

    OMP_NUM_THREADS=1 python bench/method_costs.py --busy          # every method, the recipes' precision (auto)
    python bench/method_costs.py --methods droppos,mae --precision fp32 --steps 4

Each method trains through the real fastai Learner (`learner.pretrain_learner`, the recipe's model, batch size,
optimiser, views and precision: `auto` gives bf16 where the CPU runs it natively, else fp32) on the same data
(mnist5k, 32 px, the same seed). After `--warmup` steps, `--steps` training steps are timed (data loading included,
no validation); seconds per epoch = seconds per step x the recipe's steps per epoch on the full training split, and
a run's minutes = that x the recipe's epochs. VQ-KD distils the stored DropPos encoder (`runs/droppos-mnist5k`, a
ViT-Tiny of the laptop shape); BEiT v2 reads its targets from an untrained VQ-KD of the laptop recipe (the
tokenizer's cost does not depend on its weights). Writes `bench/results/method_costs/` (JSON, CSV, markdown).
"""
import argparse, csv, json, os, platform, time
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


def model_kwargs(name:str, rec:dict) -> dict:
    "The recipe's constructor arguments, plus the teacher (VQ-KD) or tokenizer (BEiT v2) the recipe leaves to the user."
    spec = get_method(name)
    kw = spec.model_kwargs(rec)
    if name == 'vqkd': kw['teacher'] = str(TEACHER)
    if name == 'beitv2':
        vq = get_method('vqkd')
        kw['tokenizer'] = vq.build({**vq.recipe('laptop'), 'teacher': str(TEACHER)})
    return kw


def time_method(name:str, precision:str, warmup:int, steps:int) -> dict:
    "One method's laptop recipe: seconds per step after warm-up, images/s, seconds per epoch and per run."
    spec = get_method(name)
    rec = spec.recipe('laptop')
    bs, img = rec['bs'], rec.get('img_size', 32)
    prec = choose_precision(rec.get('precision') or 'auto' if precision == 'recipe' else precision, 'cpu')[0]
    set_seed(0)
    dls = get_dls('mnist5k', img_size=img, bs=bs, seed=0, device='cpu', views=spec.views,
                  scale=(rec.get('min_scale', 0.2), 1.))
    per_epoch = len(dls.train)
    if per_epoch < warmup + steps: raise SystemExit(f"{name}: {per_epoch} batches per epoch; lower --steps")
    clock = Clock(warmup, steps)
    learn = pretrain_learner(dls, name, csv=None, cbs=[clock, *precision_callbacks(prec, 'cpu')], config=rec,
                             **model_kwargs(name, rec))
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
                epochs=rec['epochs'], run_minutes=s * per_epoch * rec['epochs'] / 60)


def markdown(rows:list, machine:dict) -> str:
    base = next((r for r in rows if r['method'] == 'droppos'), rows[0])
    lines = [f"machine: {machine['cpu']}, {machine['cores']} cores, torch threads {machine['threads']} "
             f"(OMP_NUM_THREADS={machine['omp_num_threads']}); torch {machine['torch']}; load average before the run "
             f"{machine['load_before']}; {machine['date']}",
             "", machine['note'], "",
             "| method | encoder | views | batch | precision | s/step | img/s | steps/epoch | s/epoch | epochs "
             f"| min/run | s/epoch vs {base['method']} |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        enc = f"{r['arch']}" + (f", depth {r['depth']}" if r['depth'] else '') + \
              (f", {r['img_size']} px / {r['patch_size']}" if r['patch_size'] else f", {r['img_size']} px")
        lines.append(f"| {r['method']} | {enc} | {r['views']} | {r['bs']} | {r['precision']} | {r['sec_per_step']:.3f} "
                     f"| {r['img_per_s']:.0f} | {r['steps_per_epoch']} | {r['sec_per_epoch']:.1f} | {r['epochs']} "
                     f"| {r['run_minutes']:.1f} | {r['sec_per_epoch'] / base['sec_per_epoch']:.2f}x |")
    lines += ["", "img/s counts source images (a step of MoCo v3 and MSCN encodes 2 and 3 views of each). s/epoch = "
              "s/step x the recipe's steps per epoch on the 4,000 training digits; min/run x its epochs, without "
              "validation. A BEiT v2 run also needs its tokenizer: the vqkd row's run plus its own. CAE's laptop "
              "recipe is still its paper shape (12 blocks, 4 px patches)."]
    return '\n'.join(lines) + '\n'


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--methods', default=','.join(method_names()))
    p.add_argument('--precision', default='recipe', help="'recipe' (each recipe's, auto) or fp32 / bf16 for all")
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--busy', action='store_true', help="say that other processes shared the machine")
    p.add_argument('--out', default=str(OUT))
    p.add_argument('--table-only', action='store_true', help="rewrite the markdown table from the stored JSON")
    a = p.parse_args()
    if a.table_only:
        res = json.loads((Path(a.out) / 'method_costs_cpu.json').read_text())
        (Path(a.out) / 'method_costs_cpu.md').write_text(markdown(res['rows'], res['machine']))
        return
    if not TEACHER.exists():
        raise SystemExit(f"no {TEACHER}: train it with `droppos_nb pretrain --out {TEACHER.parent}` (VQ-KD's teacher)")
    machine = dict(cpu=cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads(),
                   omp_num_threads=os.environ.get('OMP_NUM_THREADS'), torch=torch.__version__,
                   platform=platform.platform(), load_before=' '.join(f"{x:.2f}" for x in os.getloadavg()),
                   date=time.strftime('%Y-%m-%d %H:%M %Z'), warmup=a.warmup, steps=a.steps, data='mnist5k',
                   note=("Other processes were using the machine's cores during this run (a shared machine): the "
                         "absolute numbers are lower than on a quiet machine, and the ratios between methods, "
                         "timed in the same run, are the meaningful numbers." if a.busy else
                         "Timed in one run: the ratios between methods are the meaningful numbers."))
    rows = []
    for name in a.methods.split(','):
        r = time_method(name, a.precision, a.warmup, a.steps)
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


if __name__ == '__main__': main()
