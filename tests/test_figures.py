"""The figures of the results tutorials are readable at the docs' width: they are drawn by running the notebooks' own cells
(all but those marked `slow` or `retrain`, which train) and measured from the figure objects after drawing."""
import itertools, os, re
from pathlib import Path
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.text import Text
import nbformat, pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / 'nbs' / 'tutorials'
NOTEBOOKS = ['masked_siamese_convnets', 'small_scale_results']
# The docs (mkdocs-material) show a page's content in a column about 720 px wide (on the browser test's 1400 px window):
# a wider picture is scaled down to it, and its text with it. Text is readable when it is at least 10 pt at 100 dpi
# (14 px) once shown at that width; tick labels included.
DOCS_PX, MIN_DPI, MIN_PT = 720, 100, 10

def run_notebook(name:str):
    "Run the cells of tutorial `name` that do not train; returns (figures shown, objects displayed)."
    nb = nbformat.read(TUTORIALS / f'{name}.ipynb', as_version=4)
    figs, shown = [], []
    def show(*a, **k):
        figs.extend(plt.figure(n) for n in plt.get_fignums() if plt.figure(n) not in figs)
    ns = dict(display=lambda *objs, **k: shown.extend(objs))
    old_show, cwd, rc = plt.show, os.getcwd(), dict(matplotlib.rcParams)
    plt.show = show; os.chdir(TUTORIALS)
    try:
        for c in nb.cells:
            if c.cell_type != 'code' or re.search(r'^#\|\s*(slow|retrain|eval:\s*false)', c.source, re.M): continue
            src = '\n'.join(l for l in c.source.splitlines() if not l.lstrip().startswith(('%', '!')))
            exec(compile(src, f'{name}.ipynb', 'exec'), ns)
            if src.strip() and not src.strip().endswith(';'):    # a cell's last expression is displayed
                last = src.strip().splitlines()[-1]
                if re.match(r'^[\w.\[\]\'"]+$', last): shown.append(eval(last, ns))
    finally:
        plt.show = old_show; os.chdir(cwd)
        matplotlib.rcParams.update({k: v for k, v in rc.items() if k in matplotlib.rcParams and not k.startswith('backend')})
    return figs, shown

@pytest.fixture(scope='module', params=NOTEBOOKS)
def drawn(request):
    figs, shown = run_notebook(request.param)
    yield request.param, figs, shown
    plt.close('all')

def texts(fig):
    "Every visible, non-empty text of `fig`."
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and t.figure is fig]

def effective_pt(fig, t) -> float:
    "The size of text `t` in points at 100 dpi, once the figure is shown at the docs' width (scaled down when wider)."
    return t.get_fontsize() * min(fig.dpi, DOCS_PX / fig.get_figwidth()) / 100

def test_figures_are_readable(drawn):
    name, figs, _ = drawn
    assert figs, f"{name}: no figure drawn"
    problems = []
    for i, fig in enumerate(figs):
        fig.canvas.draw(); r = fig.canvas.get_renderer()
        where = f"{name}, figure {i + 1} ({fig._suptitle.get_text()[:40] if fig._suptitle else ''})"
        if fig.dpi < MIN_DPI: problems.append(f"{where}: {fig.dpi:.0f} dpi")
        small = sorted({(round(effective_pt(fig, t), 1), t.get_text()[:25]) for t in texts(fig) if effective_pt(fig, t) < MIN_PT - 1e-6})
        if small: problems.append(f"{where}: text under {MIN_PT} pt at the docs' width: {small[:4]}")
        axes = [ax for ax in fig.axes if ax.get_visible()]
        for leg in [*fig.legends, *(ax.get_legend() for ax in axes if ax.get_legend())]:
            lb = leg.get_window_extent(r)
            if any(lb.overlaps(ax.get_window_extent(r)) for ax in axes): problems.append(f"{where}: a legend lies on an axes' data")
        for ax in axes:
            for axis in (ax.xaxis, ax.yaxis):
                ext = [t.get_window_extent(r).shrunk(.98, .98) for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
                if any(a.overlaps(b) for a, b in itertools.combinations(ext, 2)):
                    problems.append(f"{where}: tick labels overlap on {axis.axis_name}")
    assert not problems, '\n'.join(problems)

def test_tables_show_no_nan(drawn):
    "Tables show a dash, not NaN, where there is no number; floor tables order linear before kNN, as their labels say."
    import pandas as pd
    name, _, shown = drawn
    tables = [o for o in shown if isinstance(o, pd.DataFrame)]
    for t in tables:
        assert 'NaN' not in t.to_string() and 'nan' not in t.to_string(), f"{name}: a table shows NaN:\n{t}"
        cols = [c for c in t.columns if c in ('linear', 'knn')]
        if len(cols) == 2 and any('logistic regression / kNN' in str(i) for i in t.index): assert cols == ['linear', 'knn'], cols
