"""The demo app as a visitor sees it: `bash tools/demo.sh --port N` serves demo/explorers.ipynb with Voila on loopback,
headless Chromium (Debian's `chromium`, driven by Playwright, as in test_browser.py) opens it: the DropPos explorer
says it shows a trained model, moving its γ slider changes the picture, the attention explorer shows trained models,
the CAE and codebook explorers show trained models or name the command that trains what is missing (a full test run
trains only the DropPos run; MAE, CAE and the VQ-KD tokenizer are trained on request), no code is shown and no error.

Screenshots and the server's log go to tests/_artifacts/ (gitignored). Without chromium, playwright or voila the test
is skipped, except under CI (`CI=true`), where that is a failure."""
import os, re, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow   # trains models, or drives processes or a browser: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / 'tests' / '_artifacts'
from conftest import local_page, need, need_browser, free_port



@pytest.fixture
def demo(tmp_path):
    "The demo app (`tools/demo.sh`) on a free loopback port, with the repository's trained runs: its URL."
    need_browser()
    need(Path(sys.executable).with_name('voila').exists(), "voila is not installed (pip install voila)")
    cfg, port, log_path = tmp_path / 'jupyter', free_port(), tmp_path / 'voila.log'
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(cfg / 'config'), JUPYTER_RUNTIME_DIR=str(cfg / 'runtime'),
               JUPYTER_DATA_DIR=str(cfg / 'data'), IPYTHONDIR=str(cfg / 'ipython'), JUPYTER_PLATFORM_DIRS='1',
               DROPPOS_NO_HOOKS='1', DROPPOS_NB_RUNS=os.environ.get('DROPPOS_NB_RUNS', str(ROOT / 'runs')))
    env.pop('DROPPOS_NB_DEMO_TRAIN', None)     # a visitor never waits for training
    log = open(log_path, 'w')
    # its own session, so that the server and its kernels are stopped together at the end
    proc = subprocess.Popen(['bash', 'tools/demo.sh', '--port', str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0 = time.time()
        up = lambda: 'running at' in log_path.read_text()      # Voila's "Voilà is running at: URL"
        while not up() and proc.poll() is None and time.time() - t0 < 120: time.sleep(0.2)
        if not up(): pytest.fail(f"the demo did not start:\n{log_path.read_text()[-3000:]}")
        yield f'http://127.0.0.1:{port}/'
    finally:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: proc.wait(15)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        log.close()
        ART.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, ART / 'demo_voila.log')

# what a visitor must not see: an error, a traceback, or the notebook's code
_re_bad = re.compile(r'Traceback|Error displaying widget|Failed to display|error when executing|Error:'
                     r'|No trained DropPos')
_CODE = ('import ', 'trained_model', 'explorer(m', 'def ')
READY_JS = """() => document.querySelector('.droppos-explorer .explorer-model')
    && document.querySelector('.droppos-explorer img')
    && document.querySelector('.droppos-explorer img').naturalWidth > 0
    || /Traceback|error when executing|No trained DropPos/.test(document.body.innerText)"""

def test_demo_app(demo):
    from playwright.sync_api import sync_playwright
    ART.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with sync_playwright() as pw:
        browser, page = local_page(pw)      # Debian's chromium; every request not to 127.0.0.1 is refused (no CDN)
        shot = lambda name: page.screenshot(path=str(ART / f'demo_{name}.png'), full_page=True)
        try:
            page.goto(demo, wait_until='domcontentloaded', timeout=60_000)
            page.wait_for_function(READY_JS, timeout=120_000, polling=500)      # a kernel runs the notebook: ~10 s
            bad = lambda t: (m := _re_bad.search(t)) and f"the page shows {m.group(0)!r}: {t[m.start():m.start()+600]}"
            assert not bad(page.inner_text('body')), bad(page.inner_text('body'))
            # the last cell's output (the codebook explorer, or the command that trains its tokenizer): all cells ran
            page.wait_for_function("() => document.querySelector('.code-explorer img') || /Traceback|error when "
                                   "executing|beitv2_figures/.test(document.body.innerText)", timeout=60_000)
            text = page.inner_text('body')
            assert not bad(text), bad(text)
            ex = page.locator('.droppos-explorer')
            header = ex.locator('.explorer-model').inner_text()
            assert 'untrained' not in header and re.search(r'trained \d+ epochs', header), header
            for cls in ('attention-explorer', 'masked-model-explorer'):      # the other explorers, on trained models
                if cls == 'masked-model-explorer' and not page.locator(f'.{cls}').count():
                    assert 'No trained CAE model here' in text and '--method cae' in text, text[:3000]; continue
                h = page.locator(f'.{cls} .explorer-model').first.inner_text()
                assert 'untrained' not in h and re.search(r'trained \d+ epochs', h), (cls, h)
            assert page.locator('.code-explorer').count() == 1 or 'bench/beitv2_figures.py' in text, \
                "neither the codebook explorer nor the command that trains its tokenizer"
            # no code: Voila strips the sources, and no editor is on the page
            code = page.locator('.jp-CodeCell .jp-InputArea, .jp-InputArea .highlight, .jp-InputPrompt, .cm-editor, '
                                '.CodeMirror')
            assert code.count() == 0, code.first.inner_text()
            assert not [c for c in _CODE if c in text], [c for c in _CODE if c in text]
            for cls in ('attention-explorer', 'masked-model-explorer', 'code-explorer'):   # the others' pictures
                if (el := page.locator(f'.{cls}')).count(): el.screenshot(path=str(ART / f'demo_{cls}.png'))
            img = ex.locator('img').first
            img.scroll_into_view_if_needed()
            ex.screenshot(path=str(ART / 'demo_before_slider.png'))
            src0, pix0 = img.get_attribute('src'), img.screenshot()
            info0 = ex.locator('.explorer-info').inner_text()
            # move the γ slider (the first one) two steps to the right with the keyboard, as a visitor can
            handle = ex.locator('.widget-slider .noUi-handle').first
            handle.focus(); handle.press('ArrowRight'); handle.press('ArrowRight')
            page.wait_for_function("(s) => document.querySelector('.droppos-explorer img').getAttribute('src') !== s",
                                   arg=src0, timeout=30_000)
            page.wait_for_timeout(300)
            ex.screenshot(path=str(ART / 'demo_after_slider.png'))
            pix1, info1 = img.screenshot(), ex.locator('.explorer-info').inner_text()
            assert pix1 != pix0, "the picture did not change after moving the slider"
            vis = lambda t: int(re.search(r'\((\d+) visible patches', t).group(1))
            assert vis(info1) < vis(info0), (info0, info1)     # γ up: fewer visible patches, said in the line above
            assert ex.locator('.explorer-status').inner_text().strip() == '', "the explorer reports an error"
            assert not bad(page.inner_text('body')), bad(page.inner_text('body'))
        except Exception:
            shot('failure'); raise
        finally:
            browser.close()
    print(f"demo page: {time.time() - t0:.1f} s in the browser")
