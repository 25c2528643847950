"""bench/claims.py: the seed articles' claims judged against the stored results (issue 29, item 4). Fast: no training.

Every claim has a paper source; the verdict rule does what its doc says on made-up differences; and the committed table
(bench/results/claims) is the one the stored results give now, one row recomputed here by hand."""
import importlib.util, json, math
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / 'bench' / 'results'

@pytest.fixture(scope='module')
def C():
    spec = importlib.util.spec_from_file_location('bench_claims', ROOT / 'bench' / 'claims.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

@pytest.fixture(scope='module')
def stored(): return json.loads((RES / 'claims' / 'claims.json').read_text())

def test_every_claim_has_a_paper_source(C):
    for c in C.CLAIMS:
        assert c.article and c.claim and c.paper and c.source, c
        if c.headline:                     # a headline claim names its seed (or the seed that cites it) and a source
            assert 'seed' in c.article, c.article
            assert 'seed' in c.source or 'METHODS.md' in c.source, c.source
    arts = {c.article.split(' (')[0] for c in C.CLAIMS if c.headline}
    assert arts == {'DropPos', 'CAE', 'BEiT v2', 'MSCN', 'MoCo v3'}, arts

def test_paper_numbers_are_the_articles(C):
    "MSCN's path numbers are the library's record of seed 004 (MSCN_PATH); the differences are theirs."
    from droppos_nb.mscn import MSCN_PATH
    assert C.MSCN_ARTICLE == {k + 1: v for k, (_, _, v) in enumerate(MSCN_PATH) if v is not None}
    rows = [c for c in C.CLAIMS if c.article.startswith('MSCN (seed')]
    assert len(rows) == len(C.MSCN_ARTICLE)
    assert rows[1].paper.startswith(f"{C.MSCN_ARTICLE[3] - C.MSCN_ARTICLE[2]:+.1f}")

def test_verdict_rule(C):
    v = lambda d: C.verdict(d)[0]
    assert v([2, 3, 4]) == 'shown'                   # +3 ± 1
    assert v([-2, -3, -4]) == 'contradicted'         # -3 ± 1
    assert v([-1.5, 0.5, 2.5]) == 'not shown'        # +0.5 ± 2
    assert v([0.1, 0.2, 5]) == 'shown'               # within the spread, but every seed agrees
    assert v([-0.1, -0.2, -5]) == 'contradicted'
    assert v([1.5, -0.5, -2.5]) == 'not shown'
    assert v([]) == 'not shown' and C.verdict([])[1] == 'no data'
    assert v([5.]) == 'not shown' and 'one seed' in C.verdict([5.])[1]
    assert v([0, 0, 0]) == 'not shown'
    s = lambda d, b: C.verdict_small(d, b)[0]
    assert s([1, 1.2, 1.4], 1.6) == 'shown'
    assert s([-1, -1.2, -1.4], 1.6) == 'shown'       # a small effect of either sign
    assert s([5, 6, 7], 1.6) == 'contradicted'       # 6 - 1.6 > 1
    assert s([0, 3, 6], 1.6) == 'not shown'          # 3 - 1.6 < 3
    assert s([], 1.6) == 'not shown'

def test_stored_table_is_todays(C, stored):
    "bench/results/claims holds what the stored results give now (rerun `python bench/claims.py` after re-measuring)."
    J = C.judge(C.load())
    assert J == json.loads(json.dumps(J)) and stored == json.loads(json.dumps(J, ensure_ascii=False))
    assert (RES / 'claims' / 'claims.md').read_text() == C.markdown(stored)

def test_one_row_by_hand(stored):
    "DropPos - MAE in the position probe, paired by seed, from the laptop results.json."
    R = json.loads((RES / 'small_scale' / 'results.json').read_text())['table']
    seeds = sorted(set(R['DropPos']) & set(R['MAE']), key=int)
    d = np.array([100 * (R['DropPos'][s]['position'] - R['MAE'][s]['position']) for s in seeds])
    row = next(r for r in stored['claims'] if r['claim'].startswith("DropPos makes the encoder position-aware"))
    assert row['seeds'] == seeds and row['n'] == len(d)
    assert math.isclose(row['mean'], d.mean(), abs_tol=1e-9) and math.isclose(row['sd'], d.std(ddof=1), abs_tol=1e-9)
    want = 'shown' if d.mean() > 0 and (d.mean() > d.std(ddof=1) or (d > 0).all()) else \
           'contradicted' if d.mean() < 0 and (-d.mean() > d.std(ddof=1) or (d < 0).all()) else 'not shown'
    assert row['verdict'] == want
    assert f"{d.mean():+.1f} ± {d.std(ddof=1):.1f} points (n={len(d)})" in row['ours']
    assert row['ours'] in (RES / 'claims' / 'claims.md').read_text()

def test_every_seed_verdict_in_the_table(stored):
    "Each row's verdict is the rule applied to its own stored differences."
    for r in stored['claims']:
        d = np.array(r['diffs'])
        assert r['n'] == len(d) == len(r['seeds'])
        if len(d): assert math.isclose(r['mean'], d.mean(), abs_tol=1e-9)
        assert r['verdict'] in ('shown', 'not shown', 'contradicted')

def test_goals_pair_rows_by_seed(C):
    "Issue 29's goals on a made-up table: paired per seed, a pixel floor per seed, no goal twice, `met` from the mean."
    row = lambda **v: {s: {c: x for c, x in zip(('linear', 'knn'), vals)} for s, vals in v.items()}
    T = {'random init': row(**{'0': (.70, .60), '1': (.72, .62)}), 'CAE': row(**{'0': (.69, .65), '1': (.74, .66)}),
         'MoCo v3': row(**{'0': (.80, .75)}), 'random Beit': row(**{'0': (.50, .50)}),
         'BEiT v2': row(**{'0': (.60, .55), '1': (.61, .56)})}
    G = {g['goal']: g for g in C.goals({'equal': dict(table=T, floors=dict(linear=.9))})}
    assert len(G) == len(C.goals({'equal': dict(table=T, floors=dict(linear=.9))}))          # no goal twice
    cae = G['CAE above random init (linear probe)']
    assert cae['n'] == 2 and math.isclose(cae['mean'], ((69 - 70) + (74 - 72)) / 2) and cae['met']
    assert not G['BEiT v2 above random init (linear probe)']['met'] and G['BEiT v2 above random Beit (kNN)']['met']
    moco = G['MoCo v3 above the pixels (logistic regression) (linear probe)']
    assert moco['n'] == 1 and math.isclose(moco['mean'], 80 - 90) and not moco['met'] and moco['verdict'] == 'not shown'
    assert 'BEiT v2 above random Beit (linear probe)' not in G or G['BEiT v2 above random Beit (linear probe)']['n'] == 1
    assert C.goals({'equal': None}) == []
