"""The equal-budget sweep (bench/sweep.py, issue 29 item 2) selects recipes on a split the results table never reports.

Cheap: no training. The selection split (`mnist5k-select`, nbs/01_data) must share no digit with mnist5k's validation
split, on which bench/results.py reports, and every command the sweep would run (pretraining, calibration,
evaluation) must name the selection split.
"""
import importlib.util
from pathlib import Path

import pytest
import torch

from droppos_nb.data import mnist5k_indices, mnist5k_select_indices, get_dls
from droppos_nb.evaluation import eval_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def sweep():
    spec = importlib.util.spec_from_file_location('bench_sweep', ROOT / 'bench' / 'sweep.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_selection_split_disjoint_from_validation():
    "The selection digits are not the table's validation digits, and pretraining sees neither."
    st, ss = mnist5k_select_indices()
    mt, mv = mnist5k_indices()
    assert (len(st), len(ss)) == (3000, 1000)
    assert not set(ss.tolist()) & set(mv.tolist())
    assert not set(st.tolist()) & set(mv.tolist())
    assert not set(st.tolist()) & set(ss.tolist())
    assert sorted(st.tolist() + ss.tolist()) == sorted(mt.tolist())


def test_selection_images_disjoint_from_validation_images():
    "The same, by the images that the evaluation and the pretraining loaders hand out."
    sel, tab = eval_data('mnist5k-select', 28), eval_data('mnist5k', 28)
    key = lambda xs: {bytes(im[0].numpy()) for im in xs}
    assert not key(sel.valid_x) & key(tab.valid_x)
    assert not key(sel.train_x) & key(tab.valid_x)
    assert not key(sel.train_x) & key(sel.valid_x)
    dls = get_dls('mnist5k-select', 28, bs=100, device='cpu')
    assert torch.equal(dls.valid_ds.y, sel.valid_y)
    assert not key(dls.train_ds.x) & key(tab.valid_x)


def _data(cmd):
    "The values of --data in command line `cmd`."
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == '--data']


def test_sweep_commands_use_the_selection_split(sweep, tmp_path):
    "Every equal-budget command, quick or not, trains and scores on mnist5k-select, never on mnist5k."
    assert sweep.SELECT == 'mnist5k-select'
    methods = set()
    for quick in (None, sweep.QUICK):
        for c in sweep.EQUAL:
            methods.add(c['method'])
            if c['kind'] == 'pretrain':
                cmd = sweep.pretrain_cmd(c, 3, tmp_path / c['name'], quick)
                assert _data(cmd) == ['mnist5k-select'], cmd
            for nm in sweep.eq_evals(c):
                cmd = sweep.eval_cmd(c, nm, tmp_path / nm, quick)
                assert _data(cmd) == ['mnist5k-select'], cmd
    assert {'droppos', 'mae', 'cae', 'vqkd', 'beitv2', 'mocov3', 'mscn'} <= methods


def test_sweep_configs(sweep):
    "Names unique, each method's centre in --quick, dependencies before their users, the tokenizer within the budget."
    names = [c['name'] for c in sweep.CONFIGS]
    assert len(names) == len(set(names))
    quick = [c['name'] for c in sweep.eq_todo(quick=True)]
    assert set(sweep.QUICK_CONFIGS) <= set(quick)
    for c in sweep.EQUAL:
        for n in c['needs']: assert names.index(n) < names.index(c['name'])
    order = [c['name'] for c in sweep.eq_todo(methods=['beitv2'])]
    assert order.index('eq-dp') < order.index('eq-vqkd') < order.index('eq-beit-c')
    assert 0 < sweep.TOKENIZER_SHARE < 1


def test_sweep_commands_parse(sweep, tmp_path):
    """Every equal-budget command is one the CLI accepts, each option one of its method's with a value in range.
    A misspelt flag or a wrong method fails here, not hours into the sweep."""
    from droppos_nb.cli import build_parser
    from droppos_nb.train import resolve_args
    parser, pp = build_parser()
    for c in sweep.EQUAL:
        cmds = [sweep.eval_cmd(c, nm, tmp_path, None) for nm in sweep.eq_evals(c)]
        if c['kind'] == 'pretrain': cmds.append(sweep.pretrain_cmd(c, 3, tmp_path / c['name']))
        for cmd in cmds:
            args = parser.parse_args(cmd[cmd.index('pretrain' if 'pretrain' in cmd else 'eval'):])
            assert args.data == 'mnist5k-select'
            if args.command == 'pretrain': resolve_args(args, pp.method_options)     # raises on another method's option


def test_workers_claim_each_config_once(sweep, tmp_path, monkeypatch):
    """Several workers share the sweep's folder: a config is claimed by one live worker; a dead worker's claim (its
    process gone) is taken over; a released claim can be taken again."""
    import os, subprocess, sys
    monkeypatch.setattr(sweep, 'WORK', tmp_path)
    assert sweep.claim('eq-dp') and sweep.claim('eq-dp')          # this process, twice: still its own
    other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        (tmp_path / 'claims' / 'eq-mae').mkdir(parents=True)
        (tmp_path / 'claims' / 'eq-mae' / 'owner').write_text(f"{sweep.platform.node()} {other.pid}")
        assert not sweep.claim('eq-mae')                          # a live worker holds it
    finally:
        other.kill(); other.wait()
    assert sweep.claim('eq-mae')                                  # its owner died: taken over
    assert (tmp_path / 'claims' / 'eq-mae' / 'owner').read_text().split()[1] == str(os.getpid())
    sweep.release('eq-dp')
    assert not (tmp_path / 'claims' / 'eq-dp').exists()


def test_sweep_resumes_from_committed_records(sweep, tmp_path, monkeypatch):
    """A config whose evaluations are committed (RES/runs/NAME, written by another machine) is done and gives its row,
    although this machine's work folder is empty; one with an evaluation missing is not done."""
    import json
    work, res = tmp_path / 'work', tmp_path / 'res'
    monkeypatch.setattr(sweep, 'WORK', work); monkeypatch.setattr(sweep, 'RES', res)
    c = sweep.BY_NAME['eq-mae']
    d = res / 'runs' / c['name']; d.mkdir(parents=True)
    (d / 'metrics.csv').write_text('epoch,train_loss,valid_loss,seconds\n0,1.0,0.9,100.5\n1,0.8,0.7,99.5\n')
    (d / 'wallclock.json').write_text(json.dumps(dict(seconds=230., threads=1, epochs=2)))
    evals = list(sweep.eq_evals(c))
    for nm in evals[:-1]: (d / f'eval-{nm}.json').write_text(json.dumps(dict(metrics=dict(acc=0.5), seconds=3.)))
    assert not sweep.eq_done(c)
    (d / f'eval-{evals[-1]}.json').write_text(json.dumps(dict(metrics=dict(acc=0.7), seconds=3.)))
    assert sweep.eq_done(c)
    r = sweep.eq_row(c, copy=True)
    assert (r['epochs'], r['train_seconds'], r['score']) == (2, 200., (0.5 + 0.7) / 2)
    assert not work.exists()                                      # nothing copied back from nothing


def test_committed_table_matches_committed_records(sweep, tmp_path, monkeypatch):
    """bench/results/sweep/equal_budget.json is what its committed run records give (as on a machine without the
    sweep's work folder): every finished config's epochs, seconds and accuracies, and the selected config per method."""
    import json
    res = ROOT / 'bench' / 'results' / 'sweep'
    if not (res / 'equal_budget.json').exists(): pytest.skip('the equal-budget sweep has not been run')
    monkeypatch.setattr(sweep, 'WORK', tmp_path / 'empty')
    table = {r['name']: r for r in json.loads((res / 'equal_budget.json').read_text())['rows']}
    best = {}
    for c in sweep.EQUAL:
        r = sweep.eq_row(c, copy=False)
        if r is None: continue
        t = table[c['name']]
        for k in ('epochs', 'train_seconds', 'knn', 'knn_mean', 'linear', 'score'):
            assert r.get(k) == t.get(k), (c['name'], k, r.get(k), t.get(k))
        if c['kind'] == 'pretrain' and r.get('score') is not None and r['score'] > best.get(c['method'], (-1, ''))[0]:
            best[c['method']] = (r['score'], c['name'])
    assert {m: n for m, (s, n) in best.items()} == {t['method']: n for n, t in table.items() if t['selected']}
    assert not (tmp_path / 'empty').exists()
