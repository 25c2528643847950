"""Issue 17: bad input never crashes and never loses a run. Each row ends with exit status 2 and a one-line message
(no traceback) that leaves the files of a run byte for byte as they were, or with the documented success."""
import argparse, csv, hashlib, json, os, pickle, platform, shutil, warnings
from pathlib import Path
import numpy as np
import pytest, torch
from PIL import Image
from conftest import cli
from droppos_nb.droppos import DropPos
from droppos_nb.checkpoint import save_model

TINY = ['--epochs', '1', '--max-items', '128', '--bs', '64', '--depth', '2', '--decoder-dim', '64', '--decoder-heads', '4', '--quiet']
CFG = dict(img_size=32, patch_size=4, depth=2, decoder_dim=32, decoder_heads=16, decoder_depth=1)
DEAD_PID = 999_999_999          # no such process: a lock holding it is stale

def snapshot(folder:Path) -> dict:
    "Every file under `folder` (relative name -> SHA-256 of its bytes)."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}

def refused(r, *words):
    "Assert `r` ended with exit status 2 and a one-line message without a traceback that contains `words`; returns the message."
    err = r.stderr.strip()
    assert r.returncode == 2 and 'Traceback' not in err and len(err.splitlines()) == 1, (r.returncode, err[-2000:])
    for w in words: assert w in err, (w, err)
    return err.split('error: ', 1)[-1]

@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    "A finished one-epoch run (written once by the installed command)."
    out = tmp_path_factory.mktemp('finished') / 'run'
    r = cli('pretrain', *TINY, '--out', out); assert r.returncode == 0, r.stderr[-2000:]
    return out

@pytest.fixture
def run(finished, tmp_path):
    "A copy of the finished run that a test may change."
    shutil.copytree(finished, tmp_path / 'run')
    return tmp_path / 'run'

# --- runs are never lost -------------------------------------------------------------------------------------------

BAD_AT_RUN = [   # flags aimed at a finished run -> words of the message; the run's files stay byte-identical
    (TINY, ['already holds a run', '--resume', '--overwrite', 'another --out']),
    (['--epochs', '0'], ['--epochs 0 is not allowed']),
    (['--overwrite', '--data', 'nowhere', *TINY], ['data folder nowhere does not exist']),
    (['--resume', '{run}', '--overwrite'], ['pass one of them']),
    (['--resume', '{run}', '--arch', 'vit_small', '--bs', '32'], ['--arch vit_small (stored: vit_tiny)', '--bs 32 (stored: 64)']),
    (['--resume', '{run}', '--epochs', '0'], ['--epochs 0 (stored: 1)']),
    (['--resume', '{run}'], ['already finished its 1 epochs', '--epochs N with N > 1']),
    (['--overwrite', '--sigma', '-1', *TINY], ['--sigma -1.0 is not allowed: it must be >= 0']),
]

@pytest.mark.parametrize('flags,words', BAD_AT_RUN)
def test_bad_input_at_a_run_changes_nothing(run_main, run, flags, words):
    before = snapshot(run)
    flags = [str(run) if f == '{run}' else f for f in flags]
    refused(run_main('pretrain', *flags, *([] if '--resume' in flags else ['--out', run])), *words)
    assert snapshot(run) == before

OUT_OF_RANGE = [   # issue 25's probes that were accepted silently or ended in a traceback: now one line each, nothing written
    (['--decoder-depth', '-1'], '--decoder-depth -1 is not allowed: it must be a whole number of at least 1'),
    (['--max-items', '-5'], '--max-items -5 is not allowed'), (['--seed', '-1'], '--seed -1 is not allowed'),
    (['--seed', str(2 ** 70)], f'--seed {2 ** 70} is not allowed'), (['--betas', '1.5', '0.9'], '--betas 1.5 0.9 is not allowed'),
    (['--min-lr', '10', '--lr', '1e-4'], '--min-lr 10.0 is above --lr 0.0001'), (['--lr', 'inf'], '--lr inf is not allowed'),
    (['--wd', 'inf'], '--wd inf is not allowed'), (['--sigma', 'nan'], '--sigma nan is not allowed'),
    (['--tau', '0'], '--tau 0.0 is not allowed: it must be in (0, inf]'),
    (['--method', 'cae', '--regressor-depth', '-1'], '--regressor-depth -1 is not allowed'),
    (['--method', 'cae', '--layer-scale', '-1'], '--layer-scale -1.0 is not allowed: it must be >= 0'),
    (['--method', 'beitv2', '--early-layers', '0'], '--early-layers 0 is not allowed'),
    (['--method', 'mscn', '--mask-p', '0.5', '2'], '--mask-p 0.5 2.0 is not allowed: it must be in [0, 1]'),
    (['--num-workers', '-1'], '--num-workers -1 is not allowed')]

@pytest.mark.parametrize('flags,words', OUT_OF_RANGE, ids=lambda x: ' '.join(x) if isinstance(x, list) else None)
def test_out_of_range_is_refused_before_anything_is_written(run_main, tmp_path, flags, words):
    refused(run_main('pretrain', *flags, '--out', tmp_path / 'run'), words)
    assert not (tmp_path / 'run').exists()

@pytest.mark.parametrize('args,words', [
    (['pretrain', '--epochs', '0'], '--epochs 0 is not allowed: it must be a whole number of at least 1'),
    (['eval', '--protocol', 'knn', '--checkpoint', 'random', '--k', '0'], '--k 0 is not allowed'),
    (['viz', '--model', 'm.safetensors', '--dpi', '0'], '--dpi 0 is not allowed'),
    (['pretrain', '--method', 'mae', '--tau', '1'], '--tau is an option of droppos, which mae does not use: leave it out')])
def test_the_front_door_refuses_out_of_range_at_once(tmp_path, args, words):
    "The console script refuses an out-of-range value from the manifest, before importing the library (issue 26)."
    import time
    t0 = time.perf_counter()
    r = cli(*args, '--out', tmp_path / 'run')
    assert time.perf_counter() - t0 < 2, "the refusal took the slow path: is droppos_nb/cli_manifest.json current?"
    refused(r, words)

def test_overwrite_that_fails_later_keeps_the_old_run(run_main, run):
    "A loss that diverges (learning rate 1e30) stops the new run in its first epoch: exit 3, the old run's files as they were."
    before = snapshot(run)
    r = run_main('pretrain', '--overwrite', '--lr', '1e30', '--warmup-epochs', '0', *TINY, '--out', run)
    assert r.returncode == 3 and 'the old run is back' in r.stdout, (r.returncode, r.stdout[-500:], r.stderr[-500:])
    assert snapshot(run) == before

@pytest.mark.parametrize('mine', ['positions.png', 'encoder.safetensors', 'photo.jpg'])
def test_out_folder_of_other_files_is_refused(run_main, tmp_path, mine):
    "A folder holding a user's files but no run is refused as --out, even with --overwrite, and left as it was."
    out = tmp_path / 'mine'; out.mkdir(); (out / mine).write_bytes(b'the user\'s own file')
    before = snapshot(out)
    for extra in ([], ['--overwrite']):
        refused(run_main('pretrain', *TINY, *extra, '--out', out), f'holds files that are not a droppos_nb run ({mine})')
    assert snapshot(out) == before

def test_viz_and_eval_replace_no_file_without_overwrite(run_main, run, tmp_path):
    figs = tmp_path / 'figs'; figs.mkdir(); (figs / 'positions.png').write_bytes(b'an earlier figure')
    before = snapshot(figs)
    refused(run_main('viz', '--model', run / 'model.safetensors', '--out', figs, '--what', 'positions,attention', '--n', '2'),
            'already holds positions.png', '--overwrite')
    assert snapshot(figs) == before
    (run / 'encoder-finetuned.safetensors').write_bytes(b'an earlier fine-tuned encoder')
    before = snapshot(run)
    refused(run_main('eval', '--protocol', 'finetune', '--checkpoint', run / 'encoder.safetensors', '--save-encoder',
                     '--epochs', '1', '--max-items', '64', '--quiet'), 'encoder-finetuned.safetensors already exists')
    assert snapshot(run) == before

def test_live_lock_is_refused(run_main, run):
    (run / '.lock').write_text(f"{os.getpid()} {platform.node()}\n")       # this process plays the run still writing there
    before = snapshot(run)
    refused(run_main('pretrain', '--resume', run, '--epochs', '2'), f"in use by process {os.getpid()}", f"delete {run / '.lock'}")
    assert snapshot(run) == before

def test_resume_with_more_epochs_extends_and_takes_over_a_stale_lock(run_main, run):
    (run / '.lock').write_text(f"{DEAD_PID} {platform.node()}\n")          # left by a run killed with SIGKILL
    r = run_main('pretrain', '--resume', run, '--epochs', '2', '--quiet')
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'left by process {DEAD_PID}' in r.stderr and 'taking it over' in r.stderr
    assert 'extending the run from 1 to 2 epochs' in r.stdout and 'resuming' in r.stdout, r.stdout[-2000:]
    assert [row['epoch'] for row in csv.DictReader((run / 'metrics.csv').open())] == ['0', '1']
    cfg = json.loads((run / 'config.json').read_text())
    assert (cfg['epochs'], cfg['extended_from']) == (2, 1)
    assert torch.load(run / 'checkpoint.pt', weights_only=True)['epoch'] == 2
    assert not (run / '.lock').exists()

def test_out_is_a_file(run_main, tmp_path):
    f = tmp_path / 'notes.txt'; f.write_text('mine')
    refused(run_main('pretrain', *TINY, '--out', f), 'is a file, not a folder')
    refused(run_main('eval', '--protocol', 'knn', '--checkpoint', 'random', '--out', f), 'is a file, not a folder')
    assert f.read_text() == 'mine'

def test_failed_command_leaves_no_empty_folder(run_main, tmp_path):
    refused(run_main('pretrain', '--data', tmp_path / 'nowhere', *TINY, '--out', tmp_path / 'new'), 'does not exist')
    assert not (tmp_path / 'new').exists()

# --- one checkpoint loader ------------------------------------------------------------------------------------------

def bad_file(kind:str, d:Path) -> Path:
    "A checkpoint that cannot be used, of `kind`."
    good = save_model(DropPos(**CFG), d / 'good.safetensors', 'droppos', CFG)
    p = d / f'{kind}.safetensors'
    if kind == 'truncated': p.write_bytes(good.read_bytes()[:2000])
    elif kind == 'empty': p.touch()
    elif kind == 'garbage': p.write_bytes(b'garbage!' * 100)
    elif kind == 'folder': p = d / 'a_run'; p.mkdir(); shutil.copy(good, p / 'model.safetensors')
    elif kind == 'missing': p = d / 'missing.safetensors'
    elif kind == 'extra_kwargs': p = save_model(DropPos(**CFG), p, 'droppos', dict(CFG, pretrained=True))
    elif kind == 'bad_meta_type': p = save_model(DropPos(**CFG), p, 'droppos', dict(CFG, img_size='32'))
    elif kind == 'pickle':
        p = d / 'pickle.pth'
        torch.save(dict(model=DropPos(**CFG).state_dict(), evil=Path('x')), p)
    elif kind == 'os_system':                  # a code payload inside a torch.save file: loading it would create d/ran
        p = d / 'os_system.pth'
        torch.save(dict(model=DropPos(**CFG).state_dict(), evil=RunsOnLoad(d / 'ran')), p)
    elif kind == 'plain_pickle':               # the same payload as a bare pickle of protocol 5 (not a torch zip file)
        p = d / 'plain_pickle.pth'
        p.write_bytes(pickle.dumps(RunsOnLoad(d / 'ran'), protocol=5))
    return p

class RunsOnLoad:
    "Unpickling this creates the file `flag` (with os.system): the loader must never get that far."
    def __init__(self, flag): self.flag = flag
    def __reduce__(self): return (os.system, (f'touch {self.flag}',))

BAD_FILES = [('truncated', 'truncated, damaged or not a checkpoint'), ('empty', 'is empty (0 bytes)'),
             ('garbage', 'truncated, damaged or not a checkpoint'), ('folder', 'is a folder, not a file'),
             ('missing', 'does not exist'), ('extra_kwargs', 'setting(s) pretrained that DropPos does not take'),
             ('bad_meta_type', 'img_size'), ('pickle', 'could run on load (pathlib.'),
             ('os_system', 'could run on load (posix.system)'), ('plain_pickle', 'could run on load (posix.system)')]

@pytest.mark.parametrize('kind,words', BAD_FILES)
def test_viz_and_eval_say_the_same(run_main, tmp_path, kind, words):
    p = bad_file(kind, tmp_path)
    v = refused(run_main('viz', '--model', p, '--out', tmp_path / 'figs'), words)
    e = refused(run_main('eval', '--protocol', 'knn', '--checkpoint', p, '--out', tmp_path / 'ev'), words)
    assert v == e
    assert 'weights_only' not in v
    assert not (tmp_path / 'figs').exists() and not (tmp_path / 'ev').exists()
    assert not (tmp_path / 'ran').exists()                    # no payload ran

def test_viz_layer_out_of_range(run_main, tmp_path):
    ck = save_model(DropPos(**CFG), tmp_path / 'model.safetensors', 'droppos', CFG)
    refused(run_main('viz', '--model', ck, '--layer', '99', '--out', tmp_path / 'figs'), '--layer 99 is out of range', '0 to 1', '-2 to -1')
    assert not (tmp_path / 'figs').exists()

# --- images ---------------------------------------------------------------------------------------------------------

def image_folder(root:Path, n_train:int=12, n_valid:int=4) -> Path:
    "train/ and valid/ with two class subfolders of small random PNGs."
    rng = np.random.default_rng(0)
    for split, n in (('train', n_train), ('valid', n_valid)):
        for c in ('a', 'b'):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n // 2):
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / split / c / f'{i}.png')
    return root

def test_bad_images_are_skipped_with_a_warning(tmp_path):
    data = image_folder(tmp_path / 'data')
    (data / 'train' / 'a' / 'zero.jpg').touch()
    (data / 'train' / 'b' / 'junk.jpg').write_bytes(b'no picture here' * 20)
    r = cli('pretrain', '--data', data, *TINY[:2], '--bs', '4', '--depth', '1', '--decoder-dim', '32', '--decoder-heads', '4', '--quiet',
            '--out', tmp_path / 'run')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'skipping 2 image(s)' in r.stderr and 'zero.jpg (empty file)' in r.stderr and 'junk.jpg (unreadable' in r.stderr
    assert (tmp_path / 'run' / 'model.safetensors').exists()

def test_too_few_images_left(run_main, tmp_path):
    data = image_folder(tmp_path / 'data', n_train=2)
    for f in (data / 'train').rglob('*.png'): f.write_bytes(b'')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        refused(run_main('pretrain', '--data', data, *TINY[:2], '--bs', '2', '--out', tmp_path / 'run'),
                'no usable images in the training folder')
    assert not (tmp_path / 'run').exists()

def test_max_image_pixels(monkeypatch, tmp_path):
    import droppos_nb.data as D
    data = image_folder(tmp_path / 'data', n_train=4, n_valid=2)
    Image.new('RGB', (200, 200)).save(data / 'train' / 'a' / 'big.png')
    monkeypatch.setattr(D, 'MAX_IMAGE_PIXELS', 100 * 100)
    with pytest.warns(UserWarning, match=r'big.png \(200x200: more than MAX_IMAGE_PIXELS = 10,000 pixels\)'):
        dls = D.folder_dls(data, 16, bs=2, num_workers=0, device='cpu')
    assert len(dls.train_ds) == 4
    assert D.image_problem(data / 'train' / 'a' / '0.png') is None
    from PIL import Image as I
    assert I.MAX_IMAGE_PIXELS == 100 * 100          # PIL's own guard follows the setting
    monkeypatch.setattr(D, 'MAX_IMAGE_PIXELS', 50_000_000); D.image_problem(data / 'train' / 'a' / '0.png')

def test_eval_skips_bad_images_too(tmp_path):
    "The evaluation protocols read image folders through the same check: the bad file is named and the others are used."
    from droppos_nb.evaluation import folder_data
    data = image_folder(tmp_path / 'data')
    (data / 'valid' / 'a' / 'broken.png').write_bytes(b'\x89PNG not really')
    with pytest.warns(UserWarning, match=r'skipping 1 image\(s\).*broken.png'):
        d = folder_data(data, 16, num_workers=0)
    assert (len(d.train_x), len(d.valid_x)) == (12, 4) and d.classes == ['a', 'b']

def test_eval_does_not_replace_a_result(run_main, tmp_path):
    "A second measurement into the same folder is refused (the first result stays byte-identical) unless --overwrite is given."
    flags = ('eval', '--protocol', 'knn', '--checkpoint', 'random', '--img-size', '16', '--depth', '1', '--k', '5',
             '--max-items', '64', '--max-valid', '32', '--quiet', '--out', tmp_path / 'ev')
    assert run_main(*flags).returncode == 0
    before = (tmp_path / 'ev' / 'eval-knn.json').read_bytes()
    refused(run_main(*flags), 'already holds a knn result', '--overwrite')
    assert (tmp_path / 'ev' / 'eval-knn.json').read_bytes() == before
    assert run_main(*flags, '--overwrite').returncode == 0

@pytest.mark.parametrize('flags,words', [(('--k', '0'), '--k 0 is not allowed'), (('--temperature', '0'), '--temperature 0.0 is not allowed'),
                                         (('--lr', '-1'), '--lr -1.0 is not allowed'), (('--min-scale', '1.5'), '--min-scale 1.5')])
def test_bad_eval_flags(run_main, tmp_path, flags, words):
    refused(run_main('eval', '--protocol', 'knn', '--checkpoint', 'random', *flags, '--out', tmp_path / 'ev'), words)
    assert not (tmp_path / 'ev').exists()

def test_resume_with_a_damaged_config(run_main, tmp_path):
    "A run folder whose config.json is broken: the message names the file, not just the JSON parser's complaint."
    (tmp_path / 'run').mkdir(); (tmp_path / 'run' / 'config.json').write_text('{"epochs": 3,')
    refused(run_main('pretrain', '--resume', tmp_path / 'run'), 'config.json is damaged', 'cannot be resumed')
    (tmp_path / 'run' / 'config.json').write_text('[1, 2]')
    refused(run_main('pretrain', '--resume', tmp_path / 'run'), "is not a run's configuration")
