"""One training path (issue 24): `droppos_nb pretrain` and the notebooks' trained-model cache (`train.trained_model`)
write the same run folder for the same settings; the Python settings know every option the parser knows; a stopped
cached run is resumed, never loaded half-trained and never blocked by the lock it left."""
import argparse, csv, json, os, platform
from pathlib import Path
import pytest, torch
from safetensors import safe_open
from droppos_nb import train
from droppos_nb.cli import main, pretrain_parser
from droppos_nb.runs import run_finished, run_name

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
