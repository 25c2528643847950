import os, shutil, sys, subprocess, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault('MPLBACKEND', 'Agg')
if os.environ.get('PYTEST_XDIST_WORKER'):
    # `pytest -n N` (tools/test.sh runs 2 workers on 2 cores): one thread per worker and per command it starts, so that
    # the workers share the cores instead of fighting over them
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch; torch.set_num_threads(1)

def cli(*args, timeout=600, cwd=ROOT):
    "Run the installed `droppos_nb` command in `cwd`; returns the CompletedProcess."
    exe = Path(sys.executable).with_name('droppos_nb')
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)

@pytest.fixture
def run_cli(): return cli

def wait_for_first_epoch(p:subprocess.Popen, out:Path, timeout:float=300):
    "Wait until the run of process `p` writing to `out` has logged and checkpointed its first epoch (it must still run)."
    t0 = time.time()
    while not ((out / 'checkpoint.pt').exists() and (out / 'metrics.csv').exists()
               and len((out / 'metrics.csv').read_text().splitlines()) >= 2):
        assert p.poll() is None and time.time() - t0 < timeout, "the run ended before it could be stopped"
        time.sleep(0.05)

# tools/test.sh runs `pytest -n 2 --dist loadgroup`: tests go one by one to whichever worker is free, except that a
# file whose module-scoped fixture is expensive (a trained model, a built site) keeps its tests on one worker, so the
# fixture is made once. The files that take longest (measured on 2 cores) start first, so that no long test is left
# running alone at the end while the other worker idles.
ONE_WORKER = {'test_bad_input.py', 'test_beitv2.py', 'test_beitv2_figures.py', 'test_docs.py', 'test_eval.py',
              'test_explorers.py', 'test_folders.py', 'test_mscn.py', 'test_resume.py'}
LONGEST_FIRST = ['test_learning.py', 'test_ddp.py', 'test_mae_cae.py', 'test_resume.py', 'test_mocov3.py', 'test_beitv2.py',
                 'test_mscn.py', 'test_eval.py', 'test_browser.py']

def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in ONE_WORKER: item.add_marker(pytest.mark.xdist_group(item.path.stem))
    rank = lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)     # stable: the order within a file is kept

def pytest_configure(config):
    config.addinivalue_line('markers', "slow: trains a model or drives a browser or several processes (seconds to minutes); "
                            "`pytest -m 'not slow'` (or `QUICK=1 bash tools/test.sh`) skips them, CI runs everything")

@pytest.fixture
def run_main(capsys):
    "Run `droppos_nb.cli.main` in this process (for errors and help, where a subprocess is not the point); returns returncode, stdout, stderr."
    from types import SimpleNamespace
    def run(*args):
        from droppos_nb.cli import main
        capsys.readouterr()
        try: main([str(a) for a in args]); code = 0
        except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run

CHROMIUM = os.environ.get('CHROMIUM', shutil.which('chromium') or '/usr/bin/chromium')
CI = os.environ.get('CI', '').lower() in ('true', '1')

def need(cond, why:str):
    "Skip the test when `cond` is false, saying `why`; under CI (`CI=true`) that is a failure: the test must run there."
    if cond: return
    if CI: pytest.fail(f"{why} (CI=true: this test must run; tools/setup.sh installs what it needs)")
    pytest.skip(why)

def need_browser():
    "Debian's chromium and the playwright package, or a skip (a failure under CI) that says how to install them."
    need(Path(CHROMIUM).exists(), f"no chromium at {CHROMIUM}: apt-get install chromium (tools/setup.sh does it as root)")
    try: import playwright.sync_api
    except ImportError: need(False, "the playwright package is not installed (pip install playwright)")

def free_port() -> int:
    "A free TCP port on 127.0.0.1."
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def local_page(pw):
    "Launch Debian's headless Chromium with Playwright (never `playwright install`); returns `(browser, page)` with every request not to 127.0.0.1 refused."
    import re
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                 args=['--no-sandbox', '--disable-gpu', '--disable-background-networking',
                                       '--disable-dev-shm-usage', '--no-first-run'])
    page = browser.new_page(viewport=dict(width=1400, height=1000))
    page.route(re.compile(r'^(?!http://127\.0\.0\.1:).*'), lambda route: route.abort())   # nothing leaves the machine
    return browser, page


@pytest.fixture(autouse=True)
def no_autocast_left_behind():
    """No test may leave CPU autocast on for the tests after it in the same process (an interrupted bf16 fit once did:
    a later figure test then drew bf16 tensors). Fails the test that leaks it, and turns it off for the next ones."""
    yield
    import torch
    if torch.is_autocast_enabled('cpu'):
        torch.set_autocast_enabled('cpu', False)
        pytest.fail("CPU autocast was left on after this test")
