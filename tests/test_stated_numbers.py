"""Numbers stated in prose come from code: the sizes, epochs, times and counts that the README, tools/pretrain.sh and the
notebooks' text state are checked against the registry's recipes, the last measured runs in bench/results/ and the code."""
import json, math, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()
RES = ROOT / 'bench' / 'results'
WORDS = dict(one=1, two=2, three=3, four=4, five=5, six=6, seven=7, eight=8, nine=9, ten=10)

@pytest.fixture(scope='module')
def recipes():
    "The DropPos recipes of the registry, each with the depth and the number of positions of the model it builds."
    from droppos_nb.registry import get_method
    spec = get_method('droppos')
    out = {}
    for name in ('laptop', 'paper'):
        r = spec.recipe(name)
        r['depth'] = len(spec.build(r).encoder.blocks)               # a recipe without `depth` gets the arch's own
        r['n_pos'] = (r['img_size'] // r['patch_size']) ** 2
        out[name] = r
    return out

def one(pattern:str, text:str=README):
    "The groups of the single match of `pattern` in `text` (numbers as numbers)."
    ms = list(re.finditer(pattern, text))
    assert len(ms) == 1, f"expected one statement matching {pattern!r}, found {len(ms)}"
    return [float(g) if re.fullmatch(r'[\d.]+', g) else g for g in ms[0].groups()]

def number(word:str) -> int: return WORDS.get(word.lower(), None) or int(word)

def md_text(nb:str) -> str:
    "The markdown cells of notebook `nb` (nbs/...), joined."
    cells = json.loads((ROOT / 'nbs' / nb).read_text())['cells']
    return '\n\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')

def default_runs():
    import pandas as pd
    return {f.parent.name: pd.read_csv(f) for f in sorted((RES / 'default_run').glob('cpu-*/metrics.csv'))}

# --- the default (laptop) recipe, as the README states it --------------------------------------------------------------

def test_readme_default_run_sizes(recipes):
    L = recipes['laptop']
    img, patch, g1, g2, n, ep = one(r'(\d+) px digits cut into\s+(\d+) px patches: a (\d+)x(\d+) grid of (\d+) positions, (\d+) epochs')
    assert (img, patch, g1, g2, n, ep) == (L['img_size'], L['patch_size'], *(2 * [L['img_size'] // L['patch_size']]), L['n_pos'], L['epochs'])
    for d in re.findall(r'(\d+)-block ViT-Tiny', README): assert int(d) == L['depth']
    patch, blr, ep = one(r'ViT-Tiny, (\d+) px patches, no random crop, blr ([\de.-]+), (\d+) epochs')
    assert (patch, float(blr), ep) == (L['patch_size'], L['blr'], L['epochs'])
    n, pct, patch = one(r'chance is 1/(\d+) = ([\d.]+)% with the\s+default (\d+) px patches')
    assert (n, patch) == (L['n_pos'], L['patch_size']) and pct == round(100 / n, 2)

def test_readme_calls_no_other_model_the_default(recipes):
    "A line that names the default model gives the default's image and patch size."
    L = recipes['laptop']
    for line in README.splitlines():
        if re.search(r'default model', line):
            for img, patch in re.findall(r'(\d+) px / (\d+) px', line):
                assert (int(img), int(patch)) == (L['img_size'], L['patch_size']), line

def test_readme_default_run_times_and_epochs(recipes):
    runs = default_runs()
    assert runs
    ep = one(r'training \((\d+) epochs\)')[0]
    assert all(len(m) == ep == recipes['laptop']['epochs'] for m in runs.values())
    limit = one(r'under\s+(\w+) minutes of training on 2 CPU cores of either kind')[0]    # the first statement...
    for m in runs.values(): assert m.seconds.sum() < 60 * number(limit)
    for w in re.findall(r'under\s+(\w+) minutes of training on 2 cores of either kind', README):   # ... and the second
        for m in runs.values(): assert m.seconds.sum() < 60 * number(w)

def test_readme_paper_recipe(recipes):
    P = recipes['paper']
    R = json.loads((RES / 'small_scale_paper' / 'results.json').read_text())['summary']
    depth, patch, ep, minutes, acc, n = one(r'`--recipe paper`: (\d+) blocks,\s+(\d+) px patches, (\d+) epochs, about (\d+) minutes\)'
                                            r'\s+ended at ([\d.]+)% of (\d+) positions')
    assert (depth, patch, ep, n) == (P['depth'], P['patch_size'], P['epochs'], P['n_pos'])
    assert acc == round(100 * R['DropPos']['pretrain_pos_acc']['mean'], 1)
    assert minutes == round(R['DropPos']['pretrain_seconds']['mean'] / 60)
    img, depth, patch = one(r'the paper recipe on the same (\d+) px digits \((\d+) blocks, (\d+) px patches\)')
    assert (img, depth, patch) == (P['img_size'], P['depth'], P['patch_size'])

def test_readme_points_above_random():
    "'N points above a random one' is the kNN gap of the results table the README shows."
    S = json.loads((RES / 'small_scale' / 'results.json').read_text())['summary']
    pts = one(r"the laptop recipe's encoder is (\d+) points above a random one of its shape")[0]
    assert pts == round(100 * (S['DropPos']['knn']['mean'] - S['random init']['knn']['mean']))

# --- counts -----------------------------------------------------------------------------------------------------------

def test_readme_command_count():
    word, body = one(r'\n## (\w+) commands\n([\s\S]*?)\n## ')
    leads = re.findall(r'^\*\*[A-Z][^*]+\*\*', body, re.M)     # each command is a paragraph with a bold lead
    assert number(word) == len(leads), leads

def test_readme_explorer_count():
    "The explorers every method shares (`explorers`) and those the methods' specs declare (issue 24: DropPos's, BEiT v2's)."
    import droppos_nb.explorers as E
    from droppos_nb.registry import get_method, method_names
    explorers = {n for n in E.__all__ if n.endswith('Explorer')}
    explorers |= {get_method(m).explorer.__name__ for m in method_names() if get_method(m).explorer is not None}
    assert number(one(r'(\w+) ipywidgets explorers \(')[0]) == len(explorers), explorers

# --- tools/pretrain.sh --------------------------------------------------------------------------------------------------

def test_pretrain_script_states_the_default(recipes):
    L = recipes['laptop']
    head = '\n'.join(l for l in (ROOT / 'tools' / 'pretrain.sh').read_text().splitlines() if l.startswith('#'))
    eps = re.findall(r'(\d+) epochs', head); assert eps and all(int(e) == L['epochs'] for e in eps), head
    for img in re.findall(r'(\d+) px (?:MNIST )?digits', head): assert int(img) == L['img_size'], head
    for p in re.findall(r'(\d+) px patches', head): assert int(p) == L['patch_size'], head
    for d in re.findall(r'(\d+)-block', head): assert int(d) == L['depth'], head

# --- the method notebooks' introductions state the default model ---------------------------------------------------------

def test_droppos_intro_states_the_default(recipes):
    L = recipes['laptop']
    text = md_text('10_droppos.ipynb')
    img, patch, n = one(r'ours \((\d+) px, (\d+) px patches, N = (\d+)\)', text)
    assert (img, patch, n) == (L['img_size'], L['patch_size'], L['n_pos'])
    keep = int(L['n_pos'] * (1 - L['mask_ratio'])); pos = int(keep * (1 - L['pos_mask_ratio']))
    assert one(r'49 of 196 \((\d+) of (\d+)\)', text) == [keep, L['n_pos']]
    assert one(r'12 of 49 \((\d+) of (\d+)\)', text) == [pos, keep]

def test_cae_intro_states_the_default():
    "CAE's laptop recipe keeps its official 4 px patches (N = 64) and masks half of them."
    from droppos_nb.registry import get_method
    C = get_method('cae').laptop
    n_pos = (C['img_size'] // C['patch_size']) ** 2
    half, n = one(r'(\d+) of our (\d+)', md_text('12_cae.ipynb'))
    assert (half, n) == (int(n_pos * C['mask_ratio']), n_pos)
