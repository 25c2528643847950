"""The method registry (issue 12): imports flow one way, recipes match the official code, a method registered outside
the library trains through the same calls as the built-in ones, and a plain fastai Learner is left alone."""
import ast, json, math, warnings
from pathlib import Path
import pytest, torch, torch.nn as nn
import droppos_nb
from droppos_nb.registry import MethodSpec, register_method, get_method, METHODS, VIT_ARGS, OutputMean

PKG = Path(droppos_nb.__file__).parent
# the layers, lowest first: a module may import from its own layer or any layer below, never above
LAYERS = [{'core', 'cmdline'}, {'data', 'augment', 'masking', 'vit', 'checkpoint', 'runs', 'draw'},
          {'registry', 'official', 'explore'}, {'droppos', 'mae', 'cae', 'beitv2', 'mocov3', 'mscn'},
          {'scale', 'distributed'}, {'learner'}, {'evaluation', 'viz'}, {'explorers'}, {'train'}, {'cli'}]
TRAINING = {'scale', 'distributed', 'learner', 'train'}      # what trains: figures and explorers import none of it
LAYER = {m: i for i, ms in enumerate(LAYERS) for m in ms}
METHOD_MODULES = LAYERS[3]

def import_graph() -> dict:
    "{module: set of droppos_nb modules it imports}, read from the source with ast (function-level imports included)."
    g = {}
    for f in PKG.glob('*.py'):
        if f.stem.startswith('_'): continue
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ''
                if node.level == 1: deps.add(mod.split('.')[0] if mod else None)
                elif mod.startswith('droppos_nb.'): deps.add(mod.split('.')[1])
                elif mod == 'droppos_nb': deps.update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name.split('.')[1] for a in node.names if a.name.startswith('droppos_nb.'))
        g[f.stem] = {d for d in deps if d and d != f.stem}
    return g

def test_every_module_has_a_layer():
    assert set(import_graph()) == set(LAYER), set(import_graph()) ^ set(LAYER)

def test_imports_flow_one_way():
    bad = [(m, d) for m, ds in import_graph().items() for d in ds if LAYER[d] > LAYER[m]]
    assert not bad, f"upward imports: {bad}"
    shared = [(m, d) for m, ds in import_graph().items() if m not in METHOD_MODULES for d in ds if d in METHOD_MODULES]
    assert not shared, f"shared modules importing a method: {shared}"

def test_figures_import_nothing_that_trains():
    "viz and explorers only draw: no import (function-level ones included) reaches the training layer."
    g = import_graph()
    bad = {m: g[m] & TRAINING for m in ('viz', 'explorers') if g[m] & TRAINING}
    assert not bad, f"figure modules importing the training layer: {bad}"

# (module, string): the only places a shared module may spell a method's name, and why
NAMED_ON_PURPOSE = {('registry', 'droppos'): "DEFAULT_METHOD, beside BUILTIN_METHODS: the one list of the built-in methods",
                    ('vit', 'mae'): "create_vit(init='mae'): MAE's weight initialisation, a scheme every ViT method shares"}

def method_names_in(src:str) -> list:
    "`(line, name)` of every string constant in `src` that is exactly a method's name (`get_method('x')`, `== 'x'`, a default)."
    from droppos_nb.registry import BUILTIN_METHODS
    return [(n.lineno, n.value) for n in ast.walk(ast.parse(src))
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in BUILTIN_METHODS]

def test_shared_modules_name_no_method():
    "Method knowledge lives on the spec: no shared module branches on a method's name (issue 24)."
    found = {(f.stem, name): line for f in PKG.glob('*.py') if not f.stem.startswith('_') and f.stem not in METHOD_MODULES
             for line, name in method_names_in(f.read_text())}
    bad = {k: v for k, v in found.items() if k not in NAMED_ON_PURPOSE}
    assert not bad, f"shared modules naming a method (module, name): line: {bad}"

def test_name_checker_can_fail():
    assert method_names_in("spec = get_method('droppos')\nif m == 'mae': pass\nx = 'maes'") == [(1, 'droppos'), (2, 'mae')]

def test_no_import_cycles():
    g = import_graph(); state = {}
    def visit(m, path):
        if state.get(m) == 1: raise AssertionError(f"import cycle: {' -> '.join(path + [m])}")
        if state.get(m) == 2: return
        state[m] = 1
        for d in g.get(m, ()): visit(d, path + [m])
        state[m] = 2
    for m in g: visit(m, [])

def test_graph_checker_can_fail(tmp_path):
    "The checker sees a function-level upward import (the kind that hid the old circle)."
    src = "def f():\n    from droppos_nb.learner import unwrap\n"
    deps = {n.module for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom)}
    assert deps == {'droppos_nb.learner'}

# official values, field by field, from each method's official code (see shared/METHODS.md)
OFFICIAL = {
    'droppos': dict(blr=1.5e-4, betas=(0.9, 0.95), wd=0.05, clip='param:5', drop_path=0., min_scale=0.2, mask_ratio=0.75,
                    pos_mask_ratio=0.75, sigma=1., tau=0.1, decoder_dim=512, decoder_depth=2, decoder_heads=16),
    'mae': dict(blr=1.5e-4, betas=(0.9, 0.95), wd=0.05, clip='none', drop_path=0., min_scale=0.2, mask_ratio=0.75,
                decoder_dim=512, decoder_depth=8, decoder_heads=16),
    'cae': dict(blr=1.5e-3 * 256 / 2048, betas=(0.9, 0.999), wd=0.05, clip='global:3', drop_path=0.1, min_lr=1e-5,
                min_scale=0.08, mask_ratio=0.5, layer_scale=0.1, regressor_depth=4, decoder_depth=4, align_weight=2.),
    # facebookresearch/moco-v3 main_moco.py + CONFIG.md (ViT): AdamW (torch's betas), lr 1.5e-4 x batch/256, wd 0.1, T 0.2, m 0.99
    'mocov3': dict(blr=1.5e-4, betas=(0.9, 0.999), wd=0.1, clip='none', min_scale=0.08, temperature=0.2, momentum=0.99,
                   stop_grad_conv1=True, pos_embed='sincos', proj_dim=256, mlp_dim=4096),
    # microsoft/unilm beit2 TOKENIZER.md: lr 5e-5 x batch/128, betas (0.9, 0.99), wd 1e-4, 8192 x 32 codes, no dead-code restart
    'vqkd': dict(blr=5e-5 * 256 / 128, betas=(0.9, 0.99), wd=1e-4, min_scale=0.08, codebook_size=8192, codebook_dim=32, dead_code='none'),
    # beit2 PRETRAINING.md, 1600 epochs: lr 1.5e-3 at batch 2048, betas (0.9, 0.999), wd 0.05, clip 3, drop-path 0.1, 75 of 196 masked
    'beitv2': dict(lr=1.5e-3, betas=(0.9, 0.999), wd=0.05, clip='global:3', drop_path=0.1, min_lr=1e-5, min_scale=0.2,
                   mask_ratio=75 / 196, layer_scale=0.1, early_layers=9),
}

@pytest.mark.parametrize('method', OFFICIAL)
def test_paper_recipe_is_official(method):
    rec = get_method(method).recipe('paper')
    for k, v in OFFICIAL[method].items():
        assert k in rec, f"{method}: the paper recipe has no {k}"
        assert (math.isclose(rec[k], v) if isinstance(v, float) else tuple(rec[k]) == v if isinstance(v, tuple) else rec[k] == v), \
            f"{method}.{k}: {rec[k]!r} != official {v!r}"

def test_droppos_paper_recipe_is_the_old_default():
    "`--recipe paper` resolves, field by field, to the settings `droppos_nb pretrain` used before recipes existed."
    from droppos_nb.cli import pretrain_parser, resolve_args
    import argparse
    p = pretrain_parser(argparse.ArgumentParser())
    a = resolve_args(p.parse_args(['--recipe', 'paper']), p.method_options)
    old = dict(method='droppos', data='mnist5k', arch='vit_tiny', img_size=32, patch_size=4, epochs=8, bs=128, blr=1.5e-4, lr=None,
               min_lr=0., warmup_epochs=1., wd=0.05, mask_ratio=0.75, pos_mask_ratio=0.75, sigma=1., tau=0.1, mask_token='param',
               decoder_dim=512, decoder_depth=2, decoder_heads=16, precision='fp32', min_scale=0.2, betas=(0.9, 0.95), clip='param:5',
               drop_path=0., depth=None, embed_dim=None, num_heads=None)
    for k, v in old.items(): assert getattr(a, k) == v, f"{k}: {getattr(a, k)!r} != {v!r}"

def test_cae_drop_path_reaches_regressor_and_decoder():
    m = get_method('cae').build(dict(img_size=16, patch_size=4, depth=1, decoder_depth=1, regressor_depth=1, drop_path=0.1))
    assert m.regressor.blocks[0].drop_path.drop_prob == 0.1 and m.decoder_blocks[0].drop_path1.drop_prob == 0.1

# a method that no library file knows: SimMIM-style, linear pixel head on all tokens, mask token in the input
class TinySimMIM(nn.Module):
    def __init__(self, img_size=16, patch_size=4, depth=1, mask_ratio=0.5, **kw):
        super().__init__()
        from droppos_nb.vit import create_vit
        self.encoder = create_vit('vit_tiny', img_size, patch_size, depth=depth, embed_dim=48, num_heads=3)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 48)); self.p, self.ratio, self.generator = patch_size, mask_ratio, None
        self.head = nn.Linear(48, patch_size ** 2 * 3)
    def forward(self, imgs):
        from droppos_nb.core import patchify
        from droppos_nb.vit import encode_tokens
        x = self.encoder.patch_embed(imgs); B, N, D = x.shape
        mask = torch.rand(B, N, generator=self.generator, device=x.device).argsort(1).argsort(1) < int(N * self.ratio)
        x = torch.where(mask[..., None], self.mask_token.expand(B, N, D), x)
        pos = self.encoder.pos_embed[:, 1:].expand(B, -1, -1)
        z = encode_tokens(self.encoder, x, pos)[:, 1:]
        loss = ((self.head(z) - patchify(imgs, self.p)) ** 2).mean(-1)[mask].mean()
        return dict(loss=loss, loss_rec=loss.detach())

register_method(MethodSpec('tiny_simmim', TinySimMIM, "SimMIM in a test file", model_args=('img_size', 'patch_size', 'depth', 'mask_ratio'),
                           metrics=lambda: [OutputMean('loss_rec')], official=dict(blr=1e-3, clip='none'),
                           laptop=dict(img_size=16, patch_size=4, epochs=2, bs=32, blr=2e-3, clip='global:3', betas=(0.9, 0.999))))

@pytest.mark.slow
def test_outside_method_trains_through_pretrain_learner(tmp_path):
    from droppos_nb.data import get_dls
    from droppos_nb.learner import pretrain_learner
    from droppos_nb.core import set_seed
    set_seed(0)
    dls = get_dls('mnist5k', img_size=16, bs=32, max_items=256, device='cpu')
    learn = pretrain_learner(dls, 'tiny_simmim', path=tmp_path, img_size=16, patch_size=4)
    assert learn.betas == (0.9, 0.999) and learn.clip == 'global:3'    # from its laptop recipe
    with learn.no_bar(), learn.no_logging(): learn.fit_warmup_cos(3, 2e-3, warmup_epochs=0.5)
    losses = [v[0] for v in learn.recorder.values]
    assert losses[-1] < losses[0] * 0.9, losses

@pytest.mark.slow
def test_outside_method_trains_through_the_cli(tmp_path):
    from droppos_nb.cli import main
    out = tmp_path / 'run'
    main(['pretrain', '--method', 'tiny_simmim', '--max-items', '128', '--out', str(out), '--quiet', '--epochs', '1'])
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['method'] == 'tiny_simmim' and cfg['bs'] == 32 and cfg['clip'] == 'global:3'
    assert (out / 'encoder.safetensors').exists() and (out / 'metrics.csv').read_text().startswith('epoch,train_loss,valid_loss,loss_rec')

def test_plain_fastai_learner_is_untouched():
    "Importing the library patches nothing in fastai: a plain Learner keeps its own epoch loop and has no extra methods."
    from fastai.learner import Learner
    import fastai.learner
    import droppos_nb.cli, droppos_nb.explorers   # everything
    from droppos_nb.learner import PretrainLearner
    assert Learner._do_fit.__module__ == 'fastai.learner' and not hasattr(Learner, 'fit_warmup_cos')
    assert PretrainLearner._do_fit is not Learner._do_fit

def test_resume_leaves_nothing_behind(tmp_path):
    "A resumed fit starts at the checkpoint's epoch without a warning, and the Learner forgets it after the fit."
    from droppos_nb.data import get_dls
    from droppos_nb.learner import pretrain_learner
    from droppos_nb.scale import EpochCheckpoint, resume_, load_checkpoint
    dls = get_dls('mnist5k', img_size=16, bs=32, max_items=64, device='cpu')
    kw = dict(img_size=16, patch_size=4, depth=1, decoder_dim=32, decoder_heads=2, decoder_depth=1)
    learn = pretrain_learner(dls, 'droppos', path=tmp_path, cbs=[EpochCheckpoint()], **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_warmup_cos(1, 1e-3)
    learn2 = pretrain_learner(dls, 'droppos', path=tmp_path, cbs=[EpochCheckpoint()], **kw)
    resume_(learn2, load_checkpoint(tmp_path / 'checkpoint.pt'))
    assert learn2.resume_epoch == 1
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with learn2.no_bar(), learn2.no_logging(): learn2.fit_warmup_cos(2, 1e-3)
    assert learn2.resume_epoch == 0 and len(learn2.recorder.values) == 1 and not hasattr(learn2, 'start_epoch')

@pytest.mark.parametrize('method', ['droppos', 'mae', 'cae'])
def test_forward_contract(method):
    "Every built-in method keeps the same return types: forward_encoder a dict with `x`, forward a dict with a scalar `loss`."
    from droppos_nb.registry import seeded_masks
    spec = get_method(method)
    m = spec.build(dict(img_size=16, patch_size=4, depth=1, decoder_dim=32, decoder_depth=1, decoder_heads=2)).eval()
    x = torch.randn(2, 3, 16, 16)
    with seeded_masks(m, 0): out = m(x)
    assert isinstance(out, dict) and out['loss'].ndim == 0
    with seeded_masks(m, 0): out2 = m(x)
    assert torch.equal(out['loss'], out2['loss'])                    # one way to seed masks, and it repeats
    enc = m.forward_encoder(x, out['ids_keep']) if method == 'cae' else m.forward_encoder(x)
    assert isinstance(enc, dict) and torch.is_tensor(enc['x'])
    if method == 'mae': assert isinstance(m.forward_loss(x, out['pred'], out['mask']), dict)

def test_views_reach_the_model():
    "A spec asking for two views gets batches of two differently augmented views (and the labels last)."
    from droppos_nb.data import get_dls
    dls = get_dls('mnist5k', img_size=16, bs=8, max_items=64, device='cpu', views=2)
    b = dls.train.one_batch()
    assert dls.n_inp == 2 and len(b) == 3 and not torch.equal(b[0], b[1]) and b[2].shape == (8,)

# --- no recipe or code path hard-codes bf16 (issue 23): the machine's precision is chosen by `--precision auto` -------
BF16 = __import__('re').compile(r"""precision['"]?\s*[=:,]\s*['"]bf16['"]|--precision['"]?,?\s*['"]?bf16""")
# the places whose point is to compare precisions, or that refuse or warn about one; every call elsewhere leaves it to auto
COMPARES_PRECISIONS = {'droppos_nb/scale.py', 'nbs/22_scale.ipynb', 'nbs/30_evaluation.ipynb', 'bench/droppos_speed.py',
                       'bench/scaling.py', 'bench/_train_steps.py', 'tests/test_cli.py'}

def code_sources():
    "(path, code) of every library module, bench script, tool and notebook code cell, and test."
    root = PKG.parent
    for f in [*PKG.glob('*.py'), *root.glob('bench/*.py'), *root.glob('tools/*.sh'), *root.glob('tests/*.py')]:
        yield str(f.relative_to(root)), f.read_text()
    for f in root.glob('nbs/**/*.ipynb'):
        cells = json.loads(f.read_text())['cells']
        yield str(f.relative_to(root)), '\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'code')

def test_no_recipe_hard_codes_bf16():
    for name, spec in METHODS.items():
        for recipe in ('laptop', 'paper'):
            p = spec.recipe(recipe).get('precision')
            assert p in (None, 'auto', 'fp32'), f"{name}'s {recipe} recipe hard-codes precision {p!r}: use 'auto'"

def test_no_code_path_hard_codes_bf16():
    this = 'tests/test_registry.py'
    bad = [(f, m.group()) for f, src in code_sources() if f not in COMPARES_PRECISIONS | {this} for m in BF16.finditer(src)]
    assert not bad, f"bf16 hard-coded (use precision 'auto', which picks bf16 where the hardware runs it natively): {bad}"
    assert BF16.search("learn = pretrain_learner(dls, precision='bf16')") and BF16.search("['--precision', 'bf16']")   # it can fail


def test_every_numeric_option_declares_a_range():
    "A new numeric option cannot skip the checks: each int/float option of the pretrain parser (shared or a method's) has a range."
    import argparse
    from droppos_nb.cli import pretrain_parser
    p = pretrain_parser(argparse.ArgumentParser())
    bare = [a.option_strings[0] for a in p._actions if a.type in (int, float) and not getattr(a, 'range', None)]
    assert not bare, f"numeric options without a declared range: {bare} (train.TRAIN_RANGES, or range= beside the option)"
    for name in ('droppos', 'mae', 'cae', 'vqkd', 'beitv2', 'mocov3', 'mscn'):
        bare = [f[0] for f, kw in get_method(name).options if kw.get('type') in (int, float) and 'range' not in kw]
        assert not bare, (name, bare)

@pytest.mark.parametrize('name', ['droppos', 'mae', 'cae', 'vqkd', 'beitv2', 'mocov3', 'mscn'])
def test_recipes_lie_in_their_ranges(name):
    from droppos_nb.cmdline import check_ranges
    from droppos_nb.train import setting_ranges
    for recipe in ('laptop', 'paper'): check_ranges(get_method(name).recipe(recipe), setting_ranges(name))
    # the recipe's backbone is one its method declares that it takes (`MethodSpec.arch_family`)
    from droppos_nb.cmdline import check_arch
    for recipe in ('laptop', 'paper'): check_arch(name, get_method(name).recipe(recipe).get('arch'), get_method(name).arch_family)

def test_every_eval_option_of_one_protocol_is_declared():
    "An eval option that only some protocols read is named in `PROTOCOL_DEFAULTS`, so that the others refuse it; the rest are common."
    import argparse
    from droppos_nb.cli import eval_parser
    from droppos_nb.evaluation import PROTOCOL_DEFAULTS
    COMMON = {'help', 'protocol', 'checkpoint', 'data', 'arch', 'img_size', 'patch_size', 'depth', 'embed_dim', 'num_heads',
              'pos_embed', 'seed', 'max_items', 'max_valid', 'device', 'out', 'overwrite', 'quiet'}
    p = eval_parser(argparse.ArgumentParser())
    dests = {a.dest for a in p._actions}
    declared = {k for d in PROTOCOL_DEFAULTS.values() for k in d}
    assert dests - COMMON == declared, (dests - COMMON - declared, declared - dests)
    given = {k: p.get_default(k) for k in declared if p.get_default(k) not in (None, False)}
    assert not given, f"a protocol's option must default to None (its default is in PROTOCOL_DEFAULTS), else it is always 'given': {given}"

# issue 24 item 3: a method owns its figures and its explorer; the shared figure modules hold none of them
OWN_FIGURES = {'droppos': ('position_reconstruction', 'position_key', 'plot_position_reconstruction', 'set_ratios',
                           'droppos_outputs', 'position_accuracy', 'droppos_metrics', 'patch_probabilities',
                           'heaviest_dropped', 'plot_patch_probabilities', 'plot_droppos_panels', 'KEY_HTML',
                           'DropPosExplorer'),
               'beitv2': ('code_colors', 'image_codes', 'code_usage', 'plot_codebook_usage', 'plot_code_histogram',
                          'draw_code_map', 'plot_code_map', 'code_similarity', 'code_gallery', 'patch_crop',
                          'plot_code_gallery', 'mim_outputs', 'plot_mim_predictions', 'CodeExplorer')}
SHARED_FIGURES = ('viz', 'explorers', 'draw', 'explore')

def names_used(src:str) -> set:
    "Every name a module defines, imports or reads (functions, classes, assignments, imports, attribute names)."
    out = set()
    for n in ast.walk(ast.parse(src)):
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)): out.add(n.name)
        elif isinstance(n, ast.Name): out.add(n.id)
        elif isinstance(n, ast.Attribute): out.add(n.attr)
        elif isinstance(n, ast.alias): out.add(n.asname or n.name.split('.')[-1])
    return out

def test_method_figures_live_with_their_method():
    "DropPos's and BEiT v2's figures and explorers are defined in their method's module, and no shared figure module names them."
    import importlib
    for method, names in OWN_FIGURES.items():
        mod = importlib.import_module(f'droppos_nb.{method}')
        assert all(n in vars(mod) and getattr(vars(mod)[n], '__module__', mod.__name__) == mod.__name__ for n in names), method
    bad = {m: sorted(names_used((PKG / f'{m}.py').read_text()) & {n for ns in OWN_FIGURES.values() for n in ns})
           for m in SHARED_FIGURES}
    assert not any(bad.values()), f"shared figure modules holding or naming a method's figures: {bad}"

def test_figure_modules_ask_the_spec_not_the_model():
    "Capabilities come from the spec: no `hasattr` test of a model in the shared figure modules."
    bad = {m: [n.lineno for n in ast.walk(ast.parse((PKG / f'{m}.py').read_text()))
               if isinstance(n, ast.Call) and getattr(n.func, 'id', None) == 'hasattr'] for m in SHARED_FIGURES}
    assert not any(bad.values()), f"hasattr in shared figure modules (declare it on the spec): {bad}"

def test_names_used_can_fail():
    assert {'set_ratios', 'DropPosExplorer'} <= names_used("from x import set_ratios\nclass DropPosExplorer: pass")
    assert 'code_usage' in names_used("y = B.code_usage(1)")

def test_specs_declare_their_figures_and_explorers():
    "Every figure kind a spec names is drawable (its own `figure_fns` or a shared kind); explorers come from the spec."
    from droppos_nb.registry import method_names
    from droppos_nb import viz
    from droppos_nb.droppos import DropPosExplorer
    from droppos_nb.beitv2 import CodeExplorer
    for name in method_names():
        s = get_method(name)
        assert set(s.figures) <= set(s.figure_fns) | set(viz.FIGURE_KINDS), name
        assert s.figure is None or s.figure in s.figures, name
    assert get_method('droppos').explorer is DropPosExplorer and get_method('droppos').figure_settings is not None
    assert get_method('vqkd').explorer is CodeExplorer and get_method('beitv2').explorer is CodeExplorer
    assert get_method('mae').explorer_views(None) == ('reconstruction',)
