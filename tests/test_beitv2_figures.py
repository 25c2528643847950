"""The BEiT v2 figures (droppos_nb.viz) and CodeExplorer (droppos_nb.explorers) on a tiny untrained tokenizer and BEiT v2
built here, on real digits (mnist5k validation images). They check the figures' content, not learning: each figure has its
panels, a code keeps its colour across images, the gallery shows patches really assigned to its code, the masked accuracy in
the titles is the one of the predictions drawn, and the explorer redraws on every control. Fast (a few seconds)."""
import pytest, torch, torch.nn.functional as F
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pandas as pd
from droppos_nb.registry import get_method
from droppos_nb.viz import sample_images
from droppos_nb.beitv2 import (code_colors, image_codes, code_usage, code_gallery, plot_codebook_usage, plot_code_histogram,
                               plot_code_map, plot_code_gallery, plot_mim_predictions, mim_outputs, CodeExplorer)

VIT = dict(arch='vit_tiny', img_size=16, patch_size=4, depth=1, embed_dim=32, num_heads=2)


@pytest.fixture(scope='module')
def setup():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tok = get_method('vqkd').model_cls(**VIT, codebook_size=16, codebook_dim=8, teacher_dim=24).eval()
    tok.quantizer.weight.data = F.normalize(torch.randn(16, 8), dim=-1)   # a spread codebook: several codes in use
    beit = get_method('beitv2').model_cls(**VIT, tokenizer=tok, mask_ratio=0.4).eval()
    imgs = sample_images(16, img_size=16)
    yield tok, beit, imgs, image_codes(tok, imgs)
    plt.close('all')


def test_codes_and_usage(setup):
    tok, _, imgs, ids = setup
    assert ids.shape == (16, 4, 4)
    assert torch.equal(ids.flatten(1), tok.get_codebook_indices(imgs).cpu())
    assert len(ids.unique()) >= 3                       # else the colour and gallery tests below test little
    u = code_usage(torch.tensor([0, 1, 2, 3]), 8)
    assert u['used'] == 4 and abs(u['perplexity'] - 4) < 1e-5
    assert abs(code_usage(torch.tensor([5, 5, 5]), 8)['perplexity'] - 1) < 1e-6
    c = code_colors(range(64))
    assert ((c[:, None] - c[None]) ** 2).sum(-1)[~torch.eye(64, dtype=torch.bool).numpy()].min() > 1e-4   # 64 distinct colours
    assert (code_colors([9, 2, 9])[0] == code_colors([9])[0]).all()


def test_codebook_usage_figure(tmp_path):
    df = pd.DataFrame(dict(epoch=range(4), codes_used=[1, .6, .4, .3], dead_codes=[0, 6, 10, 11], perplexity=[12., 8, 5, 4]))
    df.to_csv(tmp_path / 'metrics.csv', index=False)
    fig = plot_codebook_usage({'none': tmp_path, 'restart': df.assign(codes_used=1., dead_codes=0)}, num_tokens=16)
    assert [a.get_title() for a in fig.axes] == ['codes used', 'dead codes', 'perplexity']
    assert list(fig.axes[0].lines[0].get_ydata()) == [100, 60, 40, 30]          # in % of the codebook
    assert list(fig.axes[1].lines[0].get_ydata()) == [0, 6, 10, 11]
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 3, 4]               # epochs counted from 1
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ['none', 'restart']
    with pytest.raises(ValueError, match='codebook columns'): plot_codebook_usage(pd.DataFrame(dict(loss=[1.])))
    with pytest.raises(FileNotFoundError): plot_codebook_usage(tmp_path / 'nothing.csv')


def test_histogram(setup):
    tok, _, imgs, ids = setup
    fig = plot_code_histogram(tok, imgs)
    u = code_usage(ids, 16)
    bars = fig.axes[0].patches
    assert len(bars) == u['used']
    h = [b.get_height() for b in bars]
    assert h == sorted(h, reverse=True) and abs(sum(h) - 100) < 1e-3
    assert f"{u['used']} of 16 codes" in fig.axes[0].get_title() and f"perplexity {u['perplexity']:.1f}" in fig.axes[0].get_title()


def test_code_map_colours_consistent(setup):
    tok, _, imgs, ids = setup
    n = 6
    fig = plot_code_map(tok, imgs, n=n)
    assert len(fig.axes) == 2 * n
    assert torch.equal(fig.codes, ids[:n])
    seen = {}
    for j in range(n):
        rgba = fig.axes[n + j].images[-1].get_array()            # the code map drawn over image j
        for k, code in enumerate(ids[j].flatten().tolist()):
            seen.setdefault(code, set()).add(tuple(rgba[k // 4, k % 4, :3].round(6)))
    assert all(len(v) == 1 for v in seen.values())               # one colour per code, in every image
    assert len({next(iter(v)) for v in seen.values()}) == len(seen)   # and different codes, different colours
    texts = [t.get_text() for t in fig.axes[n].texts]            # ids written in the cells of a 4x4 grid
    assert texts == [str(c) for c in ids[0].flatten().tolist()]


def test_gallery_patches_are_assigned(setup):
    tok, _, imgs, ids = setup
    fig = plot_code_gallery(tok, imgs, k=5, n_codes=3)
    freq = code_usage(ids, 16)['counts'].argsort(descending=True)[:3].tolist()
    assert list(fig.gallery) == freq                             # default: the most frequent codes, one row each
    assert len(fig.axes) == 3 * 5
    for c, cells in fig.gallery.items():
        assert 0 < len(cells) <= 5 and all(int(ids[b].flatten()[i]) == c for b, i in cells)
    # most typical first: the cosine to the code does not increase along a row
    e = tok.forward_encoder(imgs)
    for c, cells in code_gallery(tok, imgs, [freq[0]], k=50)['rows'].items():
        cos = [float(e['z'][b, i] @ tok.quantizer.weight[c]) for b, i in cells]
        assert cos == sorted(cos, reverse=True)
    unused = (code_usage(ids, 16)['counts'] == 0).nonzero().flatten().tolist()
    if unused: assert code_gallery(tok, imgs, unused[:1], k=4)['rows'][unused[0]] == []   # an unused code: an empty row, no error
    with pytest.raises(ValueError, match='not in the codebook'): code_gallery(tok, imgs, [16])


def test_mim_predictions(setup):
    tok, beit, imgs, ids = setup
    fig = plot_mim_predictions(beit, imgs, n=4, seed=1)
    assert len(fig.axes) == 3 * 4
    o = fig.mim
    assert o['mask'].sum(1).tolist() == [beit.n_masked] * 4
    assert torch.equal(o['target'], ids[:4].flatten(1))
    for j in range(4):
        right = int(((o['pred'][j] == o['target'][j]) & o['mask'][j]).sum())
        assert fig.axes[j].get_title().startswith(f"{right}/{beit.n_masked} ")
    assert torch.equal(mim_outputs(beit, imgs[:4], seed=1)['mask'], o['mask'])
    assert not torch.equal(mim_outputs(beit, imgs[:4], seed=2)['mask'], o['mask'])
    with pytest.raises(ValueError, match='not a BEiT v2 model'): plot_mim_predictions(tok, imgs)


def test_code_explorer_redraws(setup):
    tok, beit, imgs, ids = setup
    ce = CodeExplorer(model=beit, imgs=imgs[:4], gallery_imgs=imgs, label='tiny')
    views = lambda: (ce.map_view.value, ce.gallery_view.value, ce.mim_view.value)
    assert all(v[:4] == b'\x89PNG' for v in views())
    m0, g0, p0 = views()
    ce.code.value = ce.code.options[1][1]
    m1, g1, p1 = views()
    assert m1 != m0 and g1 != g0                                  # code: framed cells and gallery
    ce.seed.value = 3
    assert ce.mim_view.value != p1                               # mask seed: the predictions
    m2 = ce.map_view.value
    ce.image.value = 3
    assert ce.map_view.value != m2                               # image: its code map
    here = set(ids[3].flatten().tolist())
    assert {v for _, v in ce.code.options[:len(here)]} == here   # the picked image's codes come first
    assert len(ce.figure().axes) == 3
    plain = CodeExplorer(tok, imgs[:2])
    assert plain.mim_view.layout.display == 'none' and len(plain.figure().axes) == 2
    with pytest.raises(ValueError, match='give a VQ-KD tokenizer'): CodeExplorer()


def test_shared_modules_import_no_method():
    import droppos_nb.viz as v, droppos_nb.explorers as e, inspect
    for m in (v, e): assert 'beitv2' not in ''.join(l for l in inspect.getsource(m).splitlines() if l.startswith(('import', 'from')))
