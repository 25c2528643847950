"""The evaluation protocols on real digits (the built-in MNIST), and `droppos_nb eval` as a user runs it.

* a trained encoder scores clearly above a random one with the linear probe and with kNN;
* the position probe answers almost perfectly when no position embedding is dropped, and far worse at 75%;
* frozen encoders stay bit-for-bit the same through the probes;
* nothing trains on validation data: corrupting the validation images and labels leaves every trained weight unchanged;
* the command line writes its JSON for each protocol and refuses bad input with exit status 2 and a clear message.

Encoders are 1- or 2-block ViT-Tiny on 16 or 32 px digits with 4 px patches, so that each test stays well under a
minute on 2 busy CPU cores."""
import json
import pytest, torch
from PIL import Image
from droppos_nb.core import set_seed
from droppos_nb.data import TensorData
from droppos_nb.droppos import DropPos
from droppos_nb.checkpoint import export_encoder
from droppos_nb.evaluation import (eval_data, eval_dls, load_eval_encoder, finetune, linear_probe, linear_probe_learner,
                                   knn_eval, position_probe, position_probe_learner)

@pytest.fixture(scope='module')
def digits16():
    "2,000 training and 500 validation digits at 16 px (a 4x4 grid of 4 px patches)."
    return eval_data('mnist5k', 16, max_items=2000, max_valid=500)

@pytest.fixture(scope='module')
def trained16(digits16, tmp_path_factory):
    "A 2-block ViT-Tiny fine-tuned (MAE's recipe, no crops) for 6 epochs on the 2,000 training digits, saved as a checkpoint."
    vit = load_eval_encoder('random', img_size=16, patch_size=4, depth=2, drop_path_rate=0.1, seed=0, device='cpu')
    path = tmp_path_factory.mktemp('ft') / 'encoder-finetuned.safetensors'
    res = finetune(vit, digits16, epochs=6, lr=2e-3, bs=32, scale=(1., 1.), flip_p=0., save=path)
    assert res['acc'] > 0.75, f"fine-tuning on the digits reached only {res['acc']:.3f}"   # measured: 0.846
    return path

def random_and_trained(trained):
    return (load_eval_encoder('random', img_size=16, patch_size=4, depth=2, seed=0, device='cpu'),
            load_eval_encoder(trained, device='cpu'))                    # the settings come from the file

# The fine-tuned network pools the mean of its patch tokens (MAE), so its probes do too.
def test_linear_probe_trained_beats_random(trained16, digits16):
    "With 500 labelled digits, as a probe is used in practice: a converged probe (lr 1e-2, 30 epochs)."
    few = eval_data(digits16, 16, max_items=500)
    rnd, ft = (linear_probe(v, few, pool='mean', epochs=30, lr=1e-2, bs=64)['acc'] for v in random_and_trained(trained16))
    print(f"linear probe, 500 labels: random init {rnd:.3f}, fine-tuned {ft:.3f}")  # measured: 0.634, 0.832
    assert ft > rnd + 0.1, f"linear probe: trained {ft:.3f} is not clearly above random init {rnd:.3f}"

def test_knn_trained_beats_random(trained16, digits16):
    rnd, ft = (knn_eval(v, digits16, pool='mean', k=20, T=0.07)['acc'] for v in random_and_trained(trained16))
    print(f"kNN, 2,000 in the bank: random init {rnd:.3f}, fine-tuned {ft:.3f}")   # measured: 0.592, 0.848
    assert ft > rnd + 0.15, f"kNN: trained {ft:.3f} is not clearly above random init {rnd:.3f}"

@pytest.fixture(scope='module')
def digits32():
    "1,000 training and 250 validation digits at 32 px (an 8x8 grid: 64 positions)."
    return eval_data('mnist5k', 32, max_items=1000, max_valid=250)

def test_position_probe_no_drop_far_above_drop(digits32):
    "With nothing dropped every patch carries its position embedding: a linear layer reads the answer off."
    few = eval_data(digits32, 32, max_items=500, max_valid=200)
    acc = {r: position_probe(load_eval_encoder('random', depth=2, seed=0, device='cpu'), few, drop_ratio=r,
                             epochs=2, lr=3e-2, bs=25)['pos_acc'] for r in (0., 0.75)}
    print(f"position probe: nothing dropped {acc[0.]:.3f}, 75% dropped {acc[0.75]:.3f}")   # measured: 0.811, 0.063
    assert acc[0.] > 0.7 and acc[0.] > acc[0.75] + 0.5, acc

def test_validation_drops_are_fixed(digits32):
    set_seed(0)
    learn = position_probe_learner(load_eval_encoder('random', depth=1, device='cpu'), eval_dls(digits32, 100, device='cpu'))
    accs = [learn.validate()[1] for _ in range(2)]
    assert accs[0] == accs[1]                                       # the same drops at every validation

def state(m): return {k: v.detach().clone() for k, v in m.state_dict().items()}

def test_frozen_weights_stay_frozen(digits32):
    vit = load_eval_encoder('random', depth=2, seed=0, device='cpu')
    before = state(vit)
    set_seed(0)
    learn = position_probe_learner(vit, eval_dls(digits32, 100, device='cpu'), drop_ratio=0.75)
    head0 = state(learn.model.head)
    learn.fit_warmup_cos(1, 3e-3, warmup_epochs=0.1, wd=0.05)     # weight decay too: it must not reach the encoder
    assert any(not torch.equal(head0[k], v) for k, v in state(learn.model.head).items()), "the position probe did not train"
    lp = linear_probe_learner(vit, digits32, bs=100)
    lp.fit_warmup_cos(2, 1e-3, wd=0.05)
    knn_eval(vit, digits32, k=5)
    after = state(vit)
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"the frozen encoder changed: {changed}"

def corrupted(data:TensorData) -> TensorData:
    "The same training split; validation images replaced by noise and their labels shuffled."
    g = torch.Generator().manual_seed(1)
    vx = torch.randint(0, 256, data.valid_x.shape, generator=g, dtype=torch.uint8)
    vy = data.valid_y[torch.randperm(len(data.valid_y), generator=g)]
    return TensorData(data.train_x, data.train_y, vx, vy, data.classes)

def test_probes_never_train_on_validation(digits32):
    "Whatever the validation split holds, the trained heads are identical: only training data reaches the optimiser."
    heads = []
    for data in (digits32, corrupted(digits32)):
        vit = load_eval_encoder('random', depth=1, seed=0, device='cpu')
        set_seed(0)
        pp = position_probe_learner(vit, eval_dls(data, 100, device='cpu'))
        pp.fit_warmup_cos(2, 3e-3, warmup_epochs=0.1)
        set_seed(0)
        lp = linear_probe_learner(vit, data, bs=100)
        lp.fit_warmup_cos(2, 1e-3)
        heads.append((state(pp.model.head), state(lp.model)))
    for a, b in zip(*heads):
        for k in a: assert torch.equal(a[k], b[k]), f"{k} depends on the validation data"
    assert heads[0][1]['1.weight'].abs().sum() > 0

def test_finetune_never_trains_on_validation(digits16):
    weights = []
    small = eval_data(digits16, 16, max_items=256, max_valid=100)
    for data in (small, corrupted(small)):
        vit = load_eval_encoder('random', img_size=16, depth=1, drop_path_rate=0.1, seed=0, device='cpu')
        finetune(vit, data, epochs=2, bs=64, seed=0)
        weights.append(state(vit))
    for k in weights[0]: assert torch.equal(weights[0][k], weights[1][k]), f"{k} depends on the validation data"

def test_folder_of_images(tmp_path):
    "An image folder goes through the same functions: labels from the subfolders, any image size."
    colours = dict(red=(220, 20, 20), green=(20, 220, 20), blue=(20, 20, 220))
    for split, n in (('train', 6), ('valid', 3)):
        for c, rgb in colours.items():
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n): Image.new('RGB', (24 + 4 * i, 20 + 2 * i), rgb).save(tmp_path / split / c / f'{i}.jpg')
    data = eval_data(tmp_path, 16)
    assert data.classes == ['blue', 'green', 'red'] and data.train_x.shape == (18, 3, 16, 16) and len(data.valid_y) == 9
    res = knn_eval(load_eval_encoder('random', img_size=16, depth=1, device='cpu'), data, k=3)
    assert res['acc'] == 1.0, res                                  # plain colours: any encoder tells them apart
    with pytest.raises(FileNotFoundError, match='does not exist'): eval_data(tmp_path / 'nowhere', 16)

# ---- the command line ----

TINY = ['--img-size', '16', '--depth', '1', '--max-items', '128', '--max-valid', '64', '--quiet']

@pytest.mark.parametrize('protocol,metric,own', [('position', 'pos_acc', ['--epochs', '1']), ('linear', 'acc', ['--epochs', '1']),
                                                 ('knn', 'acc', ['--k', '5'])])     # each protocol's own options only
def test_cli_writes_json(run_cli, tmp_path, protocol, metric, own):
    r = run_cli('eval', '--protocol', protocol, '--checkpoint', 'random', *TINY, *own, '--bs', '32', '--out', tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((tmp_path / f'eval-{protocol}.json').read_text())
    assert rec['protocol'] == protocol and rec['checkpoint'] == 'random' and rec['data'] == 'mnist5k'
    assert 0 <= rec['metrics'][metric] <= 1 and rec['seconds'] > 0 and rec['n_train'] == 128 and rec['n_valid'] == 64
    assert rec['encoder']['img_size'] == 16 and rec['encoder']['depth'] == 1
    assert f"{rec['metrics'][metric]:.4f}" in r.stdout                # the figure is printed

@pytest.mark.slow
def test_cli_finetune_then_position_probe(run_cli, tmp_path):
    "Fine-tune, save the encoder, and position-probe it with nothing but --checkpoint: its settings come from the file."
    r = run_cli('eval', '--protocol', 'finetune', '--checkpoint', 'random', *TINY, '--epochs', '1', '--bs', '32', '--save-encoder',
                '--out', tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((tmp_path / 'eval-finetune.json').read_text())
    assert rec['settings']['layer_decay'] == 0.75 and rec['settings']['flip_p'] == 0. and len(rec['metrics']['lrs']) == 3
    ck = tmp_path / 'encoder-finetuned.safetensors'
    r = run_cli('eval', '--protocol', 'position', '--checkpoint', ck, '--max-items', '64', '--max-valid', '32',
                '--epochs', '1', '--bs', '32', '--drop-ratio', '0', '--quiet')
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((tmp_path / 'eval-position.json').read_text())      # next to the checkpoint by default
    assert rec['encoder']['img_size'] == 16 and rec['settings']['drop_ratio'] == 0 and rec['metrics']['n_positions'] == 16

@pytest.fixture
def tiny_encoder(tmp_path):
    cfg = dict(img_size=16, patch_size=4, depth=1, decoder_dim=32, decoder_heads=2, decoder_depth=1)
    return export_encoder(DropPos(**cfg), tmp_path / 'encoder.safetensors', arch='vit_tiny_patch16_224', img_size=16, patch_size=4)

@pytest.mark.parametrize('extra,message', [
    (['--protocol', 'pictures'], "invalid choice: 'pictures'"),
    (['--protocol', 'position', '--drop-ratio', '1'], '--drop-ratio 1.0 is not allowed: it must be in [0, 1)'),
    (['--protocol', 'knn', '--k', '500'], 'larger than the memory bank (128 training images)'),
    (['--protocol', 'linear', '--arch', 'vit_small'], 'another architecture'),
    (['--protocol', 'linear', '--img-size', '32'], 'another architecture'),
    (['--protocol', 'finetune', '--layer-decay', '1.5'], '--layer-decay 1.5 is not allowed: it must be in (0, 1]'),
])
def test_cli_bad_input(run_main, tmp_path, tiny_encoder, extra, message):
    r = run_main('eval', '--checkpoint', tiny_encoder, '--max-items', '128', '--max-valid', '16', '--quiet', *extra,
                '--out', tmp_path / 'out')
    assert r.returncode == 2 and message in r.stderr, (r.returncode, r.stderr[-2000:])

def test_cli_missing_checkpoint(run_main, tmp_path):
    r = run_main('eval', '--protocol', 'knn', '--checkpoint', tmp_path / 'none.safetensors')
    assert r.returncode == 2 and 'does not exist' in r.stderr and "'random'" in r.stderr
