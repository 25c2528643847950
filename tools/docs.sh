#!/usr/bin/env bash
# Build the docs site into _docs/ from the notebooks' stored outputs (nothing is executed), then check it: every
# notebook has a page, no page shows an error output or a widget's Python repr (`VBox(children=...`: docs/hooks.py drops
# widget outputs, the stored snapshot picture stays) nor loads a widget manager from a CDN, and every image a notebook
# stores is on its page.
# MkDocs + mkdocs-jupyter (mkdocs.yml, docs/hooks.py) stand in for nbdev_docs, whose Quarto needs a binary download.
# Open _docs/index.html in a browser, or serve it: .venv/bin/mkdocs serve  (http://127.0.0.1:8000, rebuilds on save)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export NO_MKDOCS_2_WARNING=1 PYTHONWARNINGS=ignore
rm -rf _docs
# --strict: any MkDocs warning (a bad config, a notebook that cannot be read or converted) fails the build
if ! .venv/bin/mkdocs build --strict --quiet; then
  echo "docs: the build failed (see the messages above)" >&2; exit 1
fi
.venv/bin/python - <<'EOF'
import json, re, sys
from html.parser import HTMLParser
from pathlib import Path
sys.path.insert(0, 'docs')
from hooks import process_nb, image_outputs, widget_reprs

VOID = {'img', 'br', 'hr', 'input', 'meta', 'link', 'source', 'wbr', 'area', 'col', 'embed', 'param', 'track'}
class Outputs(HTMLParser):
    "The text, <img> count and top-level <svg> count inside the cells' output areas of a page."
    def __init__(self):
        super().__init__(); self.depth, self.text, self.imgs, self.svgs = 0, [], 0, 0
    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            if tag == 'img' and self.depth: self.imgs += 1
            return
        if self.depth: self.depth += 1; self.svgs += (tag == 'svg' and self.depth == 2)
        elif 'jp-OutputArea-output' in (dict(attrs).get('class') or '').split(): self.depth = 1
    def handle_endtag(self, tag):
        if self.depth and tag not in VOID: self.depth -= 1
    def handle_data(self, data):
        if self.depth: self.text.append(data)

_re_err = re.compile(r'Traceback \(most recent call last\)')   # Python's and IPython's tracebacks both say it
# a widget manager loaded from a CDN (what mkdocs-jupyter adds for a notebook with saved widget state): no widget JS
# is shipped with the site, so a page shows widgets only as their stored pictures
_re_widget_js = re.compile(r'(?:https?:)?//[^"\'\s<>]*@jupyter-(?:js-)?widgets/[^"\'\s<>]*', re.I)
nbs = sorted(p for p in Path('nbs').rglob('*.ipynb')
             if not any(part.startswith(('_', '.')) for part in p.relative_to('nbs').parts))
problems, rows = [], []
for nbp in nbs:
    rel = nbp.relative_to('nbs')
    page = Path('_docs') / rel.with_suffix('.html')
    if not page.exists(): problems.append(f"{nbp}: no page {page}"); continue
    nb = process_nb(json.loads(nbp.read_text(encoding='utf-8')))
    for i, c in enumerate(nb['cells']):
        for o in c.get('outputs', []):
            if o.get('output_type') == 'error': problems.append(f"{nbp}: a shown cell stores an error output: {o.get('ename')}: {o.get('evalue')}")
    html = page.read_text(encoding='utf-8')
    out = Outputs(); out.feed(html); out.close()
    text = ''.join(out.text)
    if reprs := widget_reprs(text):
        problems.append(f"{page}: an output shows a widget's Python repr instead of a picture: {reprs[0]!r}")
    for m in _re_widget_js.finditer(html): problems.append(f"{page}: loads a widget manager from a CDN: {m.group(0)!r}")
    if m := _re_err.search(text):
        problems.append(f"{page}: an output shows an error: {text[max(0, m.start()-100):m.end()+200]!r}")
    want, got = image_outputs(nb), out.imgs + out.svgs
    if got < want: problems.append(f"{page}: {got} images on the page, but {nbp} shows {want} image outputs")
    rows.append(f"  {str(page):45} {want:3d} image(s) expected, {got:3d} found")
print("docs check:\n" + '\n'.join(rows))
if not nbs: problems.append("no notebooks found in nbs/")
if problems:
    print("docs check FAILED:\n  " + '\n  '.join(problems), file=sys.stderr); sys.exit(1)
print(f"docs OK: {len(nbs)} notebooks -> {len(nbs)} pages in _docs/ (open _docs/index.html)")
EOF
