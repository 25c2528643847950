"""Worker of bench/scaling.py: time DropPos training steps through the real fastai Learner (DDP when launched by
`torchrun` with several processes) and write images/s to --out from the first process.

It builds the Learner with `learner.pretrain_learner` instead of going through `train.pretrain`, on purpose: it times
a dozen training steps and stops (CancelFitException), keeps no model and needs no run folder; the one training path's
lock, checkpoints after every epoch, export and figure would only add file writes to the steps it measures.
Everything that trains a model *and keeps it* goes through `train.pretrain` (50_train says so too)."""
import argparse, json, os, time
os.environ.setdefault('ACCELERATE_USE_CPU', 'true')
import torch
from fastai.callback.core import Callback, CancelFitException
from droppos_nb.core import set_seed, rank_world
from droppos_nb.data import get_dls
from droppos_nb.learner import pretrain_learner
from droppos_nb.scale import precision_callbacks
from droppos_nb.distributed import distributed_ctx, init_distributed, launched_processes, finish_distributed

p = argparse.ArgumentParser()
p.add_argument('--out', required=True); p.add_argument('--global-bs', type=int, default=128)
p.add_argument('--precision', default='fp32'); p.add_argument('--warmup', type=int, default=3); p.add_argument('--steps', type=int, default=12)
args = p.parse_args()
world = launched_processes()
if world > 1: init_distributed(cpu=True)
bs = args.global_bs // world

class Clock(Callback):
    "Time `steps` training steps after `warmup` steps, then stop."
    order = 100
    def before_batch(self):
        if self.training and self.iter == args.warmup: self.t = time.perf_counter()
    def after_batch(self):
        if self.training and self.iter == args.warmup + args.steps - 1:
            self.seconds = time.perf_counter() - self.t; raise CancelFitException

set_seed(0)
dls = get_dls('mnist5k', img_size=32, bs=bs, device='cpu')
if len(dls.train) < (args.warmup + args.steps) * world: raise SystemExit("not enough batches: lower --steps or --global-bs")
clock = Clock()
learn = pretrain_learner(dls, 'droppos', csv=None, cbs=[clock, *precision_callbacks(args.precision, 'cpu')])  # the default model
with learn.no_bar(), learn.no_logging(), distributed_ctx(learn): learn.fit_warmup_cos(1, 1e-4)
if rank_world()[0] == 0:
    json.dump(dict(processes=world, threads=torch.get_num_threads(), precision=args.precision, global_bs=args.global_bs,
                   steps=args.steps, seconds=clock.seconds, img_per_s=args.steps * args.global_bs / clock.seconds),
              open(args.out, 'w'))
finish_distributed()
