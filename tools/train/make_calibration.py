"""Calibration folders for the trained byte models, from the committed held-out sample (attnopt's --calibration):

    /usr/bin/python3 tools/train/make_calibration.py

examples/trained/calibration/<model>/0/input_ids.npy: 1024 bytes of held-out text;
examples/trained/calibration/<model>/1/input_ids.npy: 512 further bytes, then the same 512 bytes again (a repeated
span, where an induction head attends to the byte after the previous occurrence: offset 511).
For byte-mlm every position i with i % 7 == 3 is masked (256), as in its held-out metric.
"""
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[2] / 'examples' / 'trained'
MASK_ID = 256
N = 1024


def samples(text: bytes) -> list[np.ndarray]:
    plain = np.frombuffer(text[:N], dtype=np.uint8).astype(np.int64)
    span = np.frombuffer(text[N:N + N // 2], dtype=np.uint8).astype(np.int64)
    return [plain[None], np.concatenate([span, span])[None]]


def main() -> None:
    text = (OUT / 'heldout' / 'stdlib-heldout.txt').read_bytes()
    for model, masked in (('code-lm', False), ('byte-mlm', True)):
        for k, ids in enumerate(samples(text)):
            if masked:
                ids = np.where(np.arange(ids.shape[1]) % 7 == 3, MASK_ID, ids)
            d = OUT / 'calibration' / model / str(k)
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / 'input_ids.npy', ids)


if __name__ == '__main__':
    main()
