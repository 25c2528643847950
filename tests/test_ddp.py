"""Distributed data parallel on two CPU processes (gloo), launched by `torchrun` as a user would.

* tests/ddp_worker.py trains DropPos (attentive weights on) for 4 steps: both processes end with identical weights,
  equal to those of one process trained on the same global batches (to float rounding), and they log the same,
  reduced, metrics;
* the command line under `torchrun`: one metrics.csv, one checkpoint, the learning rate of the effective batch;
* SIGTERM to the whole job stops both processes at the same step, and the resumed job ends as an uninterrupted one."""
import csv, json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from conftest import ROOT, wait_for_first_epoch

pytestmark = pytest.mark.slow   # trains models, or drives processes or a browser: `pytest -m 'not slow'` skips it

BIN = Path(sys.executable).parent
ENV = dict(os.environ, ACCELERATE_USE_CPU='true', OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', MPLBACKEND='Agg')

def torchrun_cmd(n, *args): return [str(BIN / 'torchrun'), '--standalone', f'--nproc_per_node={n}', *map(str, args)]

def torchrun(n, *args, timeout=300):
    return subprocess.run(torchrun_cmd(n, *args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)

def max_diff(a, b):
    "Largest weight difference, leaving out attention's key bias (its gradient is zero up to rounding, see nbs/22_scale)."
    out = 0.
    for k in b:
        x, y = a[k], b[k]
        if k.endswith('qkv.bias'): D = len(x) // 3; x, y = torch.cat([x[:D], x[2 * D:]]), torch.cat([y[:D], y[2 * D:]])
        out = max(out, (x - y).abs().max().item())
    return out

def test_two_processes_take_the_steps_of_one(tmp_path):
    one, two = tmp_path / 'one', tmp_path / 'two'; one.mkdir(); two.mkdir()
    worker = ROOT / 'tests' / 'ddp_worker.py'
    r = subprocess.run([sys.executable, str(worker), '--out', str(one), '--bs', '64'], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = torchrun(2, worker, '--out', two, '--bs', '32')
    assert r.returncode == 0, r.stderr[-3000:]
    a, r0, r1 = (torch.load(p, weights_only=True) for p in (one / 'rank0.pt', two / 'rank0.pt', two / 'rank1.pt'))
    assert (a['world'], r0['world'], r1['world']) == (1, 2, 2)
    assert all(torch.equal(r0['model'][k], r1['model'][k]) for k in r0['model'])      # DDP keeps the processes in step
    assert max_diff(r0['model'], a['model']) < 1e-4, max_diff(r0['model'], a['model'])  # measured: 6e-6
    assert r0['values'][:5] == r1['values'][:5]                  # reduced metrics: every process logs the same
    assert len(r0['losses']) == len(a['losses']) == 4            # 256 digits / 64 per step
    assert all(abs(x - y) < 1e-3 for x, y in zip(r0['losses'], a['losses'])), (r0['losses'], a['losses'])

def test_cli_under_torchrun(tmp_path):
    out = tmp_path / 'run'
    r = torchrun(2, '-m', 'droppos_nb.cli', 'pretrain', '--recipe', 'paper', '--device', 'cpu', '--epochs', '2', '--max-items', '256', '--bs', '32',
                 '--depth', '2', '--decoder-dim', '32', '--decoder-heads', '2', '--quiet', '--out', out)   # wiring: 2 blocks
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['world_size'] == 2 and cfg['effective_batch'] == 64 and abs(cfg['lr'] - 1.5e-4 * 64 / 256) < 1e-12
    rows = list(csv.DictReader((out / 'metrics.csv').open()))
    assert [r['epoch'] for r in rows] == ['0', '1'], rows          # one writer: no doubled rows
    assert r.stdout.count('done: droppos') == 1                    # the first process reports, once
    for f in ['checkpoint.pt', 'encoder.safetensors', 'model.safetensors', 'positions.png']: assert (out / f).exists(), f
    assert not list(out.glob('*.tmp'))

def test_finetune_protocol_under_torchrun(tmp_path):
    out = tmp_path / 'ft'
    r = torchrun(2, '-m', 'droppos_nb.cli', 'eval', '--protocol', 'finetune', '--checkpoint', 'random', '--depth', '2',
                 '--device', 'cpu', '--epochs', '1', '--max-items', '256', '--max-valid', '128', '--bs', '32', '--save-encoder',
                 '--quiet', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('fine-tuning: top-1 accuracy') == 1          # the first process reports, once
    rec = json.loads((out / 'eval-finetune.json').read_text())
    assert rec['protocol'] == 'finetune' and 0 <= rec['metrics']['acc'] <= 1
    assert (out / 'encoder-finetuned.safetensors').exists()
    r = torchrun(2, '-m', 'droppos_nb.cli', 'eval', '--protocol', 'knn', '--checkpoint', 'random', '--device', 'cpu', '--out', out)
    assert r.returncode != 0 and 'only the finetune protocol' in r.stderr

def test_sigterm_to_a_torchrun_job_saves_and_resumes_exactly(tmp_path):
    "SIGTERM to the whole job, as a cluster scheduler sends it (torchrun forwards its own too): both processes stop at the same step, one checkpoint, and the resumed job ends as an uninterrupted one."
    args = ['-m', 'droppos_nb.cli', 'pretrain', '--recipe', 'paper', '--device', 'cpu', '--epochs', '3', '--max-items', '384', '--bs', '32',
            '--depth', '4', '--decoder-dim', '32', '--decoder-heads', '2', '--quiet', '--seed', '5']   # 4 blocks: exactness needs no more
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    r = torchrun(2, *args, '--out', full); assert r.returncode == 0, r.stderr[-3000:]
    p = subprocess.Popen(torchrun_cmd(2, *args, '--out', cut), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for_first_epoch(p, cut)
    time.sleep(1.)                                     # into the second epoch (where exactly does not matter)
    os.killpg(p.pid, signal.SIGTERM)
    err = p.communicate(timeout=120)[1]
    assert p.returncode != 0 and err.count('stopped by SIGTERM') == 1, err[-3000:]    # the first process reports, once
    print(next(l for l in err.splitlines() if 'stopped by SIGTERM' in l))
    rows = lambda out: [{k: v for k, v in r.items() if k not in ('seconds', 'time')} for r in csv.DictReader((out / 'metrics.csv').open())]
    assert len(rows(cut)) < 3
    r = torchrun(2, '-m', 'droppos_nb.cli', 'pretrain', '--resume', cut, '--quiet', '--device', 'cpu')
    assert r.returncode == 0 and 'resuming' in r.stdout, r.stderr[-3000:]
    assert rows(cut) == rows(full)
    a, b = (torch.load(d / 'checkpoint.pt', weights_only=True)['model'] for d in (full, cut))
    assert all(torch.equal(a[k], b[k]) for k in a)
