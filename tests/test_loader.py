"""One checkpoint loader (issue 24, item 4): every file a user can pass reaches the weights through `checkpoint`, the
only module that opens weight files; each public entry point (eval, viz, the explorers, the official import, the
method loader) refuses the same bad file with the same one-line message, and a spy on `checkpoint`'s refusals sees
every one of them."""
import ast, contextlib, io, os, pickle
from pathlib import Path
import pytest, torch
import droppos_nb
from droppos_nb import checkpoint
from droppos_nb.cli import main
from droppos_nb.official import load_any, from_official
from droppos_nb.registry import load_model
from droppos_nb.evaluation import load_eval_encoder
from droppos_nb.explorers import load_for_explorer
from droppos_nb.droppos import DropPosExplorer

PKG = Path(droppos_nb.__file__).parent
READERS = {('torch', 'load'), ('safetensors', 'safe_open'), ('safetensors.torch', 'load_file'), ('torch', 'jit')}
# a module that reads a file of its own kind, and why it may (kept to what is not a weights file a user passes)
OWN_READERS = {'scale': "training-state checkpoints (optimiser, random states) for --resume: weights_only=True and "
                        "checkpoint.code_refusal, like the weights files"}

def file_readers(src:str) -> list:
    "`(line, call)` of each call in `src` that opens a weights file directly: torch.load, safetensors' safe_open/load_file."
    tree, found = ast.parse(src), []
    names = {a.asname or a.name: n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
             for a in n.names if (n.module, a.name) in READERS}
    for n in ast.walk(tree):
        if not isinstance(n, ast.Call): continue
        f = n.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) == ('torch', 'load'):
            found.append((n.lineno, 'torch.load'))
        if isinstance(f, ast.Name) and f.id in names: found.append((n.lineno, f.id))
    return found

def test_only_checkpoint_opens_weight_files():
    bad = {f.stem: rs for f in PKG.glob('*.py') if not f.stem.startswith('_') and f.stem not in ('checkpoint', *OWN_READERS)
           if (rs := file_readers(f.read_text()))}
    assert not bad, f"modules that read weight files themselves instead of through checkpoint: {bad}"

def test_reader_checker_can_fail():
    src = "import torch\nfrom safetensors import safe_open\nx = torch.load(p)\nwith safe_open(p, 'pt') as f: pass\n"
    assert file_readers(src) == [(3, 'torch.load'), (4, 'safe_open')]

class Evil:
    def __reduce__(self): return (os.system, ('echo pwned > /dev/null',))

def bad_files(d:Path) -> dict:
    "One file of each kind a user can get wrong: {kind: path}."
    d.mkdir(parents=True, exist_ok=True)
    (d / 'cut.safetensors').write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": ')
    (d / 'noise.pth').write_bytes(os.urandom(256))
    (d / 'empty.pth').write_bytes(b'')
    with open(d / 'code.pth', 'wb') as f: pickle.dump({'model': Evil()}, f)
    (d / 'folder').mkdir(exist_ok=True)
    return {k: d / n for k, n in dict(truncated='cut.safetensors', noise='noise.pth', empty='empty.pth', code='code.pth',
                                      folder='folder', missing='nowhere.pth').items()}

def _cli(*args) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e: main(list(map(str, args)))
    assert e.value.code == 2, err.getvalue()
    line = err.getvalue().strip()
    assert len(line.splitlines()) == 1 and 'Traceback' not in line, line
    return line.split(': error: ', 1)[1]

def _raised(f) -> str:
    with pytest.raises((ValueError, FileNotFoundError)) as e: f()
    return str(e.value)

ENTRY_POINTS = {   # the ways a user hands the library a weights file
    'eval': lambda p, d: _cli('eval', '--protocol', 'knn', '--checkpoint', p, '--out', d / 'eval'),
    'viz': lambda p, d: _cli('viz', '--model', p, '--out', d / 'figs'),
    'explorer': lambda p, d: _raised(lambda: DropPosExplorer(p)),
    'explorer loader': lambda p, d: _raised(lambda: load_for_explorer(p)),
    'load_any': lambda p, d: _raised(lambda: load_any(p)),
    'official import': lambda p, d: _raised(lambda: from_official(p, verbose=False)),
    'load_model': lambda p, d: _raised(lambda: load_model(p)),
    'eval encoder': lambda p, d: _raised(lambda: load_eval_encoder(p)),
}

@pytest.mark.parametrize('kind', ['truncated', 'noise', 'empty', 'code', 'folder', 'missing'])
def test_same_file_same_message_everywhere(kind, tmp_path, monkeypatch):
    calls = []
    for name in ('_unreadable', 'code_refusal'):          # the refusals `checkpoint` words; the spy sees each one
        real = getattr(checkpoint, name)
        monkeypatch.setattr(checkpoint, name, lambda *a, _r=real, _n=name, **k: (calls.append(_n), _r(*a, **k))[1])
    path = bad_files(tmp_path)[kind]
    msgs = {}
    for entry, call in ENTRY_POINTS.items():
        n = len(calls)
        msgs[entry] = call(path, tmp_path)
        if kind in ('truncated', 'noise', 'code'): assert len(calls) > n, f"{entry} read {kind} without checkpoint's loader"
    assert len(set(msgs.values())) == 1, msgs
    msg = next(iter(msgs.values()))
    assert str(path) in msg
    want = dict(truncated='truncated, damaged or not a checkpoint', noise='truncated, damaged or not a checkpoint',
                empty='is empty (0 bytes)', code='holds Python code or objects that could run on load (posix.system)',
                folder='is a folder, not a file', missing='does not exist')[kind]
    assert want in msg, msg
