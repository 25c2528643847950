"""BEiT v2 on mnist5k, end to end at laptop scale: teacher -> VQ-KD tokenizer (dead-code restart vs the official rule) ->
BEiT v2 (with and without patch aggregation); writes bench/results/beitv2/ (metrics.csv copies, figures, results.json).

    nice -n 5 env OMP_NUM_THREADS=1 .venv/bin/python bench/beitv2_figures.py            # trains what is missing, then draws
    .venv/bin/python bench/beitv2_figures.py --figures-only                              # only redraw from the runs

tutorials/beitv2 imports this file and runs the same chain in its kernel (`args.progress`: fastai's progress bar in the
notebook instead of a line per epoch), one stage at a time (`STAGES`).

Teacher: the supervised row of the results table, i.e. `droppos_nb eval --protocol finetune --checkpoint random` of the laptop
shape (vit_tiny, depth 4, width 192, 3 heads, 32 px images, 8 px patches) fine-tuned 12 epochs (the machine's precision, lr 2e-3, no layer decay),
saved with --save-encoder. It is reused from bench/out/small_scale/random_init/s0 (bench/results.py writes it there) when it
exists, else trained into WORK/teacher. Why a supervised teacher and not DropPos's run: BEiT v2's teacher is CLIP, a model whose
patch features carry *semantics*; on mnist5k the model that knows most about what a digit is, is the fine-tuned classifier
(91.6% valid accuracy), while the DropPos encoder's features are tuned to positions. Its patch grid (4x4 of 8 px) is the
tokenizer's, so no resizing of the teacher's features happens.

Runs (resumable: a run whose metrics.csv holds all its epochs is skipped, a partial one is resumed) live in WORK (default
runs/beitv2, ignored by git). Both recipes are the laptop recipes of the day these results were made, `--recipe laptop-v1`
since the equal-budget sweep changed the laptop ones (RECIPE below), and are run in full (VQ-KD 10 epochs, BEiT v2 10 epochs; each run's seconds of
training are in results.json, `train_seconds`: about 10 minutes for the four on one CPU thread of an AMD EPYC with native
bf16, 2026-12-07, beside the equal-budget sweep on the other core); --beit-epochs runs fewer, and results.json says
how many. An interrupted run leaves no lock behind and is resumed by the next start.
"""
import argparse, json, os, shutil, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--work', default=str(ROOT / 'runs' / 'beitv2'), help="folder of the runs (reused when present)")
p.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'beitv2'), help="results folder")
p.add_argument('--vqkd-epochs', type=int, default=10, help="VQ-KD epochs (laptop-v1 recipe: 10)")
p.add_argument('--beit-epochs', type=int, default=10, help="BEiT v2 epochs (laptop-v1 recipe: 10)")
p.add_argument('--seed', type=int, default=0)
p.add_argument('--threads', type=int, default=1)
p.add_argument('--figures-only', action='store_true', help="draw from the existing runs, train nothing")
p.add_argument('--progress', action='store_true', help="fastai's progress bar instead of a line per epoch")
args = p.parse_args(None if __name__ == '__main__' else [])     # imported (tutorials/beitv2): the defaults
torch.set_num_threads(args.threads)

from droppos_nb import cli
from droppos_nb.registry import get_method, load_model
from droppos_nb.runs import attach_provenance
RECIPE = 'laptop-v1'   # the recipe of the stored results (the laptop recipes before the equal-budget sweep)
BEIT_EPOCHS = get_method('beitv2').recipe(RECIPE)['epochs']

WORK, OUT = Path(args.work), Path(args.out)
TEACHER_SHAPE = ['--arch', 'vit_tiny', '--depth', '4', '--embed-dim', '192', '--num-heads', '3', '--img-size', '32', '--patch-size', '8']
FINETUNE = ['--precision', 'auto', '--epochs', '12', '--lr', '2e-3', '--layer-decay', '1']
SHARED_TEACHER = ROOT / 'bench' / 'out' / 'small_scale' / 'random_init' / 's0'


def finished(run:Path, epochs:int) -> bool:
    "True when `run`'s metrics.csv holds `epochs` epochs and its model file exists."
    f = run / 'metrics.csv'
    if not (f.exists() and (run / 'model.safetensors').exists()): return False
    return len(f.read_text().strip().splitlines()) - 1 >= epochs


def teacher() -> Path:
    "The supervised teacher's encoder file (copied from the results table's work folder, or trained here)."
    dst = WORK / 'teacher'
    enc = dst / 'encoder-finetuned.safetensors'
    if enc.exists(): return enc
    dst.mkdir(parents=True, exist_ok=True)
    if (SHARED_TEACHER / 'encoder-finetuned.safetensors').exists():
        for f in ('encoder-finetuned.safetensors', 'eval-finetune.json'): shutil.copy(SHARED_TEACHER / f, dst / f)
        return enc
    cli.main(['eval', '--protocol', 'finetune', '--checkpoint', 'random', *TEACHER_SHAPE, *FINETUNE, '--save-encoder',
              '--seed', str(args.seed), '--out', str(dst), '--overwrite', *quiet()])
    return enc


def pretrain(name:str, epochs:int, *flags) -> Path:
    "Run (or resume, or skip) `droppos_nb pretrain` into WORK/name."
    run = WORK / name
    if finished(run, epochs): return run
    if args.figures_only: raise SystemExit(f"{run} is not finished: run without --figures-only")
    t0 = time.time()
    if (run / 'config.json').exists() and (run / 'checkpoint.pt').exists():
        cli.main(['pretrain', '--resume', str(run), '--epochs', str(epochs), *quiet()])
    else:
        cli.main(['pretrain', '--recipe', RECIPE, *flags, '--epochs', str(epochs), '--seed', str(args.seed), '--out', str(run), '--overwrite', *quiet()])
    print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    return run


def quiet() -> list: return [] if args.progress else ['--quiet']


def vqkd(rule:str) -> Path:
    "The VQ-KD tokenizer run taught by the teacher, dead codes handled by `rule` ('restart' or 'none')."
    return pretrain(f'vqkd-{rule}', args.vqkd_epochs, '--method', 'vqkd', '--teacher', str(teacher()), '--dead-code', rule)


def beitv2(agg:str) -> Path:
    "The BEiT v2 run on the restart tokenizer's codes, patch aggregation `agg` ('on' or 'off')."
    tok = WORK / 'vqkd-restart' / 'model.safetensors'
    return pretrain(f'beitv2-agg-{agg}', args.beit_epochs, '--method', 'beitv2', '--tokenizer', str(tok), '--aggregation', agg)


# the chain in order: (run folder in WORK, what it is, the function that trains or finds it)
STAGES = [('teacher', 'supervised teacher (fine-tuned laptop ViT)', teacher),
          ('vqkd-restart', 'VQ-KD tokenizer, dead-code restart', lambda: vqkd('restart')),
          ('vqkd-none', 'VQ-KD tokenizer, official rule', lambda: vqkd('none')),
          ('beitv2-agg-on', 'BEiT v2 with patch aggregation', lambda: beitv2('on')),
          ('beitv2-agg-off', 'BEiT v2 without patch aggregation', lambda: beitv2('off'))]


def main():
    for _, _, run in STAGES: run()
    figures(teacher(), {r: vqkd(r) for r in ('restart', 'none')}, {a: beitv2(a) for a in ('on', 'off')})


def figures(t_enc, vq:dict, bt:dict):
    import pandas as pd
    import matplotlib; matplotlib.use('Agg')
    from droppos_nb import viz, beitv2 as B      # BEiT v2's own figures live with the method (13_beitv2)
    OUT.mkdir(parents=True, exist_ok=True)
    res = dict(teacher=dict(path=str(t_enc.relative_to(ROOT)) if t_enc.is_relative_to(ROOT) else str(t_enc),
                            kind='supervised fine-tune of a random laptop-shape ViT (the results table random-init finetune row, seed 0)',
                            flags=' '.join(['--checkpoint random', *TEACHER_SHAPE, *FINETUNE, '--save-encoder'])),
               vqkd_epochs=args.vqkd_epochs, beitv2_epochs=args.beit_epochs,
               note=(f"VQ-KD: {args.vqkd_epochs} epochs ({RECIPE} recipe: {get_method('vqkd').recipe(RECIPE)['epochs']}); BEiT v2: "
                     f"{args.beit_epochs} epochs ({RECIPE} recipe: {BEIT_EPOCHS}{'; shortened' if args.beit_epochs < BEIT_EPOCHS else ''}); "
                     f"everything else the {RECIPE} recipes; {args.threads} thread(s), seed {args.seed}"),
               vqkd={}, beitv2={})
    ev = t_enc.parent / 'eval-finetune.json'
    if ev.exists(): res['teacher']['valid_acc'] = json.loads(ev.read_text())['metrics']['acc']
    imgs = viz.sample_images(64, img_size=32)
    for rule, run in vq.items():
        shutil.copy(run / 'metrics.csv', OUT / f'vqkd-{rule}-metrics.csv')
        df = pd.read_csv(run / 'metrics.csv'); last = df.iloc[-1]
        tok = attach_provenance(load_model(run / 'model.safetensors').eval(), run / 'model.safetensors')
        codes = tok.get_codebook_indices(imgs).flatten()
        cnt = torch.bincount(codes, minlength=tok.num_tokens).float(); pr = cnt / cnt.sum()
        res['vqkd'][rule] = dict(codebook_size=tok.num_tokens, codes_used=float(last['codes_used']), dead_codes=int(last['dead_codes']),
                                 perplexity=round(float(last['perplexity']), 2), rec_cos=round(float(last['rec_cos']), 4),
                                 restarted_total=int(df['restarted'].sum()), valid_images_codes_used=int((cnt > 0).sum()),
                                 valid_images_perplexity=round(float((-(pr[pr > 0] * pr[pr > 0].log()).sum()).exp()), 2),
                                 train_seconds=round(float(df['seconds'].sum()), 1), run=run.name)
        for name, fig in ((f'vqkd-{rule}-usage', B.plot_codebook_usage(df, title=f"VQ-KD codebook, dead codes: {rule}")),
                          (f'vqkd-{rule}-histogram', B.plot_code_histogram(tok, imgs)),
                          (f'vqkd-{rule}-codemap', B.plot_code_map(tok, imgs, n=8)),
                          (f'vqkd-{rule}-gallery', B.plot_code_gallery(tok, imgs, k=8))):
            (OUT / f'{name}.png').write_bytes(viz.fig_to_png(fig))
    fig = B.plot_codebook_usage({r: pd.read_csv(run / 'metrics.csv') for r, run in vq.items()}, title="dead-code restart vs the official rule")
    (OUT / 'vqkd-usage-compare.png').write_bytes(viz.fig_to_png(fig))
    for agg, run in bt.items():
        shutil.copy(run / 'metrics.csv', OUT / f'beitv2-agg-{agg}-metrics.csv')
        df = pd.read_csv(run / 'metrics.csv'); last = df.iloc[-1]
        m = load_model(run / 'model.safetensors').eval()
        fig = B.plot_mim_predictions(m, imgs, n=8, seed=0)
        (OUT / f'beitv2-agg-{agg}-mim.png').write_bytes(viz.fig_to_png(fig))
        res['beitv2'][f'aggregation_{agg}'] = dict(acc_mim=round(float(last['acc_mim']), 4), loss_mim=round(float(last['loss_mim']), 4),
                                                 valid_loss=round(float(last['valid_loss']), 4), epochs=int(len(df)),
                                                 train_seconds=round(float(df['seconds'].sum()), 1),
                                                 chance_most_frequent_code=None)
    # a floor for acc_mim: always predicting the most frequent code of the validation images
    tok = load_model(vq['restart'] / 'model.safetensors').eval()
    codes = tok.get_codebook_indices(viz.sample_images(256, img_size=32)).flatten()
    floor = torch.bincount(codes).max().item() / len(codes)
    for v in res['beitv2'].values(): v['chance_most_frequent_code'] = round(floor, 4)
    res['date'] = time.strftime('%Y-%m-%d %H:%M:%S %Z')
    (OUT / 'results.json').write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == '__main__': main()
