"""CAE's alignment-reconstruction experiment, measured: train CAE with alignment (weight 2) and without (weight 0),
plus MAE and DropPos for the attention-map comparison, all on the same data with the same encoder, then

* feed all patches of held-out images through each CAE's encoder and straight into its decoder (no regressor) and
  measure the pixel MSE (normalised units), next to the mean-image baseline and the models' ordinary masked-patch error;
* draw the alignment-reconstruction figure and the attention maps of the four encoders on the same images.

    python bench/cae_alignment.py                  # mnist5k, 32 px, 4 px patches, ViT-Tiny depth 4, 10 epochs (~20 min on 2 CPU cores)
    python bench/cae_alignment.py --data photos --out bench/results/cae_alignment_photos --models bench/out/cae_alignment_photos
    python bench/cae_alignment.py --epochs 2 --max-items 512 --out /tmp/x   # a quick trial

Writes OUT/results.json, OUT/alignment.png and OUT/attention.png (OUT: bench/results/cae_alignment) and the trained
runs to --models (bench/out/cae_alignment, not committed; each a run folder with its model.safetensors, which the
12_cae notebook's explorer can load).

Each model is trained by the one training path, `train.pretrain(train.pretrain_settings(...))`, into its own run
folder (lock, provenance, metrics.csv, checkpoints, export), with every setting that the bench used before it went
through that path pinned (crop 0.2-1, weight decay 0.05, no drop-path, a final lr of 0, fp32, one warm-up epoch):
the settings `bench/results/cae_alignment` was measured with (before the bench went through `train.pretrain`; not
measured again since).
"""
import argparse, json, platform, time
import pandas as pd
from pathlib import Path
import torch
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from droppos_nb.core import set_seed, patchify
from droppos_nb.data import get_dls
from droppos_nb.registry import load_model
from droppos_nb.runs import run_finished, read_config
from droppos_nb.train import pretrain, pretrain_settings
from droppos_nb.viz import mae_outputs
from droppos_nb.viz import encoder_decoder_error, plot_alignment_reconstruction, plot_attention_comparison

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--data', default='mnist5k'); p.add_argument('--epochs', type=int, default=10)
p.add_argument('--max-items', type=int, default=2000); p.add_argument('--depth', type=int, default=4)
p.add_argument('--lr', type=float, default=2e-3); p.add_argument('--bs', type=int, default=64)
p.add_argument('--out', default='bench/results/cae_alignment'); p.add_argument('--models', default='bench/out/cae_alignment')
p.add_argument('--reuse', action='store_true', help="load models already trained into --models instead of training them again")
args = p.parse_args()
out, mdir = Path(args.out), Path(args.models)
out.mkdir(parents=True, exist_ok=True); mdir.mkdir(parents=True, exist_ok=True)

base = dict(arch='vit_tiny', img_size=32, patch_size=4, depth=args.depth)
# (method, model arguments, learning rate): the reconstruction methods share --lr; DropPos, whose classification
# loss does not learn at that rate (its position accuracy stays at chance), takes its own
RUNS = {'CAE align 2': ('cae', dict(decoder_depth=2, regressor_depth=2, align_weight=2.), None),
        'CAE align 0': ('cae', dict(decoder_depth=2, regressor_depth=2, align_weight=0.), None),
        'MAE': ('mae', dict(decoder_dim=128, decoder_heads=4), None),
        'DropPos': ('droppos', dict(decoder_dim=128, decoder_heads=4), 3e-4)}
old = json.loads((out / 'results.json').read_text()) if args.reuse and (out / 'results.json').exists() else dict(runs={})
models, res = {}, dict(config=vars(args), model=base, machine=platform.platform(), torch=torch.__version__, runs={})
# what the bench trained with before it went through `train.pretrain` (learner defaults, get_dls' crop), pinned
PINNED = dict(min_scale=0.2, wd=0.05, min_lr=0., drop_path=0., precision='fp32', warmup_epochs=1.)
for name, (method, kw, lr) in RUNS.items():
    lr = lr or args.lr
    run = mdir / name.replace(' ', '_').lower()
    if args.reuse and run_finished(run):
        models[name] = load_model(run / 'model.safetensors').eval()
        res['runs'][name] = dict(old['runs'].get(name, {}), method=method, kwargs=kw, reused=str(run))
        continue
    settings = pretrain_settings(method=method, data=args.data, seed=0, epochs=args.epochs, bs=args.bs, lr=lr,
                                 max_items=args.max_items, **base, **kw, **PINNED)
    settings.out, settings.overwrite, settings.quiet, settings.silent = str(run), True, True, True
    pretrain(settings)
    last = pd.read_csv(run / 'metrics.csv').iloc[-1]
    res['runs'][name] = dict(method=method, kwargs=kw, lr=lr, seconds=round(read_config(run)['train_seconds'], 1),
                             run=str(run), last_epoch={k: float(v) for k, v in last.items()
                                                       if isinstance(v, float) and k not in ('epoch', 'lr', 'seconds')})
    models[name] = load_model(run / 'model.safetensors').eval()
    print(name, res['runs'][name], flush=True)

set_seed(0)
dls = get_dls(args.data, img_size=32, bs=args.bs, seed=0, max_items=args.max_items)      # the held-out images
xs = torch.cat([b[0].as_subclass(torch.Tensor) for b in dls.valid]).cpu()
res['n_heldout'] = len(xs)
res['mean_image_mse'] = torch.nn.functional.mse_loss(xs.mean(0, keepdim=True).expand_as(xs), xs).item()
for name in ('CAE align 2', 'CAE align 0'):
    m = models[name]
    o = mae_outputs(m, xs, seed=0)
    masked = ((patchify(o['rec'], 4) - patchify(xs, 4)) ** 2).mean(-1)[o['mask']].mean().item()
    res['runs'][name].update(encoder_decoder_mse=encoder_decoder_error(m, xs), masked_patch_mse=masked)
a2, a0 = res['runs']['CAE align 2']['encoder_decoder_mse'], res['runs']['CAE align 0']['encoder_decoder_mse']
res['gap'] = dict(ratio=a0 / a2, difference=a0 - a2)
print(json.dumps(res, indent=1))
(out / 'results.json').write_text(json.dumps(res, indent=1))
show = xs[:8]
fig = plot_alignment_reconstruction({k: models[k] for k in ('CAE align 2', 'CAE align 0')}, show,
                                    title=f"all patches → encoder → decoder: MSE {a2:.2f} with alignment, {a0:.2f} without "
                                          f"(mean image {res['mean_image_mse']:.2f})")
fig.savefig(out / 'alignment.png', dpi=80); plt.close(fig)
fig = plot_attention_comparison({k: models[k] for k in ('CAE align 2', 'MAE', 'DropPos')}, show)
fig.savefig(out / 'attention.png', dpi=80); plt.close(fig)
print('wrote', ', '.join(str(out / f) for f in ('results.json', 'alignment.png', 'attention.png')))
