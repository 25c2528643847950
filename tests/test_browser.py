"""The explorers as a user sees them: JupyterLab on loopback, headless Chromium (Debian's `chromium`, driven by
Playwright), run every cell of nbs/41_explorers.ipynb, check that the explorer shows the trained model with its
key and accuracies above chance, move a slider, check the picture changed and no cell failed.

Screenshots go to tests/_artifacts/ (gitignored), so a failing run can be inspected. Without chromium the test is
skipped, except under CI (`CI=true`), where a missing browser is a failure."""
import os, re, shutil, subprocess, sys, time, secrets, urllib.request
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow   # trains models, or drives processes or a browser: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / 'tests' / '_artifacts'
NB = ROOT / 'nbs' / '41_explorers.ipynb'
from conftest import local_page, need_browser, free_port



@pytest.fixture
def lab(tmp_path):
    "A JupyterLab server on 127.0.0.1 with a token, rooted in a temporary folder holding a copy of the explorer notebook."
    need_browser()
    root, cfg = tmp_path / 'root', tmp_path / 'jupyter'
    root.mkdir(); cfg.mkdir()
    shutil.copy(NB, root / NB.name)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(cfg / 'config'), JUPYTER_RUNTIME_DIR=str(cfg / 'runtime'),
               IPYTHONDIR=str(cfg / 'ipython'), MPLBACKEND='Agg', PYTHONWARNINGS='ignore', JUPYTER_PLATFORM_DIRS='1',
               DROPPOS_NB_RUNS=os.environ.get('DROPPOS_NB_RUNS', str(ROOT / 'runs')))   # the copy finds the repository's trained runs
    jupyter = Path(sys.executable).with_name('jupyter')
    log = open(tmp_path / 'lab.log', 'w')
    proc = subprocess.Popen([str(jupyter), 'lab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}',
                             '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=None',
                             '--LabApp.extension_manager=readonly',
                             '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                             f'--LabApp.workspaces_dir={cfg / "workspaces"}']
                            + (['--allow-root'] if hasattr(os, 'geteuid') and os.geteuid() == 0 else []),
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(120):
            if proc.poll() is not None: break
            try:
                urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=1); break
            except Exception: time.sleep(0.5)
        else: pass
        if proc.poll() is not None: pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
        yield url, token
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()
        ART.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / 'lab.log', ART / 'jupyterlab.log')

# read from the notebook model, not the DOM: JupyterLab renders only the cells in view
CELLS_JS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content.model;
  const out = [];
  for (let i = 0; i < nb.cells.length; i++) {
    const c = nb.cells.get(i).toJSON();
    if (c.cell_type !== 'code') continue;
    out.push({n: c.execution_count, errors: (c.outputs || []).filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)});
  }
  return out;
}"""
DOM_ERRORS_JS = """() => [...document.querySelectorAll('.jp-OutputArea-output')]
  .map(e => e.innerText).filter(t => /Traceback|Error displaying widget|Failed to display/.test(t))"""

def _errors(page):
    cells = page.evaluate(CELLS_JS)
    return [e for c in cells for e in c['errors']] + page.evaluate(DOM_ERRORS_JS)

def test_explorer_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright
    url, token = lab
    ART.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser, page = local_page(pw)      # Debian's chromium; every request not to our server is refused
        shot = lambda name: page.screenshot(path=str(ART / f'explorer_{name}.png'), full_page=True)
        try:
            page.goto(f'{url}/lab/tree/{NB.name}?token={token}')
            page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=60_000)
            # the notebook's kernel is up and idle before we run anything
            page.wait_for_function("""() => { const w = window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                return w.sessionContext.isReady && k && k.status === 'idle'; }""", timeout=60_000, polling=500)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function("() => (%s)().some(c => c.n !== null)" % CELLS_JS, timeout=60_000, polling=500)
            # every code cell gets an execution number (or one fails); then both explorers show a picture
            page.wait_for_function("() => { const cs = (%s)(); return cs.every(c => c.n !== null) || cs.some(c => c.errors.length); }"
                                   % CELLS_JS, timeout=300_000, polling=1000)   # trains the default run when runs/ has none
            assert _errors(page) == [], _errors(page)
            page.wait_for_selector('.droppos-explorer img', state='attached', timeout=30_000)
            page.locator('.attention-explorer img').scroll_into_view_if_needed(timeout=30_000)
            shot('after_run_all')
            ex = page.locator('.droppos-explorer')
            img = ex.locator('img').first
            img.scroll_into_view_if_needed()
            info = lambda: ex.locator('.explorer-info').inner_text()
            src0, info0, pix0 = img.get_attribute('src'), info(), img.screenshot()
            # the trained model, said above the widgets; the key; three accuracies, the batch's above chance
            header = ex.locator('.explorer-model').inner_text()
            assert 'trained' in header and 'untrained' not in header, header
            assert 'true cell' in ex.locator('.explorer-key').inner_text()
            top1 = re.search(r'unweighted top-1: this image \d+/\d+ = [\d.]+%, batch (\d+)/(\d+)', info0)
            chance = re.search(r'chance 1/(\d+)', info0)
            assert 'weighted position accuracy' in info0 and top1 and chance, info0
            assert int(top1.group(1)) / int(top1.group(2)) > 2 / int(chance.group(1)), info0
            # the static copy of the first state is stored right after the widget: a PNG in the next output
            pngs = page.evaluate("""() => { const nb = window.jupyterapp.shell.currentWidget.content.model; let n = 0;
                for (let i = 0; i < nb.cells.length; i++) { const c = nb.cells.get(i).toJSON();
                  n += (c.outputs || []).some(o => o.data && o.data['image/png']) ? 1 : 0; } return n; }""")
            assert pngs >= 2, pngs
            # move the first slider (gamma) two steps to the right with the keyboard, as a user can
            handle = ex.locator('.widget-slider .noUi-handle').first
            handle.focus(); handle.press('ArrowRight'); handle.press('ArrowRight')
            page.wait_for_function("(s) => document.querySelector('.droppos-explorer img').getAttribute('src') !== s", arg=src0, timeout=30_000)
            page.wait_for_timeout(500)
            shot('after_slider')
            pix1, info1 = img.screenshot(), info()
            assert pix1 != pix0, "the reconstruction map did not change after moving the slider"
            vis = lambda t: int(re.search(r'\((\d+) visible patches', t).group(1))
            assert vis(info0) == 4 and vis(info1) < 4, (info0, info1)   # 16 patches, gamma up from 0.75: fewer visible patches
            assert _errors(page) == [], _errors(page)
            assert ex.locator('.explorer-status').inner_text().strip() == '', "the explorer reports an error"
        except Exception:
            shot('failure'); raise
        finally:
            browser.close()
