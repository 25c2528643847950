"""DropPos learns on real data (the built-in MNIST digits), and its wiring is right.

The runs are short and use a 4-block ViT-Tiny so that each takes about a minute on 2 CPU cores.
Chance level is 1/64 (an 8x8 grid of positions)."""
import pytest, torch
from droppos_nb.core import set_seed
from droppos_nb.data import get_dls
from droppos_nb.learner import pretrain_learner

pytestmark = pytest.mark.slow   # trains models, or drives processes or a browser: `pytest -m 'not slow'` skips it

def short_run(epochs, items, lr=3e-4, leak=False, **kw):
    set_seed(0)
    dls = get_dls('mnist5k', img_size=32, bs=64, seed=0, max_items=items)
    learn = pretrain_learner(dls, 'droppos', csv=None, arch='vit_tiny', img_size=32, patch_size=4, depth=4,
                             decoder_dim=128, decoder_heads=4, leak_pos=leak, **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_warmup_cos(epochs, lr, warmup_epochs=0.5, wd=0.05)
    names = learn.recorder.metric_names[1:-1]
    return [dict(zip(names, v)) for v in learn.recorder.values]

def test_position_accuracy_rises_well_above_chance():
    log = short_run(epochs=6, items=3072)
    acc = [r['pos_acc'] for r in log]
    # measured: 4.5% after the first epoch, 11% after the sixth (chance: 1.6%)
    assert acc[-1] > 5 / 64, f"position accuracy {acc} did not rise well above chance (1/64)"
    assert acc[-1] > acc[0] + 0.03 and log[-1]['valid_loss'] < log[0]['valid_loss']

def test_leaked_positions_are_learnt_almost_perfectly():
    "With the true position embedding added to the dropped tokens the answer is in the input: labels, gathers and masks must line up."
    acc = [r['pos_acc'] for r in short_run(epochs=6, items=1536, lr=1e-3, leak=True, sigma=0., tau=float('inf'))]
    assert acc[-1] > 0.95, f"leaked-position accuracy {acc}: labels, gathers or masks do not line up"
