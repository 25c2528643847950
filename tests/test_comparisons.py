"""The seed articles' comparisons with MoCo v3, the parts that do not depend on MoCo v3 itself (issue 14):

* `droppos_nb eval --protocol position` probes any timm ViT a user has weights for (a timm model name and a weights
  file with timm's keys, head included, as .safetensors or a PyTorch .bin);
* the position-embedding ablation: `--pos-embed none` gives an encoder with no position embedding that fine-tuning
  keeps at zero, `sincos` stays fixed, `learned` is trained;
* attention measured, not only shown: the object share and the entropy of the [CLS] attention are right on maps made by
  hand, and the object of a digit is its strokes."""
import json
import pytest, torch, timm
from safetensors.torch import save_file, load_file
from droppos_nb.evaluation import eval_data, load_eval_encoder, finetune
from droppos_nb.viz import attention_summary, object_fraction, encoder_attention_summary
from droppos_nb.data import imagenet_stats

@pytest.mark.parametrize('fmt', ['safetensors', 'bin'])
def test_position_probe_of_a_timm_model(run_cli, tmp_path, fmt):
    "A timm ViT's own weights file (keys as timm names them, a 1000-class head included) is probed by name."
    torch.manual_seed(0)
    m = timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=32, patch_size=8, depth=2)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    assert 'head.weight' in sd
    f = tmp_path / f'weights.{fmt}'
    save_file(sd, str(f)) if fmt == 'safetensors' else torch.save(sd, f)
    r = run_cli('eval', '--protocol', 'position', '--checkpoint', f, '--arch', 'vit_tiny_patch16_224', '--img-size', '32',
                '--patch-size', '8', '--max-items', '512', '--max-valid', '256', '--epochs', '2', '--quiet', '--out', tmp_path / 'o')
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((tmp_path / 'o' / 'eval-position.json').read_text())
    assert rec['encoder']['depth'] == 2 and rec['encoder']['arch'] == 'vit_tiny_patch16_224'
    # a random ViT with a learned (timm-initialised) embedding: the probe reads positions well above chance (1/16)
    assert rec['metrics']['pos_acc'] > 2 * rec['metrics']['chance'], rec['metrics']

def test_pos_embed_ablation_in_finetuning(tmp_path):
    "none stays zero and sincos stays fixed through fine-tuning; learned moves; the setting is recorded."
    data = eval_data('mnist5k', 16, max_items=256, max_valid=128)
    res = {}
    for kind in ('none', 'sincos', 'learned'):
        vit = load_eval_encoder('random', img_size=16, patch_size=4, depth=1, seed=0, device='cpu', pos_embed=kind)
        assert vit.eval_config['pos_embed'] == kind
        before = vit.pos_embed.detach().clone()
        finetune(vit, data, epochs=1, lr=1e-3, bs=32, scale=(1., 1.), flip_p=0.)
        res[kind] = (before, vit.pos_embed.detach())
    assert res['none'][1].abs().sum() == 0
    assert torch.equal(*res['sincos']) and res['sincos'][0].abs().sum() > 0
    assert not torch.equal(*res['learned'])

def test_pos_embed_bad_value(run_main):
    r = run_main('eval', '--protocol', 'knn', '--checkpoint', 'random', '--pos-embed', 'rope')
    assert r.returncode == 2 and 'pos-embed' in r.stderr

def test_attention_summary_by_hand():
    a = torch.tensor([[0., 1., 0., 0.], [.25, .25, .25, .25], [.5, .5, 0., 0.]])
    obj = torch.tensor([[0., 1., 0., 0.], [1., 0., 0., 0.], [1., .5, 0., 0.]])
    s = attention_summary(a * 3, obj)                          # unnormalised maps are normalised first
    assert s['entropy'] == pytest.approx((0 + 1 + 0.5) / 3)     # log 2 / log 4 for the two-patch map
    assert s['object_share'] == pytest.approx((1 + .25 + .75) / 3)
    assert s['area_share'] == pytest.approx((.25 + .25 + .375) / 3)

def test_object_fraction_is_the_strokes():
    "A white 4x4 square on black, at the top-left patch of a 2x2 grid of 8 px patches, normalised as the data is."
    img = torch.zeros(1, 3, 16, 16); img[..., 2:6, 2:6] = 1.
    m, s = (torch.tensor(v)[:, None, None] for v in imagenet_stats)
    fr = object_fraction((img - m) / s, 8)
    assert torch.allclose(fr, torch.tensor([[16 / 64, 0., 0., 0.]]))

def test_encoder_attention_summary_on_digits():
    data = eval_data('mnist5k', 32, max_items=8, max_valid=16)
    vit = load_eval_encoder('random', img_size=32, patch_size=8, depth=2, seed=0, device='cpu')
    from droppos_nb.evaluation import normalize_images
    s = encoder_attention_summary(vit, normalize_images(data.valid_x, 'cpu'))
    assert 0.9 < s['entropy'] <= 1          # a random encoder's [CLS] attention is almost even over the 16 patches
    assert s['object_share'] == pytest.approx(s['area_share'], abs=0.05)   # ... so it falls on the strokes by their area only
