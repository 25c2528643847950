"""MkDocs hooks (see mkdocs.yml): nbdev's documentation rules, applied to a copy of each notebook before mkdocs-jupyter
renders it from its stored outputs. Nothing is executed, so what nbdev would compute (the automatic `show_doc` of
exported objects) is replaced by the exported source, folded.

Per code cell, from its leading `#|` directives:
  - `hide`, `exporti`, `default_exp`, `include: false`: the cell is dropped;
  - `export`/`exports` cells: the source is shown folded (a <details> block whose summary names what the cell defines),
    without its directives, since nbdev's automatic `show_doc` needs execution; cells that only import are dropped;
  - `echo: false` and `show_doc(...)` cells: only the output is shown; `output: false`: only the input;
  - lines ending in `#| hide_line` are removed; every `#|` directive line is removed from what is shown.
Markdown cells: headings ending in ` -` are dropped (as nbdev does), links to `X.ipynb` point to the page `X.html`.
Outputs: show_doc's Pandoc-style `[source](url){target=... style=...}` link becomes an HTML link. A widget's output
(`application/vnd.jupyter.widget-view+json`) is dropped with its `text/plain` repr (`VBox(children=(...`) and so is
the notebook's saved widget state, so the page shows no repr and loads no widget manager from a CDN: an explorer shows
as the snapshot picture its notebook stores after it (`explorer.snapshot()`); `tools/demo.sh` serves the live ones.

The processed copies go to _proc/mkdocs/ (git-ignored); mkdocs-jupyter reads them instead of nbs/.
"""
import ast, copy, json, re
from pathlib import Path
from mkdocs.exceptions import PluginError

_re_dir = re.compile(r'^\s*#\|\s*(.*?)\s*$')
_re_hide_line = re.compile(r'#\|\s*hide_line\s*$')
_re_attr_link = re.compile(r'\[([^\]\n]*)\]\(([^)\s]+)\)\{((?:\s*[\w-]+="[^"]*")+)\s*\}')
_re_nb_link = re.compile(r'(\]\()([^)\s#:]+)\.ipynb([)#])')
_DROP = {'hide', 'exporti', 'default_exp'}
_EXPORT = {'export', 'exports'}
IMAGE_MIMES = ('image/png', 'image/jpeg', 'image/gif', 'image/svg+xml')
WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json'


def _src(cell): return ''.join(cell.get('source', ''))


def directives(src):
    "The leading `#|` directives of a cell, as {key: value} (value '' for a bare `#| export`), and the remaining source."
    lines, d = src.splitlines(), {}
    i = 0
    while i < len(lines) and (m := _re_dir.match(lines[i])):
        body = m.group(1)
        key, sep, val = body.partition(':')
        if not sep or ' ' in key.strip(): key, _, val = body.partition(' ')  # `#| export mod`, `#| default_exp core`
        d[key.strip().lower()] = val.strip().lower()
        i += 1
    return d, '\n'.join(lines[i:]).strip('\n')


def _imports_only(src):
    try: tree = ast.parse(src)
    except SyntaxError: return False
    return all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body)


def _public_names(src):
    try: tree = ast.parse(src)
    except SyntaxError: return []
    names = []
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.append(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                names += [e.id for e in ast.walk(t) if isinstance(e, ast.Name)]
    return [x for x in names if not x.startswith('_')]


def _folded_source(src):
    "A markdown cell showing exported source folded, as nbdev's `exports` does; the summary names what it defines."
    names = _public_names(src)
    summary = 'Exported source' + (': ' + ', '.join(f'<code>{n}</code>' for n in names) if names else '')
    fence = '`' * max(3, 1 + max((len(r) for r in re.findall(r'`+', src)), default=0))
    return {'cell_type': 'markdown', 'metadata': {},
            'source': f'<details class="exported-source"><summary>{summary}</summary>\n\n{fence}python\n{src}\n{fence}\n\n</details>'}


def _only_show_docs(src):
    "Whether the cell only calls `show_doc(...)` (nbdev shows such cells by their output alone)."
    try: tree = ast.parse(src)
    except SyntaxError: return False
    return bool(tree.body) and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                                   and getattr(n.value.func, 'id', None) == 'show_doc' for n in tree.body)


def _tag(cell, tag): cell.setdefault('metadata', {}).setdefault('tags', []).append(tag)


def drop_widgets(outputs):
    "`outputs` without widget views: a widget's output loses its view and its `text/plain` repr (and goes if empty)."
    res = []
    for o in outputs:
        data = o.get('data', {})
        if WIDGET_VIEW in data:
            data = {k: v for k, v in data.items() if k not in (WIDGET_VIEW, 'text/plain')}
            if not data: continue
            o = {**o, 'data': data}
        res.append(o)
    return res


def process_cell(cell):
    "The cell as the docs show it (a new dict), or None when the docs leave it out."
    cell = copy.deepcopy(cell)
    src = _src(cell)
    if cell['cell_type'] == 'markdown':
        s = src.strip()
        if s.startswith('#') and '\n' not in s and s.endswith(' -'): return None
        cell['source'] = _re_nb_link.sub(r'\1\2.html\3', src)
        return cell
    if cell['cell_type'] != 'code': return cell
    d, body = directives(src)
    if d.keys() & _DROP or d.get('include') == 'false': return None
    body = '\n'.join(l for l in body.splitlines() if not _re_hide_line.search(l)).strip('\n')
    outputs = cell['outputs'] = drop_widgets(cell.get('outputs', []))
    if d.keys() & _EXPORT and not outputs:
        if not body.strip() or _imports_only(body): return None
        return _folded_source(body)
    if not body.strip() and not outputs: return None
    cell['source'] = body
    if d.get('echo') == 'false' or _only_show_docs(body):
        _tag(cell, 'docs-hide-input')
    if d.get('output') == 'false': _tag(cell, 'docs-hide-output'); cell['outputs'] = []
    for o in cell.get('outputs', []):
        md = o.get('data', {}).get('text/markdown')
        if md is not None:
            text = ''.join(md) if isinstance(md, list) else md
            o['data']['text/markdown'] = _re_attr_link.sub(r'<a href="\2" \3>\1</a>', text)
    return cell


def process_nb(nb):
    "A processed copy of the notebook dict `nb`."
    nb = copy.deepcopy(nb)
    nb.get('metadata', {}).pop('widgets', None)   # saved widget state: mkdocs-jupyter would load their JS from unpkg
    nb['cells'] = [c for c in (process_cell(c) for c in nb.get('cells', [])) if c is not None]
    return nb


def image_outputs(nb):
    "How many image outputs the notebook dict `nb` stores."
    return sum(1 for c in nb.get('cells', []) for o in c.get('outputs', [])
               if any(m in o.get('data', {}) for m in IMAGE_MIMES))


def _widget_names():
    "The names of ipywidgets' widget classes (VBox, HTML, FloatSlider, ...): what a widget's Python repr starts with."
    try: import ipywidgets as W
    except ImportError: return ['VBox', 'HBox', 'Box', 'GridBox', 'HTML', 'Image', 'Output', 'Dropdown', 'FloatSlider']
    return sorted(n for n, v in vars(W).items() if isinstance(v, type) and issubclass(v, W.Widget) and n[0].isupper())


_re_widget_repr = re.compile(r'\b(?:%s)\((?:children|value|options|description|layout|min|max)='
                             % '|'.join(_widget_names()))


def widget_reprs(text):
    "The ipywidgets reprs in `text` (a page's output text), e.g. `VBox(children=(HTML(value=...`, 80 characters each."
    return [text[m.start():m.start() + 80] for m in _re_widget_repr.finditer(text)]


def title(nb):
    "The notebook's first level-1 markdown heading: mkdocs-jupyter makes it the page's title (None: MkDocs names the page)."
    for c in nb.get('cells', []):
        if c['cell_type'] != 'markdown': continue
        for l in _src(c).splitlines():
            if m := re.match(r'^#\s+(.*?)\s*#*\s*$', l): return m.group(1)
    return None


def on_files(files, config, **kw):
    "Point every notebook page at its processed copy in _proc/mkdocs/."
    out = Path(config.config_file_path).parent / '_proc' / 'mkdocs'
    for f in files:
        if not f.src_uri.endswith('.ipynb') or f.abs_src_path is None: continue
        try: nb = json.loads(Path(f.abs_src_path).read_text(encoding='utf-8'))
        except (OSError, ValueError) as e: raise PluginError(f"{f.abs_src_path}: cannot read the notebook: {e}") from e
        dest = out / f.src_uri
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(process_nb(nb), indent=1, ensure_ascii=False)
        if not dest.exists() or dest.read_text(encoding='utf-8') != text: dest.write_text(text, encoding='utf-8')
        f.abs_src_path = str(dest)
    return files
