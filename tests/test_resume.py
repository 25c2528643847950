"""A run stopped in the middle and resumed ends with the same metrics and weights as an uninterrupted run: killed with
SIGKILL (it resumes from its last epoch checkpoint) or stopped with SIGTERM (it saves where it is, exits with status
143 and resumes from that batch)."""
import csv, json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from conftest import ROOT, cli, wait_for_first_epoch

pytestmark = pytest.mark.slow   # trains models, or drives processes or a browser: `pytest -m 'not slow'` skips it

ARGS = ['--epochs', '3', '--max-items', '256', '--bs', '64', '--decoder-dim', '64', '--decoder-heads', '4', '--quiet', '--seed', '3',
        '--recipe', 'paper', '--depth', '4']   # the paper recipe's ViT-Tiny with 4 px patches, in fp32, cut to 4 blocks (exactness
                                               # does not depend on the depth; 12 blocks took 3 minutes for the module)
COLS = ['epoch', 'train_loss', 'valid_loss', 'pos_acc', 'sigma', 'lr']

def rows(out): return [{k: r[k] for k in COLS} for r in csv.DictReader((out / 'metrics.csv').open())]

@pytest.fixture(scope='module')
def full(tmp_path_factory):
    "The uninterrupted run."
    out = tmp_path_factory.mktemp('full') / 'run'
    r = cli('pretrain', *ARGS, '--out', out); assert r.returncode == 0, r.stderr[-2000:]
    return out

def stop_after_first_epoch(cut, signum, wait=0.):
    "Start the run, send it `signum` `wait` seconds after its first epoch is logged and checkpointed; returns the finished process."
    exe = Path(sys.executable).with_name('droppos_nb')
    p = subprocess.Popen([str(exe), 'pretrain', *ARGS, '--out', str(cut)], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    wait_for_first_epoch(p, cut)
    time.sleep(wait)
    p.send_signal(signum); p.wait(timeout=300)
    assert len(rows(cut)) < 3, "the run finished before it was stopped"
    return p

def resume_matches(cut, full, quiet=True):
    "Resume `cut` (with the progress bar shown unless `quiet`): it must end with the metrics and weights of `full`."
    r = cli('pretrain', '--resume', cut, *(['--quiet'] if quiet else []))
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'resuming' in r.stdout
    assert rows(cut) == rows(full)                       # every logged figure, to the last digit
    a, b = load_file(full / 'encoder.safetensors'), load_file(cut / 'encoder.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def test_sigkill_and_resume_matches_uninterrupted(full, tmp_path):
    stop_after_first_epoch(tmp_path / 'cut', signal.SIGKILL)
    resume_matches(tmp_path / 'cut', full, quiet=False)          # the default: progress shown (issue 28)

def test_sigterm_saves_and_resumes_where_it_stopped(full, tmp_path):
    cut = tmp_path / 'cut'
    p = stop_after_first_epoch(cut, signal.SIGTERM, wait=0.5)     # most likely in the middle of the second epoch
    err = p.stderr.read()
    print(err.strip().splitlines()[-1])
    assert p.returncode == 128 + signal.SIGTERM, (p.returncode, err[-2000:])
    assert 'stopped by SIGTERM' in err and f'--resume {cut}' in err, err[-2000:]
    assert not list(cut.glob('*.tmp'))
    resume_matches(cut, full)

def test_extend_a_finished_run_from_another_folder(tmp_path):
    "A larger `--epochs` extends a finished run, given from another working directory, with progress shown (the default) and with `--quiet`."
    (tmp_path / 'a').mkdir(); (tmp_path / 'b').mkdir()
    small = ['--max-items', '128', '--bs', '64', '--depth', '1', '--decoder-depth', '1', '--seed', '1']
    r = cli('pretrain', *small, '--epochs', '1', '--quiet', '--out', 'run', cwd=tmp_path / 'a'); assert r.returncode == 0, r.stderr[-2000:]
    for epochs, quiet in ((2, []), (3, ['--quiet'])):
        r = cli('pretrain', '--resume', '../a/run', '--epochs', epochs, *quiet, cwd=tmp_path / 'b')
        assert r.returncode == 0, r.stderr[-2000:]
        assert 'resuming' in r.stdout and 'Traceback' not in r.stderr, r.stderr[-2000:]
        got = list(csv.DictReader((tmp_path / 'a' / 'run' / 'metrics.csv').open()))
        assert [int(x['epoch']) for x in got] == list(range(epochs))    # one row per epoch: the old ones kept, the new appended
    assert not (tmp_path / 'b' / 'run').exists()

def test_damaged_checkpoint_is_refused(run_main, tmp_path):
    "In this process (`cli.main`): the refusals are one line with exit status 2, as from the installed command (tests/test_bad_input.py)."
    out = tmp_path / 'run'
    r = run_main('pretrain', *ARGS[:1], '1', *ARGS[2:], '--out', out); assert r.returncode == 0, r.stderr[-2000:]
    ck = out / 'checkpoint.pt'; ck.write_bytes(ck.read_bytes()[:4096])
    r = run_main('pretrain', '--resume', out)
    assert r.returncode == 2 and 'truncated or damaged' in r.stderr
    r = run_main('pretrain', '--resume', tmp_path / 'nothing')
    assert r.returncode == 2 and 'not a run folder' in r.stderr

def photo_folder(root:Path) -> Path:
    "train/ (8 crops) and valid/ (4) of two scikit-image photos, in class subfolders."
    from PIL import Image
    from droppos_nb.data import load_photo
    for split, k in (('train', 4), ('valid', 2)):
        for c in ('astronaut', 'coffee'):
            (root / split / c).mkdir(parents=True)
            img = load_photo(c).permute(1, 2, 0).numpy()
            for i in range(k): Image.fromarray(img[30 * i:30 * i + 64, 40 * i:40 * i + 64]).save(root / split / c / f'{i}.png')
    return root

def test_paths_are_stored_absolute_and_a_moved_folder_can_be_given(run_main, tmp_path, monkeypatch):
    "A run trained on a relative --data resumes from any working directory; when its folder moved, --data gives the new place (issue 26)."
    (tmp_path / 'a').mkdir(); (tmp_path / 'b').mkdir()
    photo_folder(tmp_path / 'a' / 'pics')
    small = ['--img-size', '32', '--patch-size', '8', '--depth', '1', '--embed-dim', '64', '--num-heads', '2', '--decoder-dim', '32',
             '--decoder-heads', '2', '--decoder-depth', '1', '--bs', '4', '--quiet']
    monkeypatch.chdir(tmp_path / 'a')
    r = run_main('pretrain', '--data', 'pics', *small, '--epochs', '1', '--out', 'run'); assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / 'a' / 'run'
    cfg = json.loads((run / 'config.json').read_text())
    assert cfg['data'] == str(tmp_path / 'a' / 'pics')                      # absolute, whatever was typed
    monkeypatch.chdir(tmp_path / 'b')
    r = run_main('pretrain', '--resume', '../a/run', '--epochs', '2'); assert r.returncode == 0, r.stderr[-2000:]
    (tmp_path / 'a' / 'pics').rename(tmp_path / 'moved')
    r = run_main('pretrain', '--resume', run, '--epochs', '3')
    assert r.returncode == 2 and 'is not there' in r.stderr and '--data FOLDER' in r.stderr, r.stderr[-2000:]
    r = run_main('pretrain', '--resume', run, '--epochs', '3', '--data', 'mnist5k')          # another kind of data: refused
    assert r.returncode == 2 and '--data mnist5k' in r.stderr, r.stderr[-2000:]
    r = run_main('pretrain', '--resume', run, '--epochs', '3', '--data', '../moved'); assert r.returncode == 0, r.stderr[-2000:]
    assert 'continues on the image folder' in r.stdout
    assert json.loads((run / 'config.json').read_text())['data'] == str(tmp_path / 'moved')
    assert [int(x['epoch']) for x in csv.DictReader((run / 'metrics.csv').open())] == [0, 1, 2]

def test_path_settings_come_from_the_method_options():
    "Options declared with a PATH metavar are stored absolute too: the VQ-KD teacher, BEiT v2's tokenizer (their models load them)."
    from droppos_nb.train import path_settings
    assert path_settings('droppos') == ['data'] and path_settings('vqkd') == ['data', 'teacher']
    assert path_settings('beitv2') == ['data', 'tokenizer']
