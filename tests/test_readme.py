"The README's code runs as written: every ```python block is executed, every shell command it names exists and parses."
import re, shlex, os
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()
RUN = 'runs/droppos-mnist5k'    # the default run, as the README names it (relative to the repository root)

def blocks(lang:str) -> list:
    "The code blocks of the README fenced as ```lang."
    return re.findall(rf'^```{lang}\n(.*?)^```', README, flags=re.S | re.M)

def test_readme_has_code(): assert blocks('python') and blocks('sh')

@pytest.fixture(scope='module')
def default_run():
    "The default DropPos run (tools/test.sh trains it before pytest; trained and cached here when it is missing)."
    from droppos_nb.train import trained_model
    from droppos_nb.runs import runs_dir
    trained_model('droppos', verbose=False)
    return runs_dir() / 'droppos-mnist5k'

def run_block(code:str, run:Path) -> dict:
    "Execute README block `code` from the repository root (the default run read from where it is) and return its names."
    code = code.replace(RUN, str(run)) if run != ROOT / RUN else code
    ns = {}
    cwd = os.getcwd(); os.chdir(ROOT)
    try: exec(compile(code, 'README.md', 'exec'), ns)
    finally: os.chdir(cwd)
    return ns

@pytest.mark.slow     # needs the default run: tools/test.sh trains it first, except under QUICK=1
@pytest.mark.parametrize('i', range(len(blocks('python'))))
def test_python_block_runs(i, default_run):
    run_block(blocks('python')[i], default_run)

def encoder_block() -> str:
    found = [b for b in blocks('python') if 'encoder.safetensors' in b]
    assert len(found) == 1, "the README should have one snippet that loads the encoder"
    return found[0]

@pytest.mark.slow
def test_encoder_snippet_builds_the_run_encoder(default_run):
    "The snippet's model is the run's encoder: every tensor of the file used, none left random, the same features."
    from safetensors.torch import load_file
    from droppos_nb.checkpoint import read_metadata
    from droppos_nb.evaluation import load_eval_encoder
    from droppos_nb.viz import sample_images
    path = default_run / 'encoder.safetensors'
    ns = run_block(encoder_block(), default_run)
    vit = next(v for v in ns.values() if isinstance(v, torch.nn.Module))
    meta, sd = read_metadata(path), load_file(str(path))
    own = vit.state_dict()
    assert sorted(own) == sorted(sd), (f"missing from the file (left random): {sorted(set(own) - set(sd))[:5]}, "
                                       f"unused from the file: {sorted(set(sd) - set(own))[:5]}")
    for k, v in sd.items(): assert own[k].shape == v.shape and torch.equal(own[k], v), k   # nothing resampled
    assert len(vit.blocks) == meta['depth'] and vit.patch_embed.patch_size == (meta['patch_size'],) * 2
    lib = load_eval_encoder(path).eval()
    imgs = sample_images(8, img_size=meta['img_size'])
    with torch.no_grad(): a, b = vit.eval()(imgs), lib(imgs)
    assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
    if 'feats' in ns: assert tuple(ns['feats'].shape[1:]) == (meta['embed_dim'],)

def shell_lines() -> list:
    "Every command line of the README's ```sh blocks, comments removed."
    lines = [l.split(' #')[0].strip() for b in blocks('sh') for l in b.splitlines()]
    return [l for l in lines if l and not l.startswith('#')]

def test_shell_commands_exist_and_parse():
    "Shell blocks are not run (they train or serve); the scripts they call exist and `droppos_nb` lines parse."
    from droppos_nb.cli import OneLineParser, pretrain_parser, eval_parser, viz_parser
    checked = 0
    for line in shell_lines():
        words = shlex.split(line)
        words = words[next(i for i, w in enumerate(words) if '=' not in w):]     # leading VAR=value settings
        if words[0] == 'bash': assert (ROOT / words[1]).is_file(), line; checked += 1
        elif words[0].endswith('droppos_nb') and '...' not in words:
            p = OneLineParser(prog='droppos_nb'); sub = p.add_subparsers(dest='command', required=True)
            pretrain_parser(sub.add_parser('pretrain')); eval_parser(sub.add_parser('eval')); viz_parser(sub.add_parser('viz'))
            p.parse_args(words[1:]); checked += 1
        elif words[0] in ('torchrun', 'accelerate'): assert '-m' in words and words[words.index('-m') + 1] == 'droppos_nb.cli', line
        elif words[0].startswith('.venv/bin/'): assert words[0].split('/')[-1] in ('jupyter', 'mkdocs', 'droppos_nb'), line
    assert checked >= 4
