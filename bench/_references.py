"""Random-init reference encoders that `--checkpoint random` cannot build, written as a pretraining run writes its
encoder (`encoder.safetensors`), for bench/results.py (the floors of its table) and bench/sweep.py (its reference rows).

- `random_resnet18`: a ResNet-18 with `zero_init_last=False`. timm zero-initialises the last BatchNorm of every
  residual block, so its random ResNet-18 maps every digit to about the same features (chance); with ordinary
  initialisation random filters do separate digits: MSCN's fair floor.
- `random_beit`: a timm Beit of BEiT v2's `recipe` (its shape and init): BEiT v2's own floor.
"""
from pathlib import Path


def random_resnet18(folder, seed:int=0) -> Path:
    "A random ResNet-18 (`zero_init_last=False`) of `seed` as `folder/encoder.safetensors`."
    import timm, torch.nn as nn
    from droppos_nb.core import set_seed
    from droppos_nb.checkpoint import export_encoder
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    holder = nn.Module(); holder.encoder = timm.create_model('resnet18', num_classes=0, zero_init_last=False)
    return export_encoder(holder, folder / 'encoder.safetensors', arch='resnet18', img_size=32)


def random_beit(folder, seed:int=0, recipe:str='laptop', tokenizer_recipe:str|None=None, **changes) -> Path:
    """A random Beit of BEiT v2's `recipe` (with `changes`, e.g. `beit_init='official'`) of `seed` as
    `folder/encoder.safetensors`; its head is sized by VQ-KD's `tokenizer_recipe` codebook but not exported."""
    from droppos_nb.core import set_seed
    from droppos_nb.checkpoint import export_encoder
    from droppos_nb.registry import get_method
    spec = get_method('beitv2')
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    m = spec.model_cls(**{**spec.model_kwargs({**spec.recipe(recipe), **changes}),
                          'vocab_size': get_method('vqkd').recipe(tokenizer_recipe or recipe)['codebook_size']})
    return export_encoder(m, folder / 'encoder.safetensors', **spec.export_meta(m))
