"""MSCN (masked siamese ConvNets): the masks, filters and switches of the article's path do what they claim, the
loss is SimCLR's NT-Xent, the CLI trains it and exports a plain timm ResNet, and a short run on real digits learns
(kNN accuracy far above a random-init ResNet-18's, which is at chance: timm zero-initialises each block's last BN)."""
import math, copy
import pytest, torch, torch.nn.functional as F
import droppos_nb.mscn as M
from droppos_nb.mscn import (mscn_settings, grid_masks, focal_masks, mask_images, high_pass, branch_views, mscn_views,
                             nt_xent, MSCN, MSCN_PATH, PATH_OFF, path_config, MSCN_LAPTOP)

def gen(seed=0): return torch.Generator().manual_seed(seed)

@pytest.fixture(scope='module')
def digits():
    "Normalised real digits (64, 3, 32, 32): mnist5k's first training images, as the data loader hands them over."
    from droppos_nb.data import mnist5k
    from droppos_nb.mscn import normalize
    x = mnist5k(img_size=32).train_x[:64].float() / 255
    return normalize(x)

# --- masks ---------------------------------------------------------------------------------------------------------
def test_grid_mask_share_over_many_draws():
    m = grid_masks(2000, 1, 32, 32, 4, (0.1, 0.3), gen())
    share = m.float().mean((1, 2, 3))
    assert abs(share.mean().item() - 0.2) < 0.005                     # E[U(0.1, 0.3)]
    assert share.min() >= 0.1 - 1 / 64 and share.max() <= 0.3 + 1 / 64
    assert share.std() > 0.04                                         # a range, not a fixed ratio

def test_probabilities_match_settings():
    x = torch.zeros(4000, 3, 16, 16)
    s = dict(grid_size=4, mask_ratio=0.25, focal_p=0.2, channel_p=0.7, focal_scale=(0.5, 0.5))
    _, m = mask_images(x, s, gen())
    grid_share = m.float().mean((1, 2, 3))
    focal = (grid_share - 0.5).abs() < 0.1                            # focal masks hide about half, grid masks a quarter
    chan = (m[:, 0] != m[:, 1]).any((1, 2)) | (m[:, 0] != m[:, 2]).any((1, 2))
    assert abs(focal.float().mean().item() - 0.2) < 0.03
    assert abs(chan[~focal].float().mean().item() - 0.7) < 0.03       # channel-wise among the grid masks
    assert not chan[focal].any()                                      # focal masks are spatial
    _, masks = branch_views(torch.zeros(4000, 3, 8, 8), dict(grid_size=4, mask_ratio=0.5, mask_p=(0.3, 0.9)), 1, 1, gen())
    applied = masks[0].any((1, 2, 3)).float().mean().item()
    assert abs(applied - 0.9) < 0.02

def test_focal_mask_keeps_one_rectangle():
    f = focal_masks(500, 32, 24, (0.2, 0.6), generator=gen())
    kept = ~f
    rows, cols = kept.any(2), kept.any(1)
    assert (kept.sum((1, 2)) == rows.sum(1) * cols.sum(1)).all()      # the kept pixels are exactly a rows x cols box
    for r in (rows, cols):                                            # and the rows (columns) are contiguous
        idx = r.float().argmax(1); n = r.sum(1)
        assert all(r[i, idx[i]:idx[i] + n[i]].all() for i in range(len(r)))
    area = kept.float().mean((1, 2))
    assert area.min() > 0.1 and area.max() < 0.75 and abs(area.mean().item() - 0.4) < 0.05

def test_channel_wise_masks_differ_spatial_do_not():
    x = torch.zeros(256, 3, 32, 32)
    _, ms = mask_images(x, dict(grid_size=4), gen())
    _, mc = mask_images(x, dict(grid_size=4, channel_p=1.), gen())
    assert (ms[:, 0] == ms[:, 1]).all() and (ms[:, 0] == ms[:, 2]).all()
    differ = (mc[:, 0] != mc[:, 1]).any((1, 2)) & (mc[:, 1] != mc[:, 2]).any((1, 2))
    assert differ.float().mean() > 0.95
    assert (mc[:, 0] == ms[:, 0]).all()                               # channel 0 is the spatial mask: nothing else moved

@pytest.mark.parametrize('g,H', [(4, 32), (8, 32), (5, 32)])
def test_grid_masks_align_to_grid(g, H):
    m = grid_masks(64, 3, H, H, g, 0.4, gen())
    cells = m[:, :, ::g, ::g]
    up = cells.repeat_interleave(g, 2).repeat_interleave(g, 3)[..., :H, :H]
    assert torch.equal(up, m)                                         # constant on each g x g cell from the corner
    n_cells = math.ceil(H / g) ** 2
    assert (cells.float().sum((2, 3)) == round(0.4 * n_cells)).all()

def test_noise_only_inside_mask(digits):
    xm, m = mask_images(digits, dict(grid_size=4, mask_ratio=0.3, noise_std=0.5, channel_p=0.5), gen())
    assert torch.equal(xm[~m], digits[~m])
    inside = xm[m]
    assert abs(inside.std().item() - 0.5) < 0.02 and abs(inside.mean().item()) < 0.02
    xz, mz = mask_images(digits, dict(grid_size=4, mask_ratio=0.3, channel_p=0.5), gen())
    assert torch.equal(mz, m) and (xz[m] == 0).all()                  # noise off: zeros, the same mask
    xs, ms = mask_images(digits, dict(grid_size=4, mask_ratio=0.3, noise_std=0.5), gen())
    assert torch.equal(xs[:, 0][ms[:, 0]], xs[:, 1][ms[:, 1]])        # a spatial mask: the same noise on every channel

def test_high_pass():
    c = torch.full((3, 3, 20, 20), -1.3)
    assert high_pass(c, 5, 1.).abs().max() < 1e-5                     # a constant image is removed entirely
    ramp = torch.linspace(0, 1, 20).expand(1, 3, 20, 20)
    assert high_pass(ramp, 5, 1.)[..., 3:-3].abs().max() < 1e-5       # so is a linear ramp, away from the borders
    x = torch.rand(8, 3, 32, 32) * 2 + 5
    hp = high_pass(x, 5, 1.)
    assert hp.mean().abs() < 0.01 and hp.std() > 0.2                  # about zero mean, texture kept
    with pytest.raises(ValueError, match='too large'): high_pass(torch.zeros(1, 3, 4, 4), 11, 5.)

# --- loss ------------------------------------------------------------------------------------------------------------
def test_nt_xent_equals_hand_computation():
    torch.manual_seed(0)
    z1, z2, T = torch.randn(3, 5), torch.randn(3, 5), 0.3
    zs = F.normalize(torch.cat([z1, z2]), dim=1)
    total = 0.
    for i in range(6):
        j = (i + 3) % 6
        num = math.exp((zs[i] @ zs[j]).item() / T)
        den = sum(math.exp((zs[i] @ zs[k]).item() / T) for k in range(6) if k != i)
        total += -math.log(num / den)
    assert abs(nt_xent(z1, z2, T).item() - total / 6) < 1e-5
    assert nt_xent(z1, z1 * 3, 0.05) < 0.05                           # identical pairs, sharp temperature: about 0

def test_multi_mask_loss_is_mean_over_views():
    model = MSCN(proj_hidden=32, proj_dim=8, temperature=0.5)
    z1, a, b = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    out = model.forward_loss(z1, a, b)
    assert abs(out['loss'].item() - (nt_xent(z1, a, .5) + nt_xent(z1, b, .5)).item() / 2) < 1e-6

# --- the path: each switch changes what it claims and nothing else ----------------------------------------------
def views_of(cfg, x1, x2, seed=0):
    s = {k: v for k, v in cfg.items() if k in M.MSCN_DEFAULTS}
    return mscn_views(x1, x2, s, gen(seed))

def test_path_is_ordered_and_complete():
    names = [n for n, _, _ in MSCN_PATH]
    assert names == ['grid masks', 'high-pass', 'focal masks', 'crops', 'noise', 'channel-wise', 'colour', 'blur',
                     'asymmetric', 'multi-mask']
    accs = [a for _, _, a in MSCN_PATH if a is not None]
    assert accs == sorted(accs) and accs[-1] == 67.4
    assert path_config(len(MSCN_PATH)) == {**MSCN_LAPTOP}             # the laptop recipe is the whole path
    assert path_config(0)['mask_p'] == (0., 0.) and path_config(3)['min_scale'] == 1. and path_config(4)['min_scale'] == MSCN_LAPTOP['min_scale']
    with pytest.raises(ValueError, match='whole number'): path_config(len(MSCN_PATH) + 1)

@pytest.mark.parametrize('k', range(1, len(MSCN_PATH) + 1))
def test_step_off_equals_previous_step(k, digits):
    x1, x2 = digits[:32], digits[32:]
    prev, cur = path_config(k - 1), path_config(k)
    off = {**cur, **{n: prev[n] for n in MSCN_PATH[k - 1][1]}}        # step k switched off again
    a, b = views_of(prev, x1, x2), views_of(off, x1, x2)
    for key in ('views1', 'views2', 'masks1', 'masks2'):
        assert len(a[key]) == len(b[key]) and all(torch.equal(u, v) for u, v in zip(a[key], b[key]))
    c = views_of(cur, x1, x2)
    if MSCN_PATH[k - 1][0] == 'blur':          # at 32 px the scaled blur is off (augment.BLUR_MIN_SIZE): no change
        assert all(torch.equal(u, v) for u, v in zip(a['views1'] + a['views2'], c['views1'] + c['views2']))
        return
    assert any(not torch.equal(u, v) for u, v in zip(a['views1'] + a['views2'], c['views1'] + c['views2'])) \
        or len(c['views2']) != len(a['views2'])                       # and switching it on changes the views

def test_blur_step_blurs_from_64_px(digits):
    "The blur step changes branch 1's view (p .5 per image) of 64-px images, where the rule turns blur on."
    k = [n for n, _, _ in MSCN_PATH].index('blur') + 1
    x = torch.nn.functional.interpolate(digits[:32], size=64, mode='bilinear')
    a, c = views_of(path_config(k - 1), x, x), views_of(path_config(k), x, x)
    assert (a['views1'][0] - c['views1'][0]).abs().max() > 0.05

@pytest.mark.parametrize('name', ['high-pass', 'crops', 'noise', 'colour', 'blur'])
def test_steps_leave_masks_alone(name, digits):
    "Steps that act on pixels leave every mask as it was; noise changes only masked pixels."
    k = [n for n, _, _ in MSCN_PATH].index(name) + 1
    x1, x2 = digits[:32], digits[32:]
    a, c = views_of(path_config(k - 1), x1, x2), views_of(path_config(k), x1, x2)
    assert all(torch.equal(u, v) for u, v in zip(a['masks1'] + a['masks2'], c['masks1'] + c['masks2']))
    if name == 'noise':
        for u, v, m in zip(a['views1'] + a['views2'], c['views1'] + c['views2'], a['masks1'] + a['masks2']):
            assert torch.equal(u[~m], v[~m]) and (m.sum() == 0 or not torch.equal(u[m], v[m]))
    if name == 'crops':                                               # branch 2's visible pixels now come from the second crop
        m = c['masks2'][0]
        assert torch.equal(c['views2'][0][~m], high_pass(x2, MSCN_LAPTOP['hp_kernel'], MSCN_LAPTOP['hp_sigma'])[~m])

@pytest.mark.parametrize('name', ['focal masks', 'channel-wise'])
def test_mask_steps_change_only_their_images(name, digits):
    k = [n for n, _, _ in MSCN_PATH].index(name) + 1
    x1, x2 = digits[:32], digits[32:]
    a, c = views_of(path_config(k - 1), x1, x2), views_of(path_config(k), x1, x2)
    ma, mc = a['masks1'][0], c['masks1'][0]
    same = (ma == mc).flatten(1).all(1)
    assert 0 < (~same).sum() < len(same)                              # some images changed, others not at all
    if name == 'channel-wise': assert torch.equal(ma[:, 0], mc[:, 0])   # channel 0 keeps the spatial mask

def test_multi_mask_adds_views(digits):
    k = len(MSCN_PATH)
    a, c = views_of(path_config(k - 1), digits[:8], digits[8:16]), views_of(path_config(k), digits[:8], digits[8:16])
    assert len(a['views2']) == 1 and len(c['views2']) == 2
    assert torch.equal(a['views2'][0], c['views2'][0]) and not torch.equal(c['masks2'][0], c['masks2'][1])

def test_views_are_seeded(digits):
    cfg = path_config(len(MSCN_PATH))
    a, b, c = views_of(cfg, digits[:8], digits[8:16], 1), views_of(cfg, digits[:8], digits[8:16], 1), views_of(cfg, digits[:8], digits[8:16], 2)
    assert torch.equal(a['views2'][1], b['views2'][1]) and not torch.equal(a['views2'][1], c['views2'][1])

# --- bad input ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kw,msg', [(dict(mask_ratio=1.), 'mask_ratio'), (dict(channel_p=-0.1), 'channel_p'),
                                    (dict(grid_size=0), 'grid_size'), (dict(hp_kernel=4), 'hp_kernel'),
                                    (dict(noise_std=-1.), 'noise_std'), (dict(n_masks=0), 'n_masks'),
                                    (dict(gridsize=4), 'unknown MSCN setting')])
def test_bad_settings(kw, msg):
    with pytest.raises(ValueError, match=msg): mscn_settings(**kw)

def test_bad_model_args():
    with pytest.raises(ValueError, match='ViT'): MSCN('vit_tiny_patch16_224')
    with pytest.raises(ValueError, match='grid_size'): MSCN(img_size=16, grid_size=32)
    with pytest.raises(ValueError, match='unknown loss'): MSCN(loss='barlow')

# --- the CLI and the export -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_trains_and_exports_a_timm_resnet(tmp_path):
    import timm
    from safetensors.torch import load_file
    from droppos_nb.cli import main
    from droppos_nb.checkpoint import read_metadata
    from droppos_nb.registry import load_model
    out = tmp_path / 'run'
    main(['pretrain', '--method', 'mscn', '--epochs', '1', '--bs', '16', '--max-items', '32', '--proj-hidden', '32',
          '--n-masks', '1', '--no-color', '--grid-size', '8', '--out', str(out), '--quiet', '--device', 'cpu'])
    meta = read_metadata(out / 'encoder.safetensors')
    assert meta['arch'] == 'resnet18' and meta['format'] == 'timm'
    enc = timm.create_model(meta['arch'], num_classes=0)
    res = enc.load_state_dict(load_file(out / 'encoder.safetensors'))
    assert not res.missing_keys and not res.unexpected_keys
    model = load_model(out / 'model.safetensors')                     # the whole model rebuilds with its switches
    assert model.settings['grid_size'] == 8 and model.settings['color'] is False and model.settings['n_masks'] == 1
    for k, v in enc.state_dict().items(): assert torch.equal(v, model.encoder.state_dict()[k])
    from droppos_nb.evaluation import load_eval_encoder, eval_data, knn_eval   # what `eval` does (its CLI reads a ViT's patch_embed)
    ev = load_eval_encoder(out / 'encoder.safetensors', device='cpu')
    assert type(ev).__name__ == 'ResNet' and ev.eval_config['arch'] == 'resnet18'
    assert 0 <= knn_eval(ev, eval_data('mnist5k', meta['img_size'], max_items=100, max_valid=50), k=5)['acc'] <= 1

# --- learning on real data ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_short_run_on_digits_beats_random_init():
    "About 30 s: 3 epochs on 768 digits (18 steps) with the laptop recipe; kNN of 400 validation digits against 800 training digits."
    from droppos_nb.core import set_seed
    from droppos_nb.data import get_dls
    from droppos_nb.learner import pretrain_learner
    from droppos_nb.evaluation import eval_data, knn_eval
    from droppos_nb.registry import get_method
    torch.set_num_threads(1)
    spec = get_method('mscn')
    set_seed(0)
    dls = get_dls('mnist5k', img_size=32, bs=128, seed=0, max_items=768, device='cpu', views=2, scale=(MSCN_LAPTOP['min_scale'], 1.))
    learn = pretrain_learner(dls, 'mscn', csv=None, **spec.model_kwargs(MSCN_LAPTOP))
    random_enc = copy.deepcopy(learn.model.encoder)
    with learn.no_bar(), learn.no_logging(): learn.fit_warmup_cos(3, 2e-3, warmup_epochs=0.5, wd=MSCN_LAPTOP['wd'])
    data = eval_data('mnist5k', 32, max_items=800, max_valid=400)
    before, after = knn_eval(random_enc, data)['acc'], knn_eval(learn.model.encoder, data)['acc']
    assert after > 0.5 and after > before + 0.3, (before, after)      # measured: 0.10 -> 0.77 (1,024 digits, 24 steps)
