"""Explorers and figures that teach (issue 16): the keys, scales and honest metrics, checked on pixels and numbers.

Fast tests use fresh tiny models, or a tiny one trained for one epoch into a temporary runs folder; the test on the
trained default model (`slow`) trains the laptop recipe once into the repository's runs/ when it is missing."""
import contextlib
import io, json, os
from pathlib import Path
import numpy as np
import pytest, torch
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from PIL import Image
from droppos_nb import viz as V
from droppos_nb import droppos as DP
from droppos_nb.droppos import DropPos, DropPosExplorer
from droppos_nb.explorers import AttentionExplorer, load_for_explorer

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(img_size=32, patch_size=8, depth=2, decoder_dim=32, decoder_heads=2, decoder_depth=1)

def _png_array(png:bytes): return np.asarray(Image.open(io.BytesIO(png)).convert('RGB')).astype(int)
def _green(a): return (a[..., 1] > 200) & (a[..., 0] < 80) & (a[..., 2] < 80)
def _red(a): return (a[..., 0] > 200) & (a[..., 1] < 80) & (a[..., 2] < 80)
def _is_colorbar(ax): return getattr(ax, '_colorbar', None) is not None or ax.get_label() == '<colorbar>'

@pytest.fixture(scope='module')
def tiny_out():
    torch.manual_seed(0)
    m = DropPos(**TINY)
    x = torch.randn(4, 3, 32, 32)
    return m, x, DP.droppos_outputs(m, x)

def test_true_and_predicted_frames_both_visible_when_equal():
    "When the prediction is right, the green (true) and the red dashed (predicted) frames are the same cell: both must show."
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.zeros((4, 4)), cmap='gray', vmin=0, vmax=1)
    V.cell_frames(ax, 6, 6, 4)
    a = V.fig_to_array(fig, dpi=80)
    assert _green(a).sum() > 100 and _red(a).sum() > 30, (_green(a).sum(), _red(a).sum())

def test_patch_probabilities_right_prediction_keeps_both_frames():
    out = dict(logits=torch.zeros(1, 2, 16), ids_keep=torch.tensor([[5, 9]]), mask_pos=torch.tensor([[False, True]]))
    out['logits'][0, 1, 9] = 8.                                  # predicted = true = cell 9
    fig = DP.plot_patch_probabilities(torch.zeros(3, 32, 32), out, 0)
    cells = fig.axes[1]
    assert [p.get_edgecolor()[:3] for p in cells.patches] == [(0., 1., 0.), (1., 0., 0.)]
    a = V.fig_to_array(fig, dpi=80)
    assert _green(a).sum() > 50 and _red(a).sum() > 20
    # the key says which is which
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ['true cell', 'predicted cell (inside)']

def test_heat_maps_have_a_colour_bar(tiny_out):
    m, x, out = tiny_out
    shown, attns = x.sigmoid(), V.attention_maps(m.encoder, x)
    w = V.full_attentive_weights(m.encoder, x)
    figs = dict(weights=V.plot_attentive_weights(shown, w), attention=V.plot_attention(shown, attns, rollout=True),
                rollout=V.plot_rollout(shown, attns), panels=V.plot_attention_panels(shown[0], attns),
                smoothing=V.plot_smoothing(4), patch=DP.plot_patch_probabilities(shown[0], out, 0, sigma=1.),
                droppos=DP.plot_droppos_panels(shown[0], out, 0, sigma=1.),
                comparison=V.plot_attention_comparison({'a': m}, x, n=2))
    for name, fig in figs.items():
        assert any(_is_colorbar(ax) for ax in fig.axes), name
        plt.close(fig)

def test_attentive_weights_scale_is_fixed(tiny_out):
    "The colours of the weights do not follow the data: the same fixed 0..1 scale at every τ."
    m, x, _ = tiny_out
    norms = []
    for tau in (0.01, 0.1, 10.):
        fig = V.plot_attentive_weights(x.sigmoid()[:1], V.full_attentive_weights(m.encoder, x[:1], tau))
        n = fig.axes[1].images[1].norm; norms.append((n.vmin, n.vmax)); plt.close(fig)
    assert norms == [(0, 1)] * 3

def test_droppos_metrics_weighted_unweighted_chance():
    out = dict(logits=torch.nn.functional.one_hot(torch.tensor([[1, 0, 3]]), 4).float(), ids_keep=torch.tensor([[1, 2, 3]]),
               mask_pos=torch.tensor([[True, True, False]]), weights=torch.tensor([[.9, .1, 0.]]))
    m = DP.droppos_metrics(out)
    assert abs(m['weighted'] - 0.9) < 1e-6 and m['top1'] == 0.5 and m['chance'] == 0.25 and (m['right'], m['dropped']) == (1, 2)

def test_explorer_sigma_changes_the_picture(tiny_out):
    m, x, _ = tiny_out
    ex = DropPosExplorer(m, x)
    a0 = _png_array(ex.view.value)
    ex.sigma.value = 0.
    a1 = _png_array(ex.view.value)
    assert a0.shape != a1.shape or np.abs(a0 - a1).sum() > 0, "moving σ did not change the picture"
    # and the change is in the target panel: the figure's target map is one-hot at σ = 0
    fig = ex.figure()
    assert fig.axes[4].images[0].get_array().max() == 1. and fig.axes[4].get_title().startswith('its training target at σ = 0')
    plt.close(fig)

def test_explorer_figure_is_readable(tiny_out):
    "Fonts of at least 10 points, a key, a colour bar per map, panels in a 2 x 3 grid (not a column)."
    m, x, _ = tiny_out
    ex = DropPosExplorer(m, x)
    fig = ex.figure()
    texts = [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts, *ax.get_yticklabels())]
    texts += list(fig.legends[0].get_texts()) + [fig._suptitle]
    assert all(t.get_fontsize() >= 10 for t in texts if t.get_text())
    panels = [ax for ax in fig.axes if not _is_colorbar(ax)]
    assert len(panels) == 6 and sum(_is_colorbar(ax) for ax in fig.axes) == 3
    xs = sorted({round(ax.get_position().x0, 2) for ax in panels}); ys = sorted({round(ax.get_position().y0, 2) for ax in panels})
    assert len(xs) == 3 and len(ys) == 2, (xs, ys)
    w, h = fig.get_size_inches()
    assert w > h, (w, h)                                                   # uses the width
    plt.close(fig)

def test_untrained_model_is_labelled(tiny_out):
    m, x, _ = tiny_out
    ex = DropPosExplorer(m, x)
    assert 'untrained' in ex.header.value

@contextlib.contextmanager
def runs_in(runs):
    "`runs.runs_dir()` is `runs` inside the block (and what it was before, after it)."
    old = os.environ.get('DROPPOS_NB_RUNS'); os.environ['DROPPOS_NB_RUNS'] = str(runs)
    try: yield
    finally:
        if old is None: os.environ.pop('DROPPOS_NB_RUNS')
        else: os.environ['DROPPOS_NB_RUNS'] = old

def one_epoch_model():
    from droppos_nb.train import trained_model
    return trained_model('droppos', epochs=1, depth=1, decoder_depth=1, bs=256, precision='fp32', verbose=False)

@pytest.fixture(scope='module')
def one_epoch_run(tmp_path_factory):
    "A tiny DropPos trained for one epoch by `train.trained_model` into a temporary runs folder (only while it trains: the later tests of this module see the repository's runs/)."
    runs = tmp_path_factory.mktemp('runs')
    with runs_in(runs): return one_epoch_model(), runs

def test_trained_model_caches_with_provenance(one_epoch_run):
    model, runs = one_epoch_run
    run = model.run
    assert run.parent == runs and run.name.startswith('droppos-mnist5k-')
    cfg = json.loads((run / 'config.json').read_text())
    for k in ('command', 'train_seconds', 'finished', 'data', 'epochs', 'commit', 'model', 'lr'): assert k in cfg, k
    assert cfg['command'].startswith('droppos_nb pretrain --method droppos --data mnist5k') and '--epochs 1' in cfg['command']
    assert sorted(p.name for p in run.iterdir()) == ['checkpoint.pt', 'config.json', 'encoder.safetensors', 'metrics.csv',
                                                     'model.safetensors', 'positions.png']      # what `droppos_nb pretrain` writes
    assert V.model_label(model).startswith('droppos trained 1 epochs on mnist5k')
    from droppos_nb.runs import training_log
    assert list(training_log(model).columns[:4]) == ['epoch', 'train_loss', 'valid_loss', 'pos_acc']
    with runs_in(runs): again = one_epoch_model()                                      # cached: no training
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))

def test_explorer_on_trained_model_shows_three_accuracies(one_epoch_run):
    model, _ = one_epoch_run
    ex = DropPosExplorer(model)                                           # default images: 8 validation digits
    assert len(ex.imgs) == 8
    assert 'trained 1 epochs on mnist5k' in ex.header.value and 'untrained' not in ex.header.value
    info = ex.info.value
    assert 'weighted position accuracy' in info and 'unweighted top-1' in info and 'chance</b> 1/16 = 6.2%' in info
    assert set(ex.metrics['batch']) >= {'weighted', 'top1', 'chance'}

def test_encoder_only_file_loads_quietly(one_epoch_run, capsys):
    model, _ = one_epoch_run
    m, note = load_for_explorer(model.run / 'encoder.safetensors')
    assert capsys.readouterr().out == ''
    assert 'encoder only' in note and 'left at their initialisation' not in note
    ax = AttentionExplorer(model.run / 'encoder.safetensors', V.sample_images(2))
    assert 'which is all this explorer uses' in ax.header.value and 'trained 1 epochs' in ax.header.value

def test_repo_root_found_from_nbs(monkeypatch):
    from droppos_nb.runs import repo_root, runs_dir
    monkeypatch.chdir(ROOT / 'nbs')
    assert repo_root() == ROOT and runs_dir() in (ROOT / 'runs', Path(os.environ.get('DROPPOS_NB_RUNS', '-')))

WIDGET = 'application/vnd.jupyter.widget-view+json'

@pytest.mark.parametrize('name', ['41_explorers.ipynb', '12_cae.ipynb', '10_droppos.ipynb', '13_beitv2.ipynb'])
def test_every_widget_has_a_stored_picture(name):
    "A page rendered without a kernel shows each explorer's first state: the cell after each widget holds a PNG."
    cells = [c for c in json.loads((ROOT / 'nbs' / name).read_text())['cells'] if c['cell_type'] == 'code']
    widgets = [i for i, c in enumerate(cells) if any(WIDGET in o.get('data', {}) for o in c.get('outputs', []))]
    assert widgets, "no widget output stored: execute the notebook (see the report of issue 16)"
    for i in widgets:
        assert any('image/png' in o.get('data', {}) for o in cells[i + 1].get('outputs', [])), cells[i]['source']

# the shared figures in 40_viz, DropPos's and BEiT v2's with their method (issue 24): each shown on a trained model
@pytest.mark.parametrize('name,least', [('40_viz.ipynb', 7), ('10_droppos.ipynb', 4), ('13_beitv2.ipynb', 1)])
def test_figure_notebooks_store_figures(name, least):
    cells = [c for c in json.loads((ROOT / 'nbs' / name).read_text())['cells'] if c['cell_type'] == 'code']
    pngs = sum('image/png' in o.get('data', {}) for c in cells for o in c.get('outputs', []))
    assert pngs >= least, pngs                  # every figure function shown on the trained models, kept as an output

@pytest.mark.slow
def test_default_trained_model_is_above_chance():
    "The notebooks' explorer: the laptop-recipe DropPos (trained into runs/ once when missing) places dropped patches well above chance."
    from droppos_nb.train import trained_model
    ex = DropPosExplorer(trained_model('droppos', verbose=False))
    m = ex.metrics['batch']
    assert m['top1'] > 2 * m['chance'] and m['weighted'] > 2 * m['chance'], m
