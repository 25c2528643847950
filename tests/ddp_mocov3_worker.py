"""A few MoCo v3 steps, run by tests/test_mocov3.py under `torchrun` (several gloo processes on CPUs) or plain `python` (one
process, no process group at all).

Every process takes its share of the same global batches (rows rank*B/W ... (rank+1)*B/W), wraps the model in DDP when
there are several processes, and takes plain SGD steps with the EMA step inside `forward`. It saves its state dict
(weights, momentum encoder, BN running statistics) and the global mean losses to OUT/rank<r>.pt, so that the test can
compare the processes with each other and with one process on the global batch: equal only if the keys are gathered
across processes (with the right label offsets) and the projector/predictor BNs use global batch statistics.

`ddp_mocov3_worker.py cli pretrain ...` runs the command line with MoCo v3 registered (until it is a built-in method)."""
import argparse, os, sys
if len(sys.argv) > 1 and sys.argv[1] == 'cli':        # `ddp_mocov3_worker.py cli pretrain ...`: the command line, MoCo v3 registered
    import droppos_nb.mocov3
    from droppos_nb.cli import main
    main(sys.argv[2:]); sys.exit(0)
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from droppos_nb.mocov3 import MoCoV3

p = argparse.ArgumentParser()
p.add_argument('--out', required=True); p.add_argument('--steps', type=int, default=3); p.add_argument('--bs', type=int, default=16)
args = p.parse_args()
world = int(os.environ.get('WORLD_SIZE', 1))
if world > 1: dist.init_process_group('gloo')
rank = dist.get_rank() if world > 1 else 0
torch.set_num_threads(1)
torch.manual_seed(0)
model = MoCoV3(img_size=16, patch_size=4, depth=1, embed_dim=32, num_heads=2, proj_dim=16, mlp_dim=32)
net = DDP(model) if world > 1 else model
# plain SGD: AdamW would blow up the rounding noise of gradients that are zero in exact arithmetic (a bias before a BN)
opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=0.1, momentum=0.9)
g = torch.Generator().manual_seed(1)
B, losses = args.bs, []
mine = slice(rank * B // world, (rank + 1) * B // world)
for step in range(args.steps):
    x1, x2 = torch.randn(B, 3, 16, 16, generator=g), torch.randn(B, 3, 16, 16, generator=g)
    model.momentum = 0.9                         # a small momentum, so that the EMA step shows in the weights
    out = net(x1[mine], x2[mine])
    out['loss'].backward(); opt.step(); opt.zero_grad()
    loss = out['loss'].detach().clone()
    if world > 1: dist.all_reduce(loss); loss /= world
    losses.append(loss.item())
torch.save(dict(model=model.state_dict(), losses=losses, world=world), os.path.join(args.out, f'rank{rank}.pt'))
if world > 1: dist.barrier(); dist.destroy_process_group()
