"""Every method trains on an image folder, the way a user's own images, Imagenette and CIFAR reach it (issue 25: MoCo v3
and Masked Siamese ConvNets could not: fastai's DataBlock asked for one getter per view). The folder holds crops of
the photographs that ship with scikit-image, in class subfolders, with a grayscale and an RGBA file among them. Each run
is one short epoch in this process (`cli.main`): the point is the path from files to a trained, exported encoder, not
learning (tests/test_learning.py, test_mae_cae.py, test_mocov3.py and test_mscn.py check that)."""
import csv
from pathlib import Path
import pytest
from PIL import Image
from safetensors.torch import load_file
from droppos_nb.data import load_photo

pytestmark = pytest.mark.slow   # trains models: `pytest -m 'not slow'` skips it

SMALL_VIT = ['--img-size', '32', '--patch-size', '8', '--depth', '1', '--embed-dim', '64', '--num-heads', '2']
METHODS = {'droppos': SMALL_VIT + ['--decoder-dim', '32', '--decoder-heads', '2', '--decoder-depth', '1'],
           'mae': SMALL_VIT + ['--decoder-dim', '32', '--decoder-heads', '2', '--decoder-depth', '1'],
           'cae': SMALL_VIT + ['--decoder-depth', '1', '--regressor-depth', '1'],
           'mocov3': SMALL_VIT, 'mscn': ['--img-size', '32']}

@pytest.fixture(scope='module')
def photo_folder(tmp_path_factory):
    "train/ (16 crops) and valid/ (8), in two class subfolders, written as image files of several modes."
    root = tmp_path_factory.mktemp('photos')
    for split, k in (('train', 8), ('valid', 4)):
        for c in ('astronaut', 'coffee'):
            (root / split / c).mkdir(parents=True)
            img = load_photo(c).permute(1, 2, 0).numpy()
            for i in range(k):
                im = Image.fromarray(img[24 * i:24 * i + 64, 30 * i:30 * i + 80])
                im = im.convert('L') if i == 1 else im.convert('RGBA') if i == 2 else im
                im.save(root / split / c / f'{c}_{i}.png')
    return root

@pytest.mark.parametrize('method', list(METHODS))
def test_every_method_trains_on_an_image_folder(run_main, photo_folder, tmp_path, method):
    out = tmp_path / method
    r = run_main('pretrain', '--method', method, '--data', photo_folder, *METHODS[method], '--epochs', '1', '--bs', '8',
                 '--quiet', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader((out / 'metrics.csv').open()))
    assert len(rows) == 1 and float(rows[0]['train_loss']) > 0, rows
    enc = load_file(out / 'encoder.safetensors')
    assert enc and all(t.isfinite().all() for t in enc.values())

def test_the_beitv2_chain_trains_on_an_image_folder(run_main, photo_folder, tmp_path):
    "The other two methods, in their chain: a DropPos encoder trained on the folder teaches VQ-KD, whose codes BEiT v2 predicts."
    def pretrain(name, *flags):
        r = run_main('pretrain', '--data', photo_folder, *SMALL_VIT, *flags, '--epochs', '1', '--bs', '8', '--quiet',
                     '--out', tmp_path / name)
        assert r.returncode == 0, r.stderr[-3000:]
        assert len(list(csv.DictReader((tmp_path / name / 'metrics.csv').open()))) == 1
        return tmp_path / name
    teacher = pretrain('teacher', '--method', 'droppos', *METHODS['droppos'][len(SMALL_VIT):])
    tok = pretrain('vqkd', '--method', 'vqkd', '--teacher', teacher / 'encoder.safetensors', '--codebook-size', '16')
    beit = pretrain('beitv2', '--method', 'beitv2', '--tokenizer', tok / 'model.safetensors')
    enc = load_file(beit / 'encoder.safetensors')
    assert enc and all(t.isfinite().all() for t in enc.values())
