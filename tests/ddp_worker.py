"""A few DropPos training steps, run by tests/test_ddp.py under `torchrun` (several processes) or plain `python` (one).

Every process saves its weights, the logged training losses and the validation metrics to OUT/rank<r>.pt, so the
test can compare the processes with each other and with a single-process run on the same global batches."""
import argparse, os
os.environ.setdefault('ACCELERATE_USE_CPU', 'true')
import torch
from droppos_nb.core import set_seed, rank_world
from droppos_nb.data import get_dls
from droppos_nb.learner import pretrain_learner
from droppos_nb.distributed import distributed_ctx, init_distributed, launched_processes, finish_distributed

p = argparse.ArgumentParser()
p.add_argument('--out', required=True); p.add_argument('--bs', type=int, required=True)
p.add_argument('--items', type=int, default=256); p.add_argument('--method', default='droppos')
args = p.parse_args()
if launched_processes() > 1: init_distributed(cpu=True)
torch.set_num_threads(1)
set_seed(0)
dls = get_dls('mnist5k', img_size=32, bs=args.bs, max_items=args.items, device='cpu')
kw = dict(decoder_dim=32, decoder_heads=2) if args.method == 'droppos' else dict(decoder_depth=1, regressor_depth=1)
learn = pretrain_learner(dls, args.method, csv=None, arch='vit_tiny', img_size=32, patch_size=4, depth=2, **kw)
with learn.no_bar(), learn.no_logging(), distributed_ctx(learn):
    learn.fit(1, 1e-3)               # a constant learning rate: the steps depend on the batches only
rank = rank_world()[0]
torch.save(dict(model=learn.model.state_dict(), losses=[float(l) for l in learn.recorder.losses],
                values=[float(v) for v in learn.recorder.values[-1]], names=list(learn.recorder.metric_names),
                world=rank_world()[1]), os.path.join(args.out, f'rank{rank}.pt'))
finish_distributed()
