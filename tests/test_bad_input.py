"""Issues 17 and 25: bad input never crashes and never loses a run. One table, `CASES`, holds a row for each probe of
issue 25's four classes (a traceback, a silent acceptance, an unclear message, data lost): the command line run in
this process, and what must come of it: exit status 2 with a one-line message (no traceback) that holds the row's
words, or the documented success; the files of a finished run stay byte for byte as they were unless the row says
otherwise, and a refused command leaves no new folder behind."""
import argparse, csv, hashlib, json, os, pickle, platform, shutil, warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
import numpy as np
import pytest, torch
from PIL import Image
from conftest import cli
from droppos_nb.droppos import DropPos
from droppos_nb.checkpoint import save_model, atomic_save

TINY = ['--epochs', '1', '--max-items', '128', '--bs', '64', '--img-size', '16', '--depth', '1', '--decoder-dim', '32',
        '--decoder-heads', '4', '--quiet']
CFG = dict(img_size=16, patch_size=4, depth=1, decoder_dim=32, decoder_heads=4, decoder_depth=1)
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

# --- the table -------------------------------------------------------------------------------------------------------

@dataclass
class Case:
    "One probe: `argv` ({run}: a copy of a finished run, {new}: a folder that does not exist, {bad:KIND}: `bad_file`)."
    cls: str                                  # issue 25's class: traceback, silent, unclear, lost (or success)
    argv: list
    words: tuple = ()                         # phrases of the one-line refusal (exit status 2)
    code: int = 2                             # 0: the documented success
    setup: Callable|None = None               # (run, tmp_path) -> None: prepares the files before the snapshot
    changes: bool = False                     # whether the run's files may change
    marks: tuple = ()

def set_config(**kv):
    "A setup that writes `kv` into the run's config.json (a file edited by hand)."
    def setup(run, tmp):
        p = run / 'config.json'
        p.write_text(json.dumps({**json.loads(p.read_text()), **kv}))
    return setup

def foreign_checkpoint(run, tmp):
    """A setup that puts another model's training checkpoint in the run (a checkpoint.pt copied from elsewhere): a wider
    encoder, saved the way `EpochCheckpoint` saves one."""
    ck = torch.load(run / 'checkpoint.pt', map_location='cpu', weights_only=True)
    ck['model'] = {k: torch.zeros(*v.shape[:-1], v.shape[-1] * 2) if v.ndim else v for k, v in ck['model'].items()}
    torch.save(ck, run / 'checkpoint.pt')

def user_file(name):
    "A setup that leaves a file of the user's in {new}: a folder that holds no run."
    def setup(run, tmp): (tmp / 'new').mkdir(); (tmp / 'new' / name).write_bytes(b"the user's own file")
    return setup

P, E, V = ['pretrain', '--out', '{new}'], ['eval', '--checkpoint', 'random', '--out', '{new}'], ['viz', '--out', '{new}']
KNN, MODEL, ENC = ['--protocol', 'knn'], ['--model', '{run}/model.safetensors'], ['--model', '{run}/encoder.safetensors']
no_cuda = (pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),)
CASES = [
    # a traceback before: one line now
    Case('traceback', [*P, '--decoder-dim', '0'], ('--decoder-dim 0 is not allowed: it must be a whole number of at least 1',)),
    Case('traceback', [*P, '--decoder-dim', '-8'], ('--decoder-dim -8 is not allowed',)),
    Case('traceback', [*P, '--depth', '-2'], ('--depth -2 is not allowed',)),
    Case('traceback', [*P, '--embed-dim', '0'], ('--embed-dim 0 is not allowed',)),
    Case('traceback', [*P, '--embed-dim', '100', '--num-heads', '3'], ('--num-heads 3 does not divide --embed-dim 100',)),
    Case('traceback', [*P, '--num-workers', '-1'], ('--num-workers -1 is not allowed: it must be a whole number of at least 0',)),
    Case('traceback', [*P, '--device', 'cuda'], ('device cuda was asked for', 'no CUDA GPU'), marks=no_cuda),
    Case('traceback', [*P, '--arch', 'resnet18'], ('--arch resnet18 does not fit droppos: it takes a ViT',)),
    Case('traceback', [*P, '--method', 'mscn', '--arch', 'vit_tiny'], ('--arch vit_tiny does not fit mscn: it takes a ConvNet',)),
    Case('traceback', ['pretrain', '--resume', '{run}'], ('config.json holds "epochs": "3", which is not allowed',
                                                         'a whole number of at least 1'), setup=set_config(epochs='3')),
    Case('traceback', ['pretrain', '--resume', '{run}'], ('config.json holds "lr": -1,',), setup=set_config(lr=-1)),
    Case('traceback', ['pretrain', '--resume', '{run}'], ('config.json holds "arch": 7, which is not allowed: it must be text',),
         setup=set_config(arch=7)),
    Case('traceback', ['pretrain', '--resume', '{run}'], ('config.json names a method that does not exist here',),
         setup=set_config(method='simclr')),
    Case('traceback', [*E, *KNN, '--num-heads', '0'], ('--num-heads 0 is not allowed',)),
    Case('traceback', [*E, *KNN, '--embed-dim', '100', '--num-heads', '3'], ('--num-heads 3 does not divide --embed-dim 100',)),
    Case('traceback', [*V, *MODEL, '--decoder-heads', '-1'], ('--decoder-heads -1 is not allowed',)),
    *[Case('traceback', [*V, '--model', f'{{bad:{k}}}'], (w,)) for k, w in [
        ('bad_meta_type', "img_size='32'"), ('neg_depth', 'its config sets depth=-2, which is not allowed'),
        ('huge', 'TB (img_size=4000000, patch_size=4'), ('str_tensor', 'its entry pos_embed is a str, not a tensor'),
        ('pos_1d', 'encoder.pos_embed has shape (192,), not (1, tokens, width)')]],
    # accepted silently before: refused now
    Case('silent', [*P, '--decoder-depth', '-1'], ('--decoder-depth -1 is not allowed: it must be a whole number of at least 1',)),
    Case('silent', [*P, '--max-items', '-5'], ('--max-items -5 is not allowed',)),
    Case('silent', [*P, '--seed', '-1'], ('--seed -1 is not allowed',)),
    Case('silent', [*P, '--betas', '1.5', '0.9'], ('--betas 1.5 0.9 is not allowed',)),
    Case('silent', [*P, '--min-lr', '10', '--lr', '1e-4'], ('--min-lr 10.0 is above --lr 0.0001',)),
    Case('silent', [*P, '--lr', 'inf'], ('--lr inf is not allowed',)),
    Case('silent', [*P, '--wd', 'inf'], ('--wd inf is not allowed',)),
    Case('silent', [*P, '--sigma', 'nan'], ('--sigma nan is not allowed',)),
    Case('silent', [*P, '--tau', '0'], ('--tau 0.0 is not allowed: it must be in (0, inf]',)),
    Case('silent', [*P, '--method', 'cae', '--regressor-depth', '-1'], ('--regressor-depth -1 is not allowed',)),
    Case('silent', [*P, '--method', 'cae', '--layer-scale', '-1'], ('--layer-scale -1.0 is not allowed: it must be >= 0',)),
    Case('silent', [*P, '--method', 'beitv2', '--early-layers', '0'], ('--early-layers 0 is not allowed',)),
    Case('silent', [*P, '--method', 'beitv2', '--layer-scale', '-1'], ('--layer-scale -1.0 is not allowed',)),
    Case('silent', [*P, '--method', 'mae', '--tau', '1'], ('--tau is an option of droppos, which mae does not use: leave it out',)),
    Case('silent', [*E, *KNN, '--epochs', '5'], ('--epochs is an option of protocols position, linear, finetune, which protocol '
                                                 'knn does not use: leave it out',)),
    Case('silent', [*E, *KNN, '--lr', '1e-3'], ('--lr is an option of protocols position, linear, finetune',)),
    Case('silent', [*E, '--protocol', 'position', '--pool', 'cls'], ('--pool is an option of protocols linear, knn, finetune, '
                                                                     'which protocol position does not use',)),
    Case('silent', [*E, '--protocol', 'linear', '--k', '5'], ('--k is an option of protocol knn, which protocol linear',)),
    Case('silent', [*E, *KNN, '--save-encoder'], ('--save-encoder is an option of protocol finetune',)),
    Case('silent', [*E, *KNN, '--k', '0'], ('--k 0 is not allowed',)),
    Case('silent', [*E, *KNN, '--temperature', '0'], ('--temperature 0.0 is not allowed',)),
    Case('silent', [*E, '--protocol', 'linear', '--lr', '-1'], ('--lr -1.0 is not allowed',)),
    Case('silent', [*E, '--protocol', 'finetune', '--min-scale', '1.5'], ('--min-scale 1.5',)),
    Case('silent', ['eval', *KNN, '--checkpoint', '{bad:nan}', '--out', '{new}'],
         ('tensor encoder.blocks.0.attn.qkv.weight holds', 'NaN or infinite value(s)', 'diverged')),
    Case('silent', [*V, '--model', '{bad:nan}'], ('NaN or infinite value(s)',)),
    Case('silent', [*V, '--model', '{bad:wrong_shape}'], ('encoder.pos_embed holds 5 tokens, but its metadata (img_size=16, '
                                                          'patch_size=4) gives a 4x4 grid',)),
    Case('silent', [*V, *ENC, '--what', 'positions'], ('encoder.safetensors holds an encoder only', 'untrained decoder',
                                                       '--what attention,rollout')),
    Case('silent', [*V, *ENC], ('holds an encoder only',)),          # all: the method's figures too
    Case('silent', [*V, *MODEL, '--what', ''], ("--what '' names no figure",)),
    Case('silent', [*V, *MODEL, '--what', ' , '], ("names no figure",)),
    Case('silent', [*V, *MODEL, '--tau', '0'], ('--tau 0.0 is not allowed: it must be in (0, inf]',)),
    Case('silent', [*V, *MODEL, '--dpi', '0'], ('--dpi 0 is not allowed',)),
    Case('silent', [*V, *MODEL, '--layer', '99'], ('--layer 99 is out of range', '0 to 0', '-1 to -1')),
    # an unclear message before: one that names the problem now
    Case('unclear', [*P, '--seed', str(2 ** 70)], (f'--seed {2 ** 70} is not allowed',)),
    Case('unclear', [*P, '--method', 'mscn', '--mask-p', '0.5', '2'], ('--mask-p 0.5 2.0 is not allowed: it must be in [0, 1]',)),
    Case('unclear', [*V, '--model', '{bad:pos_0}'], ('encoder.pos_embed has shape (1, 1, 192)', 'at least one patch token')),
    Case('unclear', [*V, '--model', '{bad:small_image}'], ('no patch fits in the image (0 patch tokens)',)),
    Case('unclear', ['pretrain', *TINY, '--out', '/sys/droppos_nb_probe/run'], ('/sys/droppos_nb_probe', 'may write there')),
    Case('unclear', ['viz', *MODEL, '--out', '/sys/droppos_nb_probe/figs'], ('/sys/droppos_nb_probe', 'may write there')),
    Case('unclear', ['pretrain', '--resume', '{new}'], ('is not a run folder (no config.json)',)),
    Case('unclear', [*P, *TINY, '--data', 'nowhere'], ('data folder nowhere does not exist',)),
    # data lost before: refused with the run as it was
    Case('lost', ['pretrain', *TINY, '--out', '{run}'], ('already holds a run', '--resume', '--overwrite', 'another --out')),
    Case('lost', ['pretrain', '--overwrite', '--sigma', '-1', *TINY, '--out', '{run}'], ('--sigma -1.0 is not allowed: it must be >= 0',)),
    Case('lost', ['pretrain', '--overwrite', '--lr', 'inf', *TINY, '--out', '{run}'], ('--lr inf is not allowed',)),
    Case('lost', ['pretrain', '--overwrite', '--data', 'nowhere', *TINY, '--out', '{run}'], ('data folder nowhere does not exist',)),
    Case('lost', ['pretrain', '--epochs', '0', '--out', '{run}'], ('--epochs 0 is not allowed',)),
    Case('lost', ['pretrain', '--resume', '{run}', '--overwrite'], ('pass one of them',)),
    Case('lost', ['pretrain', '--resume', '{run}', '--arch', 'vit_small', '--bs', '32'],
         ('--arch vit_small (stored: vit_tiny)', '--bs 32 (stored: 64)')),
    Case('lost', ['pretrain', '--resume', '{run}', '--epochs', '0'], ('--epochs 0 (stored: 1)',)),
    Case('lost', ['pretrain', '--resume', '{run}', '--epochs', '2'], ('checkpoint.pt',), setup=foreign_checkpoint),
    Case('lost', ['pretrain', '--resume', '{run}'], ('already finished its 1 epochs', '--epochs N with N > 1')),
    Case('lost', ['pretrain', '--resume', '{run}', '--epochs', '2'], ('in use by process', 'delete'),
         setup=lambda run, tmp: (run / '.lock').write_text(f"{os.getpid()} {platform.node()}\n")),
    *[Case('lost', [*P, *TINY, *extra], (f'holds files that are not a droppos_nb run ({name})',), setup=user_file(name))
      for name in ('positions.png', 'encoder.safetensors', 'photo.jpg') for extra in ([], ['--overwrite'])],
    Case('lost', ['viz', *MODEL, '--out', '{run}', '--what', 'positions,attention'], ('already holds positions.png', '--overwrite')),
    Case('lost', ['eval', '--protocol', 'finetune', '--checkpoint', '{run}/encoder.safetensors', '--save-encoder', '--epochs', '1',
                  '--max-items', '64', '--quiet'], ('encoder-finetuned.safetensors already exists',),
         setup=lambda run, tmp: (run / 'encoder-finetuned.safetensors').write_bytes(b'an earlier fine-tuned encoder')),
    Case('lost', ['pretrain', *TINY, '--out', '{run}/config.json'], ('is a file, not a folder',)),
    Case('lost', [*E, *KNN, '--out', '{run}/config.json'], ('is a file, not a folder',)),
    # the documented successes beside them
    Case('success', [*V, *ENC, '--what', 'attention', '--n', '2', '--dpi', '30'], code=0),
    Case('success', [*E, *KNN, '--img-size', '16', '--depth', '1', '--k', '5', '--max-items', '64', '--max-valid', '32',
                     '--quiet'], code=0),
]

def case_id(c:Case) -> str:
    "The row's class and command (TINY's flags as TINY), and what its setup did to the files."
    cmd = ' '.join(c.argv).replace(' '.join(TINY), 'TINY').replace(' --out {new}', '')
    return f"{c.cls}: {cmd}" + (f" ({c.words[0][:40]})" if c.setup else '')

@pytest.mark.parametrize('case', [pytest.param(c, marks=c.marks, id=case_id(c)) for c in CASES])
def test_bad_input(run_main, run, tmp_path, case):
    "Each row of `CASES`: its exit status, its one line without a traceback, the run's files as they were, no new folder."
    if case.setup: case.setup(run, tmp_path)
    before, new = snapshot(run), tmp_path / 'new'
    made = new.exists()
    def fill(a:str) -> str:
        if a.startswith('{bad:'): return str(bad_file(a[5:-1], tmp_path / 'files'))
        return a.replace('{run}', str(run)).replace('{new}', str(new))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        r = run_main(*map(fill, case.argv))
    if case.code == 2: refused(r, *case.words)
    else: assert r.returncode == case.code and 'Traceback' not in r.stderr, (r.returncode, r.stderr[-2000:])
    if not case.changes: assert snapshot(run) == before
    if case.code == 2 and not made: assert not new.exists()          # nothing was written for a refused command
    if case.code == 2: assert not (tmp_path / 'files' / 'ran').exists()

def test_the_table_covers_every_class():
    assert {c.cls for c in CASES} == {'traceback', 'silent', 'unclear', 'lost', 'success'}

@pytest.mark.parametrize('args,words', [
    (['pretrain', '--epochs', '0'], '--epochs 0 is not allowed: it must be a whole number of at least 1'),
    (['eval', '--protocol', 'knn', '--checkpoint', 'random', '--k', '0'], '--k 0 is not allowed'),
    (['eval', '--protocol', 'knn', '--checkpoint', 'random', '--epochs', '5'], '--epochs is an option of protocols position, linear'),
    (['viz', '--model', 'm.safetensors', '--dpi', '0'], '--dpi 0 is not allowed'),
    (['pretrain', '--arch', 'resnet18'], '--arch resnet18 does not fit droppos'),
    (['pretrain', '--method', 'mae', '--tau', '1'], '--tau is an option of droppos, which mae does not use: leave it out')])
def test_the_front_door_refuses_out_of_range_at_once(tmp_path, args, words):
    "The console script refuses from the manifest, before importing the library (issue 26), with the library's words."
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

# --- one checkpoint loader ------------------------------------------------------------------------------------------

def bad_file(kind:str, d:Path) -> Path:
    "A checkpoint that cannot be used, of `kind`."
    d.mkdir(parents=True, exist_ok=True)
    model = DropPos(**CFG)
    good = save_model(model, d / 'good.safetensors', 'droppos', CFG)
    p = d / f'{kind}.safetensors'
    sd = model.state_dict()
    def with_tensor(k, v): return atomic_save({**sd, k: v}, p, dict(method='droppos', config=json.dumps(CFG)))
    if kind == 'truncated': p.write_bytes(good.read_bytes()[:2000])
    elif kind == 'empty': p.touch()
    elif kind == 'garbage': p.write_bytes(b'garbage!' * 100)
    elif kind == 'folder': p = d / 'a_run'; p.mkdir(); shutil.copy(good, p / 'model.safetensors')
    elif kind == 'missing': p = d / 'missing.safetensors'
    elif kind == 'extra_kwargs': p = save_model(model, p, 'droppos', dict(CFG, pretrained=True))
    elif kind == 'bad_meta_type': p = save_model(model, p, 'droppos', dict(CFG, img_size='32'))
    elif kind == 'neg_depth': p = save_model(model, p, 'droppos', dict(CFG, depth=-2))
    elif kind == 'huge': p = save_model(model, p, 'droppos', dict(CFG, img_size=4_000_000))      # about 900 TB of weights
    elif kind == 'small_image': p = save_model(model, p, 'droppos', dict(CFG, patch_size=32))
    elif kind == 'pos_1d': with_tensor('encoder.pos_embed', torch.zeros(192))
    elif kind == 'pos_0': with_tensor('encoder.pos_embed', torch.zeros(1, 1, 192))               # [CLS] and no patch
    elif kind == 'wrong_shape': with_tensor('encoder.pos_embed', torch.zeros(1, 5, 192))
    elif kind == 'nan':
        w = sd['encoder.blocks.0.attn.qkv.weight'].clone(); w[0, :3] = float('nan')
        with_tensor('encoder.blocks.0.attn.qkv.weight', w)
    elif kind == 'str_tensor':
        p = d / 'str_tensor.pth'
        torch.save(dict(model={**{k.removeprefix('encoder.'): v for k, v in sd.items()}, 'pos_embed': 'not weights'}), p)
    elif kind == 'pickle':
        p = d / 'pickle.pth'
        torch.save(dict(model=model.state_dict(), evil=Path('x')), p)
    elif kind == 'os_system':                  # a code payload inside a torch.save file: loading it would create d/ran
        p = d / 'os_system.pth'
        torch.save(dict(model=model.state_dict(), evil=RunsOnLoad(d / 'ran')), p)
    elif kind == 'plain_pickle':               # the same payload as a bare pickle of protocol 5 (not a torch zip file)
        p = d / 'plain_pickle.pth'
        p.write_bytes(pickle.dumps(RunsOnLoad(d / 'ran'), protocol=5))
    else: raise ValueError(kind)
    return p

class RunsOnLoad:
    "Unpickling this creates the file `flag` (with os.system): the loader must never get that far."
    def __init__(self, flag): self.flag = flag
    def __reduce__(self): return (os.system, (f'touch {self.flag}',))

BAD_FILES = [('truncated', 'truncated, damaged or not a checkpoint'), ('empty', 'is empty (0 bytes)'),
             ('garbage', 'truncated, damaged or not a checkpoint'), ('folder', 'is a folder, not a file'),
             ('missing', 'does not exist'), ('extra_kwargs', 'setting(s) pretrained that DropPos does not take'),
             ('bad_meta_type', 'img_size'), ('pickle', 'could run on load (pathlib.'),
             ('os_system', 'could run on load (posix.system)'), ('plain_pickle', 'could run on load (posix.system)'),
             ('neg_depth', 'depth=-2'), ('huge', "more than this machine's"), ('small_image', '0 patch tokens'),
             ('pos_1d', 'shape (192,)'), ('pos_0', 'at least one patch token'), ('wrong_shape', 'holds 5 tokens'),
             ('nan', 'holds 3 NaN or infinite value(s)'), ('str_tensor', 'is a str, not a tensor')]

@pytest.mark.parametrize('kind,words', BAD_FILES)
def test_viz_and_eval_say_the_same(run_main, tmp_path, kind, words):
    p = bad_file(kind, tmp_path)
    v = refused(run_main('viz', '--model', p, '--out', tmp_path / 'figs'), words)
    e = refused(run_main('eval', '--protocol', 'knn', '--checkpoint', p, '--out', tmp_path / 'ev'), words)
    assert v == e
    assert 'weights_only' not in v
    assert not (tmp_path / 'figs').exists() and not (tmp_path / 'ev').exists()
    assert not (tmp_path / 'ran').exists()                    # no payload ran

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
    r = cli('pretrain', '--data', data, *TINY[:2], '--bs', '4', '--img-size', '16', '--depth', '1', '--decoder-dim', '32',
            '--decoder-heads', '4', '--quiet', '--out', tmp_path / 'run')
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

def test_resume_with_a_damaged_config(run_main, tmp_path):
    "A run folder whose config.json is broken: the message names the file, not just the JSON parser's complaint."
    (tmp_path / 'run').mkdir(); (tmp_path / 'run' / 'config.json').write_text('{"epochs": 3,')
    refused(run_main('pretrain', '--resume', tmp_path / 'run'), 'config.json is damaged', 'cannot be resumed')
    (tmp_path / 'run' / 'config.json').write_text('[1, 2]')
    refused(run_main('pretrain', '--resume', tmp_path / 'run'), "is not a run's configuration")
