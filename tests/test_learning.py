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
    """The laptop-recipe DropPos that the notebooks, explorers and README show (`train.trained_model`: trained once into
    runs/ per checkout, or found there): its validation position accuracy rises from the first epoch to many times
    chance and its validation loss falls; on the same digits and masks an untrained model of the same shape stays near
    chance, so the threshold can fail. (Until issue 23 this was a separate 6-epoch run of the paper's shape, 130 s on
    2 cores; the claim is the same, on the model the test session trains anyway.)"""
    from droppos_nb.registry import get_method
    from droppos_nb.train import trained_model
    from droppos_nb.runs import training_log
    from droppos_nb.viz import sample_images
    from droppos_nb.droppos import droppos_outputs, droppos_metrics
    model = trained_model('droppos', verbose=False)
    log, chance = training_log(model), 1 / model.num_patches
    acc = log.pos_acc.tolist()
    # measured: 24.5% after the first epoch, 56% after the sixteenth (chance: 1/16 = 6.25%; untrained: 6.9%)
    assert acc[-1] > 5 * chance, f"position accuracy {acc} did not rise well above chance ({chance:.3f})"
    assert acc[-1] > acc[0] + 0.03 and log.valid_loss.iloc[-1] < log.valid_loss.iloc[0]
    imgs = sample_images(256)
    set_seed(0)
    fresh = get_method('droppos').model_cls(**model.provenance['model'])
    got = {k: droppos_metrics(droppos_outputs(m, imgs, seed=0)) for k, m in (('trained', model), ('untrained', fresh))}
    assert got['trained']['weighted'] > 5 * chance and got['untrained']['weighted'] < 2 * chance, got

def test_leaked_positions_are_learnt_almost_perfectly():
    "With the true position embedding added to the dropped tokens the answer is in the input: labels, gathers and masks must line up."
    acc = [r['pos_acc'] for r in short_run(epochs=6, items=1536, lr=1e-3, leak=True, sigma=0., tau=float('inf'))]
    assert acc[-1] > 0.95, f"leaked-position accuracy {acc}: labels, gathers or masks do not line up"

def test_laptop_recipe_learns_what_the_old_default_did_not(tmp_path):
    """The default (laptop) recipe against the old default (`--recipe paper`), the same number of optimiser steps
    (4 epochs of 512 digits, batch 64: 32 steps; measured on a 2-core Xeon: laptop 4.0x chance, paper 1.4x, with the
    paper recipe's 12 blocks taking most of the test's time), through the command line: the laptop recipe's validation position
    accuracy is many times chance; the old default's is not. Chance differs (1/16 with 8 px patches, 1/64 with 4 px),
    so both are compared as multiples of their chance."""
    import csv, json
    from droppos_nb.cli import main
    res = {}
    for recipe in ('laptop', 'paper'):
        out = tmp_path / recipe
        main(['pretrain', '--recipe', recipe, '--epochs', '4', '--max-items', '512', '--bs', '64', '--quiet', '--out', str(out)])
        cfg = json.loads((out / 'config.json').read_text())
        chance = (cfg['patch_size'] / cfg['img_size']) ** 2
        acc = float(list(csv.DictReader((out / 'metrics.csv').open()))[-1]['pos_acc'])
        res[recipe] = acc / chance
    assert res['laptop'] > 3 and res['paper'] < 2 and res['laptop'] > 1.5 * res['paper'], res
