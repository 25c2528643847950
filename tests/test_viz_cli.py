"`droppos_nb viz` as a user runs it on a remote box: PNGs from our checkpoint and from an official-layout .pth, no Jupyter."
import argparse
import numpy as np, torch
from PIL import Image
from droppos_nb.droppos import DropPos
from droppos_nb.checkpoint import save_model

CFG = dict(img_size=32, patch_size=4, depth=2, decoder_dim=32, decoder_heads=16, decoder_depth=1)

def test_viz_writes_pngs(run_cli, tmp_path):
    ck = save_model(DropPos(**CFG), tmp_path / 'model.safetensors', 'droppos', CFG)
    r = run_cli('viz', '--model', ck, '--data', 'mnist5k', '--out', tmp_path / 'figs', '--n', '4', '--dpi', '60')
    assert r.returncode == 0, r.stderr[-3000:]
    for w in ['positions', 'patch', 'attention', 'rollout', 'smoothing', 'weights']:
        img = np.asarray(Image.open(tmp_path / 'figs' / f'{w}.png'))
        assert img.ndim == 3 and img.shape[0] > 50 and img.std() > 10, w

def test_viz_official_checkpoint(run_cli, tmp_path):
    sd = {k.removeprefix('encoder.'): v for k, v in DropPos(**CFG).state_dict().items()}
    torch.save(dict(model=sd, epoch=1, args=argparse.Namespace(model='DropPos_mae_vit_tiny')), tmp_path / 'official.pth')
    r = run_cli('viz', '--model', tmp_path / 'official.pth', '--out', tmp_path / 'figs', '--what', 'positions,attention', '--n', '2')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'everything fitted' in r.stdout
    assert sorted(p.name for p in (tmp_path / 'figs').iterdir()) == ['attention.png', 'positions.png']

def test_viz_errors(run_main, tmp_path):
    r = run_main('viz', '--model', tmp_path / 'none.safetensors', '--out', tmp_path / 'figs')
    assert r.returncode == 2 and 'does not exist' in r.stderr
    ck = save_model(DropPos(**CFG), tmp_path / 'model.safetensors', 'droppos', CFG)
    r = run_main('viz', '--model', ck, '--what', 'pictures', '--out', tmp_path / 'figs')
    assert r.returncode == 2 and 'unknown figure' in r.stderr

def test_viz_figure_settings_come_from_the_spec(run_main, tmp_path):
    "--mask-ratio/--pos-mask-ratio reach a DropPos model through its spec's figure_settings; a MAE declares none."
    from droppos_nb.mae import MAE
    cfg = dict(img_size=32, patch_size=8, depth=1, decoder_dim=32, decoder_heads=2, decoder_depth=1)
    ck = save_model(MAE(**cfg), tmp_path / 'mae.safetensors', 'mae', cfg)
    r = run_main('viz', '--model', ck, '--mask-ratio', '0.5', '--what', 'reconstructions', '--n', '2', '--out', tmp_path / 'm')
    assert r.returncode == 2 and 'figure_settings' in r.stderr and 'a mae model takes neither' in r.stderr, r.stderr
    ck = save_model(DropPos(**CFG), tmp_path / 'model.safetensors', 'droppos', CFG)
    r = run_main('viz', '--model', ck, '--mask-ratio', '0.99', '--what', 'positions', '--n', '2', '--out', tmp_path / 'd')
    assert r.returncode == 2 and 'lower the ratios' in r.stderr, r.stderr       # DropPos's own check, via the spec
    r = run_main('viz', '--model', ck, '--mask-ratio', '0.5', '--what', 'positions', '--n', '2', '--out', tmp_path / 'd')
    assert r.returncode == 0 and (tmp_path / 'd' / 'positions.png').exists(), r.stderr[-2000:]
