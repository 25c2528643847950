"""The command's front door (issue 26, item 2): `droppos_nb --help` and malformed arguments are answered from the
manifest without importing torch, exactly as the full parsers would answer them."""
import contextlib, io, json, subprocess, sys
import pytest
from droppos_nb.cmdline import read_manifest, parser_from, describe, source_hash
from droppos_nb.cli import build_parser

@pytest.fixture(autouse=True)
def builtin_methods_only(monkeypatch):
    "The full parsers as the command builds them: without the methods other tests of this process registered."
    from droppos_nb import registry
    registry.method_names()
    monkeypatch.setattr(registry, 'METHODS', {k: v for k, v in registry.METHODS.items() if k in registry.BUILTIN_METHODS})

FIX = "the manifest is stale: write it again with `.venv/bin/python -c 'from droppos_nb.cli import write_manifest; write_manifest()'`"

def test_manifest_is_current():
    m = read_manifest()
    assert m is not None, FIX
    from droppos_nb.cli import manifest
    want = dict(manifest(), source=source_hash())
    assert m == json.loads(json.dumps(want)), FIX

def answer(parser, argv) -> tuple:
    "`(exit status, stdout, stderr)` of `parser.parse_args(argv)` (None: it parsed)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: parser.parse_args(argv); code = None
        except SystemExit as e: code = e.code
    return code, out.getvalue(), err.getvalue()

CASES = [['--help'], ['pretrain', '--help'], ['eval', '--help'], ['viz', '--help'], [],
         ['pretrain', '--epochs', 'abc'], ['pretrain', '--method', 'simclr'], ['pretrain', '--betas', '0.9'],
         ['pretrain', '--precision', 'fp8'], ['pretrain', '--no-such-flag'], ['eval'], ['eval', '--protocol', 'knn'],
         ['viz', '--n', 'two', '--model', 'm'], ['pretrain', '--method', 'mocov3', '--no-stop-grad-conv1', '--epochs', '2'],
         ['eval', '--protocol', 'linear', '--checkpoint', 'random', '--pool', 'max']]

@pytest.mark.parametrize('argv', CASES, ids=lambda a: ' '.join(a) or 'nothing')
def test_front_door_answers_as_the_full_parsers(argv):
    light, full = answer(parser_from(read_manifest()), argv), answer(build_parser()[0], argv)
    assert light == full
    if light[0] == 2: assert len(light[2].strip().splitlines()) == 1       # a refusal is one line

def test_help_imports_no_torch():
    code = ("import sys\nfrom droppos_nb.cmdline import main\ntry: main(['pretrain', '--help'])\nexcept SystemExit: pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'LIGHT')")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == 'LIGHT' and 'usage: droppos_nb pretrain' in r.stdout, r.stdout[-500:]
