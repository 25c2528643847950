"""MAE and CAE learn on real data (the built-in photo crops): after a short run their reconstructions of held-out
images are clearly better than the mean image (error below 0.6x; measured 0.32x MAE, 0.31x CAE) and better than
filling each image with the mean of its visible pixels (below 0.9x; measured 0.84x MAE, 0.76x CAE).

Each run uses a 4-block ViT-Tiny and small decoders, and takes well under a minute on 2 CPU cores."""
import pytest, torch
from droppos_nb.core import set_seed, patchify
from droppos_nb.data import get_dls
from droppos_nb.learner import pretrain_learner
from droppos_nb.viz import mae_outputs

pytestmark = pytest.mark.slow   # trains models, or drives processes or a browser: `pytest -m 'not slow'` skips it

def short_run(method, epochs=4, items=1024, lr=2e-3, **kw):
    set_seed(0)
    dls = get_dls('photos', img_size=32, bs=64, seed=0, max_items=items)
    learn = pretrain_learner(dls, method, csv=None, arch='vit_tiny', img_size=32, patch_size=4, depth=4, **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_warmup_cos(epochs, lr, warmup_epochs=0.5)
    return learn

def heldout_errors(learn, n_batches=4):
    "Masked-patch MSE (normalised pixels) on validation images: the model, the mean image, each image's visible mean."
    model, p = learn.model, learn.model.patch_size
    xs = torch.cat([b[0].as_subclass(torch.Tensor) for _, b in zip(range(n_batches), learn.dls.valid)]).cpu()
    out = mae_outputs(model, xs, seed=0)
    m = out['mask']
    target = patchify(xs, p)
    err = lambda rec: ((patchify(rec, p) - target) ** 2).mean(-1)[m].mean().item()
    vis = (target * (~m)[..., None]).sum((1, 2)) / ((~m).sum(1) * target.shape[-1])        # per-image mean of visible pixels
    return dict(model=err(out['rec']), mean_image=err(xs.mean(0, keepdim=True).expand_as(xs)),
                visible_mean=err(vis[:, None, None, None].expand_as(xs)))

def check_learns(learn):
    e = heldout_errors(learn)
    assert e['model'] < 0.6 * e['mean_image'], f"held-out reconstruction error {e} is not clearly below the mean image's"
    assert e['model'] < 0.9 * e['visible_mean'], f"held-out reconstruction error {e} is not below a flat fill of the visible mean"
    return e

def test_mae_learns_to_reconstruct_heldout_images():
    learn = short_run('mae', decoder_dim=128, decoder_heads=4)
    check_learns(learn)

def test_cae_learns_to_reconstruct_heldout_images():
    learn = short_run('cae', decoder_depth=2, regressor_depth=2)
    check_learns(learn)
    names = learn.recorder.metric_names
    assert 'loss_rec' in names and 'loss_align' in names
    log = [dict(zip(names[1:], v)) for v in learn.recorder.values]
    assert log[-1]['loss_rec'] < log[0]['loss_rec']

@pytest.mark.parametrize('method', ['mae', 'cae'])
def test_cli_pretrain_writes_reconstructions(run_cli, tmp_path, method):
    out = tmp_path / method
    extra = ['--depth', '2', '--decoder-depth', '1', '--regressor-depth', '1'] if method == 'cae' else []   # wiring: a small CAE
    r = run_cli('pretrain', '--method', method, '--epochs', '1', '--max-items', '256', '--bs', '64', '--quiet', '--out', out, *extra)
    assert r.returncode == 0, r.stderr[-2000:]
    for f in ['metrics.csv', 'config.json', 'encoder.safetensors', 'model.safetensors', 'reconstructions.png']: assert (out / f).exists(), f
    header = (out / 'metrics.csv').read_text().splitlines()[0].split(',')
    if method == 'cae': assert 'loss_rec' in header and 'loss_align' in header, header
    from droppos_nb.registry import load_model
    m = load_model(out / 'model.safetensors')
    assert type(m).__name__ == method.upper()
