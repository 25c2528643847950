"The command line as a user runs it: outputs of a short pretraining run, and clear errors for bad input."
import csv, json
from pathlib import Path
import numpy as np
import pytest, torch, timm
from PIL import Image

TINY = ['--epochs', '2', '--max-items', '256', '--bs', '64', '--decoder-dim', '64', '--decoder-heads', '4', '--quiet']

@pytest.mark.slow
def test_pretrain_writes_everything(run_cli, tmp_path):
    out = tmp_path / 'run'
    r = run_cli('pretrain', '--method', 'droppos', '--data', 'mnist5k', '--arch', 'vit_tiny', '--img-size', '32',
                '--patch-size', '4', *TINY, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert str(out.resolve()) in r.stdout
    # the first line says which device and precision were chosen, and why; config.json keeps both (issue 23)
    from droppos_nb.scale import choose_precision
    want, why = choose_precision('auto', 'cpu')
    first = r.stdout.splitlines()[0]
    assert first.startswith('device: cpu') and f'precision: {want} ({why.split(" (")[0]}' in first, first
    for f in ['metrics.csv', 'config.json', 'encoder.safetensors', 'model.safetensors', 'positions.png']: assert (out / f).exists(), f
    rows = list(csv.DictReader((out / 'metrics.csv').open()))
    assert len(rows) == 2
    for col in ['epoch', 'train_loss', 'valid_loss', 'pos_acc', 'sigma', 'lr', 'seconds']: assert col in rows[0], col
    assert [float(r['sigma']) for r in rows] == [1.0, 0.5]          # sigma_0 * (1 - e / E)
    assert all(0 <= float(r['pos_acc']) <= 1 and float(r['seconds']) > 0 for r in rows)
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['model']['pos_mask_ratio'] == 0.75 and cfg['timm_arch'] == 'vit_tiny_patch16_224'
    assert cfg['precision'] == 'auto' and cfg['precision_used'] == want and cfg['hardware'] == first
    # the encoder loads into timm with no missing or unexpected keys (timm loads strictly)
    m = timm.create_model('vit_tiny_patch16_224', pretrained=True, pretrained_cfg_overlay=dict(file=str(out / 'encoder.safetensors')),
                          img_size=32, patch_size=4, depth=cfg['depth'], num_classes=0)
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 192)
    img = np.asarray(Image.open(out / 'positions.png'))
    assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 10

def test_bad_image_size(run_main, tmp_path):
    r = run_main('pretrain', '--img-size', '30', '--patch-size', '4', '--out', tmp_path / 'x')
    assert r.returncode == 2 and 'not divisible by patch size 4' in r.stderr

@pytest.mark.parametrize('opt,val', [('--mask-ratio', '1.5'), ('--pos-mask-ratio', '0')])
def test_bad_ratio(run_main, tmp_path, opt, val):
    r = run_main('pretrain', opt, val, *TINY, '--out', tmp_path / 'x')
    assert r.returncode == 2 and 'is not allowed: it must be in (0, 1)' in r.stderr, r.stderr[-2000:]

def test_missing_and_empty_folder(run_main, tmp_path):
    r = run_main('pretrain', '--data', tmp_path / 'nowhere', *TINY, '--out', tmp_path / 'x')
    assert r.returncode == 2 and 'does not exist' in r.stderr, r.stderr[-2000:]
    (tmp_path / 'empty' / 'train').mkdir(parents=True); (tmp_path / 'empty' / 'valid').mkdir()
    r = run_main('pretrain', '--data', tmp_path / 'empty', *TINY, '--out', tmp_path / 'y')
    assert r.returncode == 2 and 'no images' in r.stderr.lower(), r.stderr[-2000:]

def test_help_lists_options(run_main):
    r = run_main('pretrain', '--help')
    for o in ['--method', '--data', '--arch', '--img-size', '--patch-size', '--epochs', '--bs', '--out', '--tau', '--sigma']:
        assert o in r.stdout

@pytest.mark.slow
def test_bf16_with_accumulation(run_cli, tmp_path):
    out = tmp_path / 'bf16'
    r = run_cli('pretrain', '--epochs', '1', '--max-items', '128', '--bs', '32', '--accum', '2', '--precision', 'bf16',
                '--decoder-dim', '64', '--decoder-heads', '4', '--quiet', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    from droppos_nb.scale import cpu_bf16
    native, _ = cpu_bf16()
    warned = [l for l in (r.stdout + r.stderr).splitlines() if l.startswith('warning:') and 'bf16' in l]
    assert len(warned) == (0 if native else 1), warned       # an explicit bf16 that this CPU only emulates: one line, with the factor
    assert native or 'slower than' in warned[0], warned
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['precision_used'] == 'bf16'                   # asked for: it runs, however slow
    assert cfg['effective_batch'] == 64 and abs(cfg['lr'] - cfg['blr'] * 64 / 256) < 1e-12
    rows = list(csv.DictReader((out / 'metrics.csv').open()))
    assert len(rows) == 1 and float(rows[0]['train_loss']) > 0

def test_fp16_on_cpu_is_refused(run_main, tmp_path):
    r = run_main('pretrain', '--precision', 'fp16', '--device', 'cpu', '--out', tmp_path / 'x')
    assert r.returncode == 2 and 'fp16 training needs CUDA' in r.stderr

BAD_PRETRAIN = [   # flags -> the words the one-line message must contain (exit status 2, nothing written)
    (['--epochs', '0'], '--epochs 0 is not allowed'), (['--epochs', '-1'], '--epochs -1 is not allowed'),
    (['--bs', '0'], '--bs 0 is not allowed'), (['--lr', '-0.001'], '--lr -0.001 is not allowed'), (['--lr', '0'], '--lr 0.0 is not allowed'),
    (['--blr', '0'], '--blr 0.0 is not allowed'), (['--warmup-epochs', '-1'], '--warmup-epochs -1.0 is not allowed'),
    (['--decoder-heads', '7'], '--decoder-heads 7 does not divide --decoder-dim 128'), (['--min-scale', '0'], '--min-scale 0.0 is not allowed'),
    (['--method', 'mae', '--tau', '1'], '--tau is an option of droppos'), (['--img-size', '30'], 'not divisible by patch size 8'),
]

@pytest.mark.parametrize('flags,message', BAD_PRETRAIN)
def test_bad_pretrain_flags(run_main, tmp_path, flags, message):
    out = tmp_path / 'run'
    r = run_main('pretrain', *flags, '--out', out)
    assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, (r.returncode, r.stderr[-1000:])
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()       # one line, nothing written

@pytest.mark.parametrize('flags', [['--epochs', '0'], ['--bs', '0']])
def test_eval_zero_is_not_the_default(run_main, tmp_path, flags):
    r = run_main('eval', '--protocol', 'linear', '--checkpoint', 'random', *flags, '--out', tmp_path / 'e')
    assert r.returncode == 2 and 'is not allowed' in r.stderr, r.stderr[-1000:]

def test_a_refusal_is_one_line_and_nothing_else(run_cli, tmp_path):
    "From the installed command: the refusal's line alone on stderr, no third-party warning before it (fastai's torch.jit note was one)."
    r = run_cli('pretrain', '--epochs', '0', '--out', tmp_path / 'x')
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ['droppos_nb pretrain: error: --epochs 0 is not allowed: it must be '
                                                                   'a whole number of at least 1'], r.stderr

@pytest.mark.parametrize('args,words', [(['pretrain', '--method', 'nope'], "invalid choice: 'nope'"),
                                        (['pretrain', '--epochs', 'x'], "invalid int value: 'x'"), ([], 'required: command')])
def test_argparse_refusals_are_one_line(run_main, args, words):
    "argparse's own refusals too: the one line that matters and where the usage is, not 45 lines of usage first (issue 26)."
    r = run_main(*args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and words in lines[0] and '--help` lists the options' in lines[0], r.stderr
