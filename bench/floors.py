"""Floors for the mnist5k encoders: logistic regression and kNN on the raw pixels of the project's own split.

    python bench/floors.py                                    # writes bench/results/floors.json
    python bench/floors.py --img-size 28 --out /tmp/floors28.json

An encoder whose kNN or linear probe is below these figures has learnt features that are worse than the pixels it
was given. The split is the evaluation protocols' own: `droppos_nb.evaluation.eval_data('mnist5k', 32)`, the same
digits and split (seed 0) that `droppos_nb.data.mnist5k` and `droppos_nb pretrain` use (checked here).
`pixel_floors` (in `droppos_nb.evaluation`) takes any `TensorData`.
"""
import argparse, json, platform, time
from pathlib import Path
import numpy as np, torch


from droppos_nb.evaluation import pixel_floors   # the library's (30_evaluation); this script writes the floors file


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default='mnist5k'); p.add_argument('--img-size', type=int, default=32)
    p.add_argument('--k', type=int, default=20)
    p.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results/floors.json'))
    args = p.parse_args()
    import droppos_nb
    from droppos_nb.evaluation import eval_data
    from droppos_nb.data import mnist5k
    data = eval_data(args.data, args.img_size)
    check = {}
    if args.data == 'mnist5k':                              # the eval split is the pretraining split
        ref = mnist5k(args.img_size)
        check = dict(same_as_data_mnist5k=all(torch.equal(a, b) for a, b in zip(
            (data.train_x, data.train_y, data.valid_x, data.valid_y), (ref.train_x, ref.train_y, ref.valid_x, ref.valid_y))),
            train_shape=list(data.train_x.shape), valid_shape=list(data.valid_x.shape), dtype=str(data.train_x.dtype),
            train_class_counts=torch.bincount(data.train_y).tolist(), valid_class_counts=torch.bincount(data.valid_y).tolist())
    res = dict(data=args.data, split='eval_data(data, img_size), split seed 0', check=check, **pixel_floors(data, k=args.k),
               library=str(Path(droppos_nb.__file__).parent), machine=platform.platform(), date=time.strftime('%Y-%m-%d'))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
