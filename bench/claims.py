"""The seed articles' headline claims, judged against the stored measurements.

    python bench/claims.py                 # reads bench/results/*/results.json, writes bench/results/claims/claims.{json,md}
    python bench/claims.py --out /tmp/c    # somewhere else

One row per claim: the seed article, the claim, the paper's number (with where it comes from: the seed article itself,
or `METHODS.md`, which gathers the papers' tables, when the seed states no number), our measurement (the two sides'
means and their difference, paired by seed: mean ± standard deviation over the seeds both sides have, n) and a verdict
with its reason. Nothing about our numbers is written here: every figure is read from the results files when the
script runs, so a re-measured table gives a re-judged one.

The verdict rule (`verdict`), for per-seed differences d oriented so that the paper's claim is d > 0:
- **shown**: the mean of d is positive and either larger than the standard deviation of d over the seeds or every
  seed's d is positive;
- **contradicted**: the mean is negative and either larger in size than that standard deviation or every seed's d is
  negative;
- **not shown**: otherwise: within the spread between seeds, one seed only (no spread to judge by), or no data.

A claim that an effect is *small* (MoCo v3: position embeddings barely matter) is judged by `verdict_small` against
the paper's own gap b: shown when |mean d| <= b, contradicted when |mean d| exceeds b by more than the seed standard
deviation, not shown otherwise.
"""
import argparse, json, math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional
import numpy as np

RES = Path(__file__).resolve().parent / 'results'
TABLES = {'laptop': 'small_scale', 'equal': 'small_scale_equal', 'GPU': 'small_scale_cuda', 'paper recipe': 'small_scale_paper'}
SOURCES = dict(TABLES, comparisons='comparisons', mscn='mscn_ablation', cae_alignment='cae_alignment',
               cae_alignment_photos='cae_alignment_photos')

def load(res:Path=RES) -> dict:
    "Every results file the claims read, by short name (None for one not measured yet)."
    out = {}
    for k, d in SOURCES.items():
        f = Path(res) / d / 'results.json'
        out[k] = json.loads(f.read_text()) if f.exists() else None
    return out

# --- the verdict rule --------------------------------------------------------------------------------------------------

def _stats(d):
    d = np.asarray([x for x in d if x is not None and not math.isnan(x)], dtype=float)
    return d, (d.mean() if len(d) else float('nan')), (d.std(ddof=1) if len(d) > 1 else float('nan'))

def verdict(d) -> tuple:
    "(verdict, reason) for per-seed differences `d`, oriented so that the paper's claim is d > 0 (see the module's doc)."
    d, m, s = _stats(d)
    if len(d) == 0: return 'not shown', 'no data'
    if len(d) == 1:
        return 'not shown', f"one seed only, no spread to judge by (its sign {'is the paper’s' if m > 0 else 'is against the paper' if m < 0 else 'is zero'})"
    if m > 0 and (m > s or (d > 0).all()):
        return 'shown', 'the paper’s sign, ' + ('beyond the seed spread' + (' and in every seed' if (d > 0).all() else '') if m > s else 'in every seed (within the spread)')
    if m < 0 and (-m > s or (d < 0).all()):
        return 'contradicted', 'the opposite sign, ' + ('beyond the seed spread' + (' and in every seed' if (d < 0).all() else '') if -m > s else 'in every seed (within the spread)')
    return 'not shown', f"within the seed spread (|mean| ≤ sd; the mean's sign {'is the paper’s' if m > 0 else 'is against the paper' if m < 0 else 'is zero'})"

def verdict_small(d, bound:float) -> tuple:
    "(verdict, reason) for the claim that the effect `d` is small: no larger in size than the paper's own gap `bound`."
    d, m, s = _stats(d)
    if len(d) == 0: return 'not shown', 'no data'
    if len(d) == 1: return 'not shown', 'one seed only, no spread to judge by'
    excess = abs(m) - bound
    if excess <= 0: return 'shown', f'no larger than the paper’s gap ({bound:g})'
    if excess > s: return 'contradicted', f'larger than the paper’s gap ({bound:g}) by more than the seed spread'
    return 'not shown', f'larger than the paper’s gap ({bound:g}), but within the seed spread of it'

# --- what is measured: two sides, paired by seed --------------------------------------------------------------------------

@dataclass
class Measured:
    "Side `a` against side `b`, per seed (already in the claim's unit); `d` = a - b, the claim is d > 0."
    a_name: str; b_name: str
    a: dict; b: dict                      # seed -> value
    unit: str = 'points'
    @property
    def seeds(self): return sorted(set(self.a) & set(self.b), key=lambda s: int(s))
    @property
    def d(self): return [self.a[s] - self.b[s] for s in self.seeds]

DIGITS = {'points': 1, 'MSE': 2, 'entropy': 3}

def fmt(x, unit, sign=False):
    return '–' if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:{'+' if sign else ''}.{DIGITS[unit]}f}"

def cell(m:Optional[Measured]) -> str:
    "Our measurement as the table shows it: both sides' means over the paired seeds, then the difference's mean ± sd (n)."
    if m is None or not m.seeds: return 'not measured'
    u, s = m.unit, m.seeds
    d, dm, dsd = _stats(m.d)
    side = lambda name, v: f"{name} {fmt(float(np.mean([v[x] for x in s])), u)}"
    spread = f" ± {fmt(dsd, u)}" if len(d) > 1 else ''
    return f"{side(m.a_name, m.a)} vs {side(m.b_name, m.b)}: {fmt(dm, u, True)}{spread} {u} (n={len(d)})"

def _col(R, row, col):
    "Seed -> value in points of row `row`, column `col` of a results table (seeds without the value left out)."
    if R is None or row not in R['table']: return {}
    return {s: 100 * v[col] for s, v in R['table'][row].items() if v.get(col) is not None}

def table_diff(a, b, col, tab='laptop'):
    "Rows `a` - `b` of a results table's column `col`."
    return lambda D: Measured(a, b, _col(D[tab], a, col), _col(D[tab], b, col))

def motivating(row, tab='laptop'):
    "The position probe of `row`'s encoder after fine-tuning minus before (the DropPos article's motivating experiment)."
    def f(D):
        M = (D[tab] or {}).get('motivating', {}).get(row, {})
        return Measured('fine-tuned', 'pretrained', {s: 100 * v['after'] for s, v in M.items() if v.get('after') is not None},
                        {s: 100 * v['before'] for s, v in M.items() if v.get('before') is not None})
    return f

def pe_diff(a, b, key):
    "bench/comparisons: position embedding `a` - `b` for `key` (mocov3_linear, mocov3_knn, supervised_finetune)."
    def f(D):
        A = (D['comparisons'] or {}).get('ablation', {})
        return Measured(a, b, {s: 100 * v for s, v in A.get(a, {}).get(key, {}).items()},
                        {s: 100 * v for s, v in A.get(b, {}).get(key, {}).items()})
    return f

def attention_diff(a, b, key, scale=1., unit='entropy'):
    "bench/comparisons' attention maps: encoder `a` - `b` for `key` (entropy, object_share)."
    def f(D):
        A = (D['comparisons'] or {}).get('attention', {})
        return Measured(a, b, {s: scale * v[key] for s, v in A.get(a, {}).items()},
                        {s: scale * v[key] for s, v in A.get(b, {}).items()}, unit)
    return f

def mscn_step(k):
    "bench/mscn_ablation: the linear probe after step `k` of MSCN's path minus after step k-1."
    def f(D):
        runs = (D['mscn'] or {}).get('runs', {}).values()
        at = lambda j: {str(r['seed']): 100 * r['linear'] for r in runs if r['step'] == j and r.get('linear') is not None}
        name = lambda j: next((r['name'] for r in runs if r['step'] == j), f'step {j}')
        return Measured(name(k), name(k - 1), at(k), at(k - 1))
    return f

def cae_alignment(which='cae_alignment'):
    "bench/cae_alignment: the encoder -> decoder reconstruction error without alignment minus with it (one run each)."
    def f(D):
        R = (D[which] or {}).get('runs', {})
        g = lambda k: {'0': R[k]['encoder_decoder_mse']} if k in R and R[k].get('encoder_decoder_mse') is not None else {}
        return Measured('without', 'with', g('CAE align 0'), g('CAE align 2'), 'MSE')
    return f

def cae_alignment_caveat(which='cae_alignment'):
    def f(D):
        R = D[which]
        if not R or 'mean_image_mse' not in R: return ''
        w = R['runs'].get('CAE align 2', {}).get('encoder_decoder_mse')
        if w is None: return ''
        return (f"the error with alignment ({w:.2f}) is {'below' if w < R['mean_image_mse'] else 'not below'} that of "
                f"predicting the mean image ({R['mean_image_mse']:.2f})")
    return f

# --- the claims ---------------------------------------------------------------------------------------------------------

@dataclass
class Claim:
    article: str            # the seed article (or the article a seed cites)
    claim: str              # what the paper says, oriented so that `measure(D).d > 0` is the claim
    paper: str              # the paper's number, or 'not stated in the seed'
    source: str             # where the paper's number (or the claim) comes from
    measure: Callable       # results files -> Measured
    data: str = 'laptop'    # which results file, for the reader
    caveat: object = ''     # one line (or a function of the results files giving one)
    bound: Optional[float] = None   # a claim that an effect is small: the paper's gap (verdict_small)
    headline: bool = True   # a headline claim of a seed (the first table) or another comparison (the second)

    def judge(self, D:dict) -> dict:
        m = self.measure(D)
        d = m.d if m is not None else []
        v, why = verdict(d) if self.bound is None else verdict_small(d, self.bound)
        cav = self.caveat(D) if callable(self.caveat) else self.caveat
        _, dm, dsd = _stats(d)
        nan = lambda x: None if isinstance(x, float) and math.isnan(x) else float(x)
        return dict(article=self.article, claim=self.claim, paper=self.paper, source=self.source, data=self.data,
                    ours=cell(m), unit=m.unit if m else None, a=m.a_name if m else None, b=m.b_name if m else None,
                    seeds=m.seeds if m else [], diffs=[float(x) for x in d], mean=nan(dm), sd=nan(dsd), n=len(d),
                    verdict=v, reason=why + (f'; {cav}' if cav else ''), headline=self.headline)

D0, D2, CAE, BEIT, MSCN, MOCO = ('DropPos (seeds 000, 002)', 'DropPos (seed 002)', 'CAE (seed 001)', 'BEiT v2 (seed 003)',
                                 'MSCN (seed 004)', 'MoCo v3 (cited by seed 000)')
NS = 'not stated in the seed'
TAU_CAVEAT = ("the logged accuracy is weighted by the attentive weights, which τ = ∞ makes uniform (plain black patches "
              "count as much as strokes), so the two rows' figures weigh different patches")
BEIT_CAVEAT = ("not the same encoder: BEiT v2 is a timm Beit (relative position bias, layer scale) pretrained "
               "on the codes of a tokenizer that distils a supervised encoder; MAE is the laptop ViT")

MSCN_ARTICLE = {2: 30.2, 3: 31.0, 4: 40.0, 5: 48.2, 6: 53.6, 7: 63.0, 8: 65.1, 9: 65.6, 10: 67.4}   # seed 004, sections 4.3-4.5

def _mscn_claims():
    out = []
    for k, v in MSCN_ARTICLE.items():
        prev = MSCN_ARTICLE.get(k - 1)
        paper = f"{v - prev:+.1f} ({prev} → {v})" if prev else f"{v} after it; {NS} before it"
        out.append(Claim(MSCN, f"step {k} of the design path raises the linear probe over step {k - 1}", paper,
                         'seed 004, §4.3-4.5 (ImageNet-1K linear probe, ResNet-50, 100 epochs)', mscn_step(k), 'mscn_ablation'))
    return out

CLAIMS = [
    # DropPos
    Claim(D0, "DropPos makes the encoder position-aware: position probe above MAE's", NS,
          'seed 002 (abstract: "improved location awareness"); seed 000 §2 probes MoCo v3 and MAE only',
          table_diff('DropPos', 'MAE', 'position')),
    Claim(D0, "... and above a random encoder's", NS, 'seed 002 (abstract)', table_diff('DropPos', 'random init', 'position')),
    Claim(D2, "DropPos fine-tunes above MAE", '+0.6 (84.2, 800 ep, vs MAE 83.6, 1600 ep; ViT-B/16)',
          'METHODS.md (DropPos and MAE papers); seed 002 says "competitive", no number', table_diff('DropPos', 'MAE', 'finetune')),
    Claim(D2, "DropPos outperforms supervised pre-training (fine-tune, against training from scratch)", NS,
          'seed 002 (abstract)', table_diff('DropPos', 'supervised', 'finetune')),
    Claim(D0, "σ = 0 (no position smoothing) raises the pretraining position accuracy", NS,
          'seed 000 §4.2 (the ablation table is an image)', table_diff('DropPos σ=0', 'DropPos', 'pretrain_pos_acc')),
    Claim(D0, "... but lowers fine-tuning (DropPos - σ=0)", NS, 'seed 000 §4.2', table_diff('DropPos', 'DropPos σ=0', 'finetune')),
    Claim(D0, "... and the linear probe (DropPos - σ=0)", NS, 'seed 000 §4.2 ("下游任务"; the paper reports fine-tuning)',
          table_diff('DropPos', 'DropPos σ=0', 'linear')),
    Claim(D0, "τ = ∞ (no attentive reconstruction) raises the pretraining position accuracy", NS, 'seed 000 §4.2',
          table_diff('DropPos τ=∞', 'DropPos', 'pretrain_pos_acc'), caveat=TAU_CAVEAT),
    Claim(D0, "... but lowers fine-tuning (DropPos - τ=∞)", NS, 'seed 000 §4.2', table_diff('DropPos', 'DropPos τ=∞', 'finetune')),
    Claim(D0, "... and the linear probe (DropPos - τ=∞)", NS, 'seed 000 §4.2', table_diff('DropPos', 'DropPos τ=∞', 'linear')),
    Claim(D0, "fine-tuned weights are more position-aware than pretrained ones (MAE: after - before)", NS,
          'seed 000 §2 (the table is an image)', motivating('MAE')),
    Claim(D0, "... (MoCo v3: after - before)", NS, 'seed 000 §2', motivating('MoCo v3')),
    # CAE
    Claim(CAE, "CAE's encoder represents better than MAE's (linear probe, CAE - MAE)", '+2.3 (70.3 vs 68.0, ViT-B, 1600 ep)',
          'METHODS.md (CAE and MAE papers); seed 001 states no number', table_diff('CAE', 'MAE', 'linear')),
    Claim(CAE, "... and fine-tunes at least as well (CAE - MAE)", '+0.3 (83.9 vs 83.6, ViT-B, 1600 ep)',
          'METHODS.md (CAE and MAE papers)', table_diff('CAE', 'MAE', 'finetune')),
    Claim(CAE, "MIM (CAE) suits downstream tasks better than contrastive learning (fine-tune, CAE - MoCo v3)",
          '+0.4 (83.6 vs 83.2, ViT-B, 300 ep)', 'METHODS.md (CAE and MoCo v3 papers); seed 001 argues it for detection and segmentation',
          table_diff('CAE', 'MoCo v3', 'finetune')),
    Claim(CAE, "alignment puts the encoder's output in the decoder's space (encoder → decoder error, without - with alignment; digits)",
          NS + ' (a figure: noise without alignment)', 'seed 001 (alignment figure)', cae_alignment(), 'cae_alignment',
          caveat=cae_alignment_caveat()),
    Claim(CAE, "... (photos)", NS, 'seed 001 (alignment figure)', cae_alignment('cae_alignment_photos'), 'cae_alignment_photos',
          caveat=cae_alignment_caveat('cae_alignment_photos')),
    Claim(CAE, "CAE attends over almost all patches, MoCo v3 on the object ([CLS] attention entropy, CAE - MoCo v3)",
          NS + ' (a figure)', 'seed 001 (attention maps)', attention_diff('CAE', 'MoCo v3', 'entropy'), 'comparisons'),
    Claim(CAE, "... (share of [CLS] attention on the strokes, MoCo v3 - CAE)", NS + ' (a figure)', 'seed 001 (attention maps)',
          attention_diff('MoCo v3', 'CAE', 'object_share', 100, 'points'), 'comparisons'),
    # BEiT v2
    Claim(BEIT, "semantic codes beat pixel targets (linear probe, BEiT v2 - MAE)", '+12.1 (80.1 vs 68.0, ViT-B)',
          'seed 003 §1 (BEiT v2 80.1); MAE 68.0 from METHODS.md (MAE paper)', table_diff('BEiT v2', 'MAE', 'linear'), caveat=BEIT_CAVEAT),
    Claim(BEIT, "... (fine-tune, BEiT v2 - MAE)", '+1.9 (85.5 vs 83.6, ViT-B)', 'seed 003 §1 (BEiT v2 85.5); MAE 83.6 from METHODS.md',
          table_diff('BEiT v2', 'MAE', 'finetune'), caveat=BEIT_CAVEAT),
    Claim(BEIT, "patch aggregation helps the linear probe (with - without)", NS, 'seed 003 §1 and §2.3',
          table_diff('BEiT v2', 'BEiT v2 w/o aggregation', 'linear')),
    # MSCN
    *_mscn_claims(),
    # MoCo v3
    Claim(MOCO, "position embeddings barely matter: removing them costs the linear probe little (sincos - none)",
          '+1.6 (76.5 vs 74.9, ViT-B linear)', 'METHODS.md (MoCo v3 paper, marked unverified); seed 000 §2 ("相差无几")',
          pe_diff('sincos', 'none', 'mocov3_linear'), 'comparisons', bound=1.6),
    Claim(MOCO, "... learned against none (learned - none)", '+1.2 (76.1 vs 74.9)', 'METHODS.md (MoCo v3 paper, unverified)',
          pe_diff('learned', 'none', 'mocov3_linear'), 'comparisons', bound=1.2),
    Claim(MOCO, "... kNN (sincos - none)", NS + '; judged against the linear gap, 1.6', 'METHODS.md (MoCo v3 paper, unverified)',
          pe_diff('sincos', 'none', 'mocov3_knn'), 'comparisons', bound=1.6),
    Claim(MOCO, "... supervised fine-tuning from scratch (sincos - none)", NS + '; judged against the linear gap, 1.6',
          'seed 000 §2 ("ImageNet 上的分类精度相差无几")', pe_diff('sincos', 'none', 'supervised_finetune'), 'comparisons', bound=1.6),
    # other comparisons (the second table)
    Claim(D0, "fine-tuning raises the position probe (DropPos: after - before)", NS, 'seed 000 §2', motivating('DropPos'), headline=False),
    Claim(D0, "... (random: supervised - random)", NS, 'seed 000 §2', motivating('random init'), headline=False),
    Claim(D0, "... (CAE: after - before)", NS, 'seed 000 §2', motivating('CAE'), headline=False),
    Claim('MAE (its paper)', "MoCo v3's frozen features beat MAE's (linear, MoCo v3 - MAE)", '+8.7 (76.7 vs 68.0, ViT-B)',
          'METHODS.md (MoCo v3 and MAE papers)', table_diff('MoCo v3', 'MAE', 'linear'), headline=False),
    Claim('DropPos (its paper)', "DropPos fine-tunes better than MoCo v3 (DropPos - MoCo v3)", '+1.0 (84.2 vs 83.2, ViT-B)',
          'METHODS.md (DropPos and MoCo v3 papers)', table_diff('DropPos', 'MoCo v3', 'finetune'), headline=False),
    Claim('BEiT v2 (floor)', "BEiT v2 beats a random Beit of its recipe (linear)", '–', 'a floor, not a paper claim',
          table_diff('BEiT v2', 'random Beit', 'linear'), headline=False),
    Claim('BEiT v2 (floor)', "... (fine-tune: pretrained - from scratch)", '–', 'a floor', table_diff('BEiT v2', 'random Beit', 'finetune'), headline=False),
    Claim('MSCN (floor)', "MSCN beats a random-init ResNet-18 (linear; timm's zero-init last BN)", '–', 'a floor',
          table_diff('MSCN', 'random ResNet-18', 'linear'), headline=False),
    Claim('MSCN (floor)', "MSCN beats a random-init ResNet-18 (linear; zero_init_last=False)", '–', 'a floor',
          table_diff('MSCN', 'random ResNet-18, no zero init', 'linear'), headline=False),
    Claim('MSCN (floor)', "... (kNN; zero_init_last=False)", '–', 'a floor', table_diff('MSCN', 'random ResNet-18, no zero init', 'knn'), headline=False),
]

def judge(D:dict) -> dict:
    "Every claim judged on the laptop table (and its own results file); the results-table ones on every results table too."
    rows = [c.judge(D) for c in CLAIMS]
    by_table = []
    for c in CLAIMS:
        if c.data != 'laptop': continue
        by_table.append(dict(article=c.article, claim=c.claim,
                             tables={t: c.judge({**D, 'laptop': D[t]}) if D[t] is not None else None for t in TABLES}))
    return dict(claims=rows, by_table=by_table, goals=goals(D),
                rule='shown: mean paired difference with the paper’s sign, beyond its seed sd or in every seed; '
                     'contradicted: the opposite sign, beyond the sd or in every seed; not shown: otherwise (within the '
                     'spread, one seed, no data). A claim that an effect is small: shown when |mean| ≤ the paper’s gap, '
                     'contradicted when it exceeds it by more than the sd, not shown otherwise.')

# --- the equal-budget table's goals (issue 29, item 3): to measure against, never to tune on -----------------------------

# each pretrained row's own floor: the random-init encoder of its architecture
OWN_FLOOR = {'DropPos': 'random init', 'DropPos σ=0': 'random init', 'DropPos τ=∞': 'random init', 'MAE': 'random init',
             'CAE': 'random init', 'MoCo v3': 'random init', 'MSCN': 'random ResNet-18, no zero init',
             'BEiT v2': 'random Beit', 'BEiT v2 w/o aggregation': 'random Beit'}

def goals(D:dict, tab:str='equal') -> list:
    """Issue 29's goals for table `tab`, each as a dict: every method above the random encoder of its own architecture
    in the linear probe and kNN; BEiT v2 and CAE also above the random plain ViT; the invariance methods (MoCo v3,
    MSCN) above the logistic regression on the pixels. `met`: the mean of the paired per-seed differences is positive
    (with `verdict`'s judgement of them beside it: one seed cannot show anything)."""
    R, out = D.get(tab), []
    if R is None: return out
    def add(row, floor, col, b):
        a = _col(R, row, col)
        if not a or not b: return
        m = Measured(row, floor, a, b)
        d, dm, dsd = _stats(m.d)
        if not len(d): return
        out.append(dict(goal=f"{row} above {floor} ({'linear probe' if col == 'linear' else 'kNN'})", row=row, floor=floor,
                        col=col, ours=cell(m), mean=float(dm), sd=None if math.isnan(dsd) else float(dsd), n=len(d),
                        met=bool(dm > 0), verdict=verdict(m.d)[0]))
    for row, floor in OWN_FLOOR.items():
        for col in ('linear', 'knn'): add(row, floor, col, _col(R, floor, col))
    for row in ('BEiT v2', 'BEiT v2 w/o aggregation'):   # CAE's own floor is the random plain ViT already
        for col in ('linear', 'knn'): add(row, 'random init', col, _col(R, 'random init', col))
    fl = (R.get('floors') or {}).get('linear')
    for row in ('MoCo v3', 'MSCN'):
        if fl is not None: add(row, 'the pixels (logistic regression)', 'linear', {s: 100 * fl for s in _col(R, row, 'linear')})
    return out

def _esc(s): return str(s).replace('|', '\\|')

def markdown(J:dict) -> str:
    "The two tables: the seeds' headline claims, then every results-table comparison on every results table."
    head = ['| seed article | claim | paper’s number | source | ours (mean ± sd over seeds, paired) | data | verdict | reason |',
            '|---|---|---|---|---|---|---|---|']
    rows = [f"| {_esc(r['article'])} | {_esc(r['claim'])} | {_esc(r['paper'])} | {_esc(r['source'])} | {_esc(r['ours'])} | "
            f"{r['data']} | **{r['verdict']}** | {_esc(r['reason'])} |" for r in J['claims'] if r['headline']]
    other = ['| article | comparison | paper’s number | ours (laptop) | verdict | reason |', '|---|---|---|---|---|---|']
    other += [f"| {_esc(r['article'])} | {_esc(r['claim'])} | {_esc(r['paper'])} | {_esc(r['ours'])} | **{r['verdict']}** | {_esc(r['reason'])} |"
              for r in J['claims'] if not r['headline']]
    tabs = [t for t in TABLES if any(b['tables'].get(t) for b in J['by_table'])]
    every = ['| article | comparison | ' + ' | '.join(tabs) + ' |', '|---|---|' + '---|' * len(tabs)]
    def short(x):
        if x is None or x['n'] == 0: return '–'
        u = x['unit']
        return f"{fmt(x['mean'], u, True)}" + (f" ± {fmt(x['sd'], u)}" if x['n'] > 1 else '') + f" (n={x['n']}): {x['verdict']}"
    every += [f"| {_esc(b['article'])} | {_esc(b['claim'])} | " + ' | '.join(short(b['tables'][t]) for t in tabs) + ' |' for b in J['by_table']]
    gl = ['| goal | ours (mean ± sd over seeds, paired) | met (mean > 0) | verdict |', '|---|---|---|---|']
    gl += [f"| {_esc(g['goal'])} | {_esc(g['ours'])} | {'yes' if g['met'] else '**no**'} | {g['verdict']} |" for g in J.get('goals', [])]
    return '\n'.join(['# The seed articles\' claims, judged', '', 'Rule: ' + J['rule'], '', '## Headline claims', '',
                      *head, *rows, '', '## Other comparisons (laptop table)', '', *other, '',
                      '## Every results-table comparison on every results table', '', *every, '',
                      '## Goals of the equal-budget table (issue 29)', '', *gl, ''])

def write(out:Path, res:Path=RES) -> dict:
    J = judge(load(res))
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    (out / 'claims.json').write_text(json.dumps(J, indent=1, ensure_ascii=False))
    (out / 'claims.md').write_text(markdown(J))
    return J

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=str(RES / 'claims'))
    a = p.parse_args()
    J = write(Path(a.out))
    from collections import Counter
    print(Counter(r['verdict'] for r in J['claims'] if r['headline']))
