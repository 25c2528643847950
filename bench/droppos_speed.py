"""Time DropPos training steps and report images/s and achieved FLOP/s as a share of a matmul peak measured in the same run.

    python bench/droppos_speed.py                       # CPU, fp32 and bf16: the laptop recipe (the default), the paper recipe
                                                        # on the same digits, and ViT-B/16 at 224 (a few steps)
    python bench/droppos_speed.py --device cuda --precision fp32,bf16,fp16 --steps 20

FLOPs of one training step (forward, no-grad attentive pass, backward) are counted by torch's FlopCounterMode
on the real step, not estimated by hand. The peak is the best FLOP/s of a large square matmul in the same
precision on the same device, measured at the start of the run.
"""
import argparse, json, platform, time, os
from pathlib import Path
import torch
from torch.utils.flop_counter import FlopCounterMode
from droppos_nb.registry import get_method

# Models are built from the method's recipes (`--recipe laptop`, the default of `droppos_nb pretrain`, and
# `--recipe paper`), so the bench times what the command line trains. 'paper_digits' is the paper recipe on the
# 32-pixel digits: the default before the laptop recipe.
CONFIGS = {
    'laptop': dict(recipe='laptop', bs=128),
    'paper_digits': dict(recipe='paper', img_size=32, patch_size=4, bs=128),
    'vit_b16_224': dict(recipe='paper', arch='vit_base', img_size=224, patch_size=16, bs=8, bs_cuda=64),
}

def build(cfg):
    "The DropPos model of config `cfg`: its recipe's settings, then the config's own."
    spec = get_method('droppos')
    config = {**spec.recipe(cfg['recipe']), **{k: v for k, v in cfg.items() if k not in ('recipe', 'bs', 'bs_cuda')}}
    config.setdefault('img_size', 32)
    return spec.build(config), config

def cpu_name():
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or platform.machine()

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def autocast(dev, precision):
    dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(precision)
    return torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None)

def matmul_peak(dev, precision, n=None, reps=10):
    "Best FLOP/s of an n x n matmul in `precision` on `dev`."
    n = n or (8192 if dev.type == 'cuda' else 2048)
    dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(precision, torch.float32)
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(2): a @ b
    best = float('inf')
    for _ in range(reps):
        sync(dev); t = time.perf_counter(); a @ b; sync(dev); best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best

def bench_config(name, cfg, dev, precision, steps, bs=None):
    bs = bs or (cfg.get('bs_cuda', cfg['bs']) if dev.type == 'cuda' else cfg['bs'])
    torch.manual_seed(0)
    model, config = build(cfg)
    model = model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    x = torch.randn(bs, 3, config['img_size'], config['img_size'], device=dev)
    def step():
        with autocast(dev, precision): out = model(x)
        out['loss'].backward(); opt.step(); opt.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as fc: step()
    flops = fc.get_total_flops()
    for _ in range(2): step()                  # warm-up
    sync(dev); t = time.perf_counter()
    for _ in range(steps): step()
    sync(dev); dt = (time.perf_counter() - t) / steps
    keys = ('arch', 'img_size', 'patch_size', 'depth', 'embed_dim', 'decoder_dim', 'decoder_depth')
    return dict(config=name, recipe=cfg['recipe'], **{k: config.get(k) for k in keys}, bs=bs, precision=precision, sec_per_step=dt, img_per_s=bs / dt,
                gflop_per_step=flops / 1e9, achieved_tflops=flops / dt / 1e12)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu')
    p.add_argument('--precision', default='fp32,bf16', help="comma-separated: fp32, bf16, fp16; the first is the baseline of the speed ratio")
    p.add_argument('--configs', default='laptop,paper_digits,vit_b16_224'); p.add_argument('--steps', type=int, default=3)
    p.add_argument('--bs', type=int, default=None, help="override every config's batch size")
    p.add_argument('--out', default=None, help='JSON file, and the table as .md beside it (default bench/results/droppos_speed_<device>.json)')
    a = p.parse_args()
    dev = torch.device(a.device)
    precisions = a.precision.split(',')
    peaks = {pr: matmul_peak(dev, pr) for pr in precisions}
    machine = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f"{cpu_name()}, {os.cpu_count()} cores"
    rows = []
    for n in a.configs.split(','):
        base = None
        for pr in precisions:
            r = bench_config(n, CONFIGS[n], dev, pr, a.steps, a.bs)
            r['share_of_matmul_peak'] = r['achieved_tflops'] * 1e12 / peaks[pr]
            base = base or r['img_per_s']
            r['speed_vs_' + precisions[0]] = r['img_per_s'] / base
            rows.append(r)
    res = dict(machine=machine, torch=torch.__version__, device=str(dev), threads=torch.get_num_threads(),
               matmul_peak_tflops={k: v / 1e12 for k, v in peaks.items()}, rows=rows)
    out = Path(a.out or f'bench/results/droppos_speed_{dev.type}.json')
    out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=2))
    lines = [f"machine: {machine}; torch {torch.__version__}; matmul peak (TFLOP/s): "
             + ', '.join(f"{k} {v / 1e12:.3f}" for k, v in peaks.items()), '',
             f"| config | precision | batch | img/s | vs {precisions[0]} | GFLOP/step | achieved TFLOP/s | share of matmul peak |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} ({r['arch']}{', depth ' + str(r['depth']) if r['depth'] else ''}, {r['img_size']} px / {r['patch_size']}) "
                     f"| {r['precision']} | {r['bs']} | {r['img_per_s']:.1f} | {r['speed_vs_' + precisions[0]]:.2f}x | {r['gflop_per_step']:.1f} "
                     f"| {r['achieved_tflops']:.3f} | {r['share_of_matmul_peak']:.0%} |")
    out.with_suffix('.md').write_text('\n'.join(lines) + '\n')   # the table beside the JSON (the README shows it)
    print('\n'.join(lines))

if __name__ == '__main__': main()
