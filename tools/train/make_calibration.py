"""Calibration folders for the trained byte models, from the committed held-out sample (attnopt's --calibration):

    /usr/bin/python3 tools/train/make_calibration.py [--n 1024] [--out examples/trained/calibration]

<out>/<model>/0/input_ids.npy: n bytes of held-out text;
<out>/<model>/1/input_ids.npy: n / 2 further bytes, then the same bytes again (a repeated span, where an induction
head attends to the byte after the previous occurrence: offset n / 2 - 1).
For byte-mlm every position i with i % 7 == 3 is masked (256), as in its held-out metric.
"""
import argparse
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[2] / 'examples' / 'trained'
MASK_ID = 256


def samples(text: bytes, n: int) -> list[np.ndarray]:
    plain = np.frombuffer(text[:n], dtype=np.uint8).astype(np.int64)
    span = np.frombuffer(text[n:n + n // 2], dtype=np.uint8).astype(np.int64)
    return [plain[None], np.concatenate([span, span])[None]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=1024)
    ap.add_argument('--out', default=str(OUT / 'calibration'))
    args = ap.parse_args()
    text = (OUT / 'heldout' / 'stdlib-heldout.txt').read_bytes()
    for model, masked in (('code-lm', False), ('byte-mlm', True)):
        for k, ids in enumerate(samples(text, args.n)):
            if masked:
                ids = np.where(np.arange(ids.shape[1]) % 7 == 3, MASK_ID, ids)
            d = pathlib.Path(args.out) / model / str(k)
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / 'input_ids.npy', ids)


if __name__ == '__main__':
    main()
