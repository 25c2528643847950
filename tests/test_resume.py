"A run killed with SIGKILL in the middle and resumed ends with the same metrics and weights as an uninterrupted run."
import csv, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from conftest import ROOT

ARGS = ['--epochs', '3', '--max-items', '256', '--bs', '64', '--decoder-dim', '64', '--decoder-heads', '4', '--quiet', '--seed', '3']
COLS = ['epoch', 'train_loss', 'valid_loss', 'pos_acc', 'sigma', 'lr']

def rows(out): return [{k: r[k] for k in COLS} for r in csv.DictReader((out / 'metrics.csv').open())]

def test_sigkill_and_resume_matches_uninterrupted(run_cli, tmp_path):
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    r = run_cli('pretrain', *ARGS, '--out', full); assert r.returncode == 0, r.stderr[-2000:]
    exe = Path(sys.executable).with_name('droppos_nb')
    p = subprocess.Popen([str(exe), 'pretrain', *ARGS, '--out', str(cut)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not ((cut / 'checkpoint.pt').exists() and len((cut / 'metrics.csv').read_text().splitlines()) >= 2):
        assert p.poll() is None and time.time() - t0 < 300, "the run ended before it could be killed"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    assert len(rows(cut)) < 3, "the run finished before it was killed"
    r = run_cli('pretrain', '--resume', cut, '--quiet')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'resuming' in r.stdout
    assert rows(cut) == rows(full)                       # every logged figure, to the last digit
    a, b = load_file(full / 'encoder.safetensors'), load_file(cut / 'encoder.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def test_damaged_checkpoint_is_refused(run_cli, tmp_path):
    out = tmp_path / 'run'
    r = run_cli('pretrain', *ARGS[:1], '1', *ARGS[2:], '--out', out); assert r.returncode == 0, r.stderr[-2000:]
    ck = out / 'checkpoint.pt'; ck.write_bytes(ck.read_bytes()[:4096])
    r = run_cli('pretrain', '--resume', out)
    assert r.returncode == 2 and 'truncated or damaged' in r.stderr
    r = run_cli('pretrain', '--resume', tmp_path / 'nothing')
    assert r.returncode == 2 and 'not a run folder' in r.stderr
