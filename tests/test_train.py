"""One training path (issue 24): `droppos_nb pretrain` and the notebooks' trained-model cache (`train.trained_model`)
write the same run folder for the same settings; the Python settings know every option the parser knows; a stopped
cached run is resumed, never loaded half-trained and never blocked by the lock it left."""
import argparse, csv, json, os, platform, signal, subprocess, sys
from pathlib import Path
import pytest, torch
from safetensors import safe_open
from droppos_nb import train
from droppos_nb.cli import main, pretrain_parser
from droppos_nb.runs import run_finished, run_name
from conftest import ROOT, wait_for_first_epoch

# a DropPos small enough to train an epoch in about a second: the comparison is about the files, not the learning
TINY = dict(epochs=1, depth=1, decoder_depth=1, decoder_dim=32, decoder_heads=2, bs=256, max_items=512, precision='fp32')
VARIES = {'out', 'quiet', 'finished', 'train_seconds'}     # where the run was written, how it printed, the clock

def flags(d:dict) -> list: return [x for k, v in d.items() for x in (f"--{k.replace('_', '-')}", str(v))]

def tensors(path) -> tuple:
    with safe_open(str(path), 'pt') as f: return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}

def metrics(path) -> list:
    with open(path) as f: return [{k: v for k, v in r.items() if k not in ('seconds', 'time')} for r in csv.DictReader(f)]

def test_settings_know_every_option_of_the_parser():
    "`pretrain_settings()` holds exactly the settings `droppos_nb pretrain` parses, with the same defaults."
    parsed = vars(pretrain_parser(argparse.ArgumentParser()).parse_args([]))
    ours = vars(train.pretrain_settings())
    ours = {k: v for k, v in ours.items() if k not in ('given', 'method_options')}
    assert set(parsed) == set(ours), set(parsed) ^ set(ours)
    assert parsed == ours

@pytest.mark.slow
def test_cache_and_pretrain_write_identical_run_folders(tmp_path, monkeypatch):
    monkeypatch.setenv('DROPPOS_NB_RUNS', str(tmp_path / 'runs'))
    cached = train.trained_model('droppos', verbose=False, **TINY).run
    main(['pretrain', '--method', 'droppos', '--data', 'mnist5k', '--seed', '0', *flags(TINY), '--out', str(tmp_path / 'cli'), '--quiet'])
    cli = tmp_path / 'cli'
    assert sorted(p.name for p in cached.iterdir()) == sorted(p.name for p in cli.iterdir()) == [
        'checkpoint.pt', 'config.json', 'encoder.safetensors', 'metrics.csv', 'model.safetensors', 'positions.png']
    a, b = (json.loads((d / 'config.json').read_text()) for d in (cached, cli))
    assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} <= VARIES, {k: (a.get(k), b.get(k)) for k in a if a.get(k) != b.get(k)}
    assert a['command'] == b['command'] == ('droppos_nb pretrain --method droppos --data mnist5k --seed 0 --bs 256 --decoder-depth 1 '
                                            '--decoder-dim 32 --decoder-heads 2 --depth 1 --epochs 1 --max-items 512 --precision fp32')
    assert 'tau' in a and 'norm_pix_loss' not in a          # DropPos's own options recorded, no other method's
    assert metrics(cached / 'metrics.csv') == metrics(cli / 'metrics.csv')
    for f in ('model.safetensors', 'encoder.safetensors'):
        (ma, ta), (mb, tb) = tensors(cached / f), tensors(cli / f)
        assert ma == mb and ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), f

@pytest.mark.slow
def test_a_stopped_cached_run_is_resumed(tmp_path, monkeypatch, capsys):
    "A run stopped after its first epoch (a closed notebook), with the lock of its dead process left behind: the next call resumes it."
    monkeypatch.setenv('DROPPOS_NB_RUNS', str(tmp_path))
    settings = dict(TINY, epochs=2)
    run = tmp_path / run_name('droppos', 'mnist5k', settings)
    # what the first call had written when it was stopped: epoch 1 of 2
    main(['pretrain', '--method', 'droppos', *flags(dict(TINY, epochs=1)), '--out', str(run), '--quiet'])
    cfg = json.loads((run / 'config.json').read_text())
    cfg.update(epochs=2, command=cfg['command'].replace('--epochs 1', '--epochs 2')); cfg.pop('finished')
    (run / 'config.json').write_text(json.dumps(cfg))
    (run / '.lock').write_text(f"999999999 {platform.node()}\n")            # its process is gone
    assert not run_finished(run)
    capsys.readouterr()
    model = train.trained_model('droppos', **settings)
    out = capsys.readouterr()
    assert 'continuing the stopped run' in out.out and 'taking it over' in out.err
    assert run_finished(run) and len(metrics(run / 'metrics.csv')) == 2 and not (run / '.lock').exists()
    assert model.run == run and model.provenance['epochs'] == 2
    with pytest.raises(FileNotFoundError, match='no finished run'): train.trained_model('droppos', train=False, epochs=3)


# what a notebook cell does: `trained_model` in a Python process (the kernel), here stopped from outside
NOTEBOOK = "import json, sys\nfrom droppos_nb import train\ntrain.trained_model('droppos', **json.loads(sys.argv[1]))"

@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGKILL], ids=['SIGINT', 'SIGKILL'])
def test_an_interrupted_notebook_training_leaves_nothing_that_blocks_the_next(tmp_path, monkeypatch, capsys, signum):
    """`trained_model` stopped after its first epoch (the kernel's stop button sends SIGINT; a killed kernel, SIGKILL)
    leaves no live lock, no temporary folder or file: the next call in the same runs folder resumes the run to its end."""
    runs = tmp_path / 'runs'
    settings = dict(TINY, epochs=4, max_items=1024)
    run = runs / run_name('droppos', 'mnist5k', settings)
    env = dict(os.environ, DROPPOS_NB_RUNS=str(runs), PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    p = subprocess.Popen([sys.executable, '-c', NOTEBOOK, json.dumps(settings)], env=env, cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_first_epoch(p, run)
    p.send_signal(signum); err = p.communicate(timeout=300)[1]
    assert p.returncode != 0 and not run_finished(run), "the run finished before it was stopped"
    done = len(metrics(run / 'metrics.csv'))
    assert 1 <= done < 4
    # nothing temporary is left: no hidden folder next to the run or in it, no half-written file
    assert not [q for q in runs.iterdir() if q.is_dir() and q.name.startswith('.')], list(runs.iterdir())
    assert not (run / train.ASIDE).exists() and not list(run.glob('*.tmp'))
    if signum == signal.SIGINT:                      # a stop that was asked for: the lock is gone, the run says where
        assert not (run / train.LOCK).exists() and 'Interrupted' in err, err[-1000:]
    else:                                            # killed: its lock may stay, but it names a dead process
        assert not (run / train.LOCK).exists() or train.check_lock(run)
    monkeypatch.setenv('DROPPOS_NB_RUNS', str(runs))
    capsys.readouterr()
    model = train.trained_model('droppos', **settings)
    assert 'continuing the stopped run' in capsys.readouterr().out
    assert run_finished(run) and len(metrics(run / 'metrics.csv')) == 4 and model.provenance['epochs'] == 4
    assert not (run / train.LOCK).exists() and not (run / train.ASIDE).exists()
