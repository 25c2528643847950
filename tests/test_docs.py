"""The docs site as a reader sees it: `bash tools/docs.sh` builds _docs/ from the notebooks' stored outputs (and checks
every page), then headless Chromium (Debian's `chromium`, driven by Playwright, as in test_browser.py) opens the home
page and a page with figures over a loopback HTTP server: the navigation lists every notebook under its title, in
order, every figure the notebook stores is on the page and loaded, and no output shows an error. No page shows a
widget's Python repr (`VBox(children=...`) or loads a widget manager from a CDN: an explorer is its stored picture.

Screenshots go to tests/_artifacts/ (gitignored). Without chromium the browser test is skipped, except under CI
(`CI=true`), where a missing browser is a failure; the build test runs everywhere."""
import functools, importlib.util, json, os, re, shutil, subprocess, threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow   # trains models, or drives processes or a browser: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / 'tests' / '_artifacts'
SITE, NBS = ROOT / '_docs', ROOT / 'nbs'
from conftest import local_page, need_browser
PREFERRED = ['40_viz.ipynb', '12_cae.ipynb']   # the figure-bearing page to open, if it stores figures


def _hooks():
    "docs/hooks.py: the nbdev rules the site applies (which cells are shown), reused to know what a page must show."
    spec = importlib.util.spec_from_file_location('docs_hooks', ROOT / 'docs' / 'hooks.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def _notebooks():
    return sorted(p for p in NBS.rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(NBS).parts))

@pytest.fixture(scope='module')
def site():
    "Build the site with the project's command; returns its output."
    r = subprocess.run(['bash', 'tools/docs.sh'], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"tools/docs.sh failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r.stdout

def test_docs_build(site):
    assert 'docs OK' in site, site
    for nb in _notebooks(): assert (SITE / nb.relative_to(NBS).with_suffix('.html')).exists(), nb

class _OutputText(HTMLParser):
    "The text inside a page's cell outputs (`.jp-OutputArea-output`), where a widget's repr would show."
    def __init__(self): super().__init__(); self.depth, self.text = 0, []
    def handle_starttag(self, tag, attrs):
        if tag in _VOID: return
        if self.depth: self.depth += 1
        elif 'jp-OutputArea-output' in (dict(attrs).get('class') or '').split(): self.depth = 1
    def handle_endtag(self, tag):
        if self.depth and tag not in _VOID: self.depth -= 1
    def handle_data(self, data):
        if self.depth: self.text.append(data)

_VOID = {'img', 'br', 'hr', 'input', 'meta', 'link', 'source', 'wbr', 'area', 'col', 'embed', 'param', 'track'}
_re_box = re.compile(r'\b(?:[VH]?Box|GridBox)\(children=')

def test_no_widget_debris(site):
    """No page shows a widget's Python repr where the widget was (an explorer shows its stored snapshot instead), and
    no page loads a widget manager from a CDN."""
    hooks, bad, pages = _hooks(), [], sorted(SITE.rglob('*.html'))
    assert pages, "no pages built"
    for page in pages:
        html = page.read_text(encoding='utf-8')
        p = _OutputText(); p.feed(html); p.close()
        text = ''.join(p.text)
        reprs = [m.group(0) for m in _re_box.finditer(text)] + hooks.widget_reprs(text)
        bad += [f"{page.relative_to(SITE)}: {r!r}" for r in reprs]
        if '@jupyter-widgets/' in html or '@jupyter-js-widgets' in html:
            bad.append(f"{page.relative_to(SITE)}: a widget manager from a CDN")
    assert not bad, "widget debris on the docs pages:\n" + '\n'.join(bad[:20])
    # the explorers' page still shows their stored snapshots (the pictures that stand in for the widgets)
    ex = SITE / '41_explorers.html'
    if ex.exists(): assert ex.read_text(encoding='utf-8').count('<img') >= 2, "41_explorers: the snapshots are missing"

@pytest.fixture(scope='module')
def server(site):
    "_docs/ over HTTP on 127.0.0.1 (the search and links work as they will when published)."
    handler = functools.partial(type('Quiet', (SimpleHTTPRequestHandler,), {'log_message': lambda *a: None}), directory=str(SITE))
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True); t.start()
    try: yield f'http://127.0.0.1:{httpd.server_address[1]}'
    finally: httpd.shutdown(); httpd.server_close()

# figures: every <img> in a cell's output, and whether it decoded to a picture; errors: tracebacks in any output
PAGE_JS = """() => {
  const outs = [...document.querySelectorAll('.jp-OutputArea-output')];
  const imgs = outs.flatMap(o => [...o.querySelectorAll('img')]);
  return {imgs: imgs.map(i => ({w: i.naturalWidth, h: i.naturalHeight, done: i.complete})),
          errors: outs.map(o => o.innerText).filter(t => /Traceback \\(most recent call last\\)/.test(t)).map(t => t.slice(0, 500)),
          nav: [...document.querySelectorAll('nav.md-nav--primary a.md-nav__link[href$=".html"]')]
                 .map(a => [a.getAttribute('href'), a.innerText.trim()]),
          h1: (document.querySelector('article h1') || {}).innerText};
}"""

def test_docs_in_browser(server):
    need_browser()
    from playwright.sync_api import sync_playwright
    hooks = _hooks()
    nbs = {nb: hooks.process_nb(json.loads(nb.read_text(encoding='utf-8'))) for nb in _notebooks()}
    figs = [nb for nb in nbs if hooks.image_outputs(nbs[nb]) and nb.name != 'index.ipynb']
    assert figs, "no notebook stores a figure: nothing to check the figures with"
    fig_nb = next((nb for name in PREFERRED for nb in figs if nb.name == name), figs[0])
    home = NBS / 'index.ipynb'
    ART.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser, page = local_page(pw)      # Debian's chromium; every request not to our server is refused (CDN scripts just fail)
        try:
            for nb in ([home] if home in nbs else []) + [fig_nb]:
                rel = nb.relative_to(NBS).with_suffix('.html')
                name = 'home' if nb == home else nb.stem
                page.goto(f'{server}/{rel.as_posix()}', wait_until='load', timeout=60_000)
                page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea-output img')].every(i => i.complete)",
                                       timeout=30_000)
                info = page.evaluate(PAGE_JS)
                page.screenshot(path=str(ART / f'docs_{name}.png'), full_page=True)
                want = hooks.image_outputs(nbs[nb])
                assert info['errors'] == [], f"{rel}: an output shows an error: {info['errors']}"
                assert len(info['imgs']) >= want, f"{rel}: {len(info['imgs'])} figures on the page, the notebook shows {want}"
                bad = [i for i in info['imgs'] if not (i['w'] > 0 and i['h'] > 0)]
                assert not bad, f"{rel}: {len(bad)} of {len(info['imgs'])} figures did not load: {bad}"
                if nb == fig_nb: assert want >= 1 and len(info['imgs']) >= 1
                if (t := hooks.title(nbs[nb])): assert _plain(info['h1']) == _plain(t), (info['h1'], t)
                if nb == home:
                    # the navigation: every notebook's page, in file-name (numeric) order, under its first heading
                    hrefs = [h for h, _ in info['nav']]
                    want_hrefs = [p.relative_to(NBS).with_suffix('.html').as_posix() for p in nbs]
                    want_hrefs.sort(key=lambda h: (h.split('/')[:-1], Path(h).stem != 'index', h))   # MkDocs' order
                    assert hrefs == want_hrefs, (hrefs, want_hrefs)
                    for h, text in info['nav']:
                        t = hooks.title(nbs[NBS / Path(h).with_suffix('.ipynb')])
                        if t: assert _plain(text) == _plain(t), (h, text, t)
        except Exception:
            page.screenshot(path=str(ART / 'docs_failure.png'), full_page=True); raise
        finally:
            browser.close()

def _plain(s):
    "Heading text without markdown marks, anchors or extra space, for comparing a title with what the page shows."
    s = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', s or '')       # [text](url) -> text
    return ' '.join(re.sub(r'<[^>]+>|[`*_¶]', '', s).split())
