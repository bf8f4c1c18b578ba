"""Trains attnopt's bidirectional byte encoder with masked-byte prediction on the Python standard library and exports it.

    /usr/bin/python3 tools/train/train_byte_mlm.py           # writes examples/trained/byte-mlm.onnx + byte-mlm.json

Input: input_ids [batch, seq] int64, byte values 0-255 and 256 for a masked byte; output: logits [batch, seq, 256]
over the original byte at every position. Training masks 15% of positions at random; the held-out metric masks
every position i with i % 7 == 3 (a fixed pattern the onnxruntime test reproduces) and scores those positions only.
"""
import argparse
import json
import math
import os
import pathlib
import sys
import time

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')  # the training machine is shared: one BLAS thread
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from byte_data import split, spread_windows, stream, write_heldout_sample  # noqa: E402
from byte_model import MASK_ID, ByteTransformer  # noqa: E402
from byte_train import Phase, export_onnx, train  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / 'examples' / 'trained'
SAMPLE = OUT / 'heldout' / 'stdlib-heldout.txt'
MASK_RATE = 0.15


def eval_mask(n: int) -> torch.Tensor:
    """The held-out masking pattern: position i is masked when i % 7 == 3."""
    return torch.arange(n) % 7 == 3


def masked_metrics(model: torch.nn.Module, data: torch.Tensor, context: int, max_windows: int) -> dict:
    """Bits per masked byte and top-1 accuracy at the masked positions of eval_mask, over `max_windows`
    non-overlapping windows spread evenly over the data."""
    model.eval()
    bits, hits, count = 0.0, 0, 0
    mask = eval_mask(context)
    with torch.no_grad():
        for start in spread_windows(len(data), context, max_windows):
            y = data[start:start + context].long()
            x = torch.where(mask, torch.full_like(y, MASK_ID), y)
            logits = model(x[None])[0][mask]
            bits += F.cross_entropy(logits, y[mask], reduction='sum').item() / math.log(2)
            hits += (logits.argmax(-1) == y[mask]).sum().item()
            count += int(mask.sum())
    return {'bits_per_masked_byte': bits / count, 'top1': hits / count, 'masked': count}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--short-steps', type=int, default=450)
    ap.add_argument('--long-steps', type=int, default=20)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--eval-windows', type=int, default=8)
    ap.add_argument('--out', default=str(OUT / 'byte-mlm.onnx'))
    ap.add_argument('--checkpoint', default='/tmp/attnopt-train/byte-mlm.pt', help='weights saved before export')
    ap.add_argument('--from-checkpoint', action='store_true', help='skip training: load --checkpoint, then evaluate and export')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()
    train_files, heldout_files = split(args.seed)
    train_data = torch.frombuffer(bytearray(stream(train_files)), dtype=torch.uint8)
    heldout = stream(heldout_files)
    heldout_data = torch.frombuffer(bytearray(heldout), dtype=torch.uint8)
    write_heldout_sample(heldout, SAMPLE)  # the same file train_code_lm.py writes
    print(f'train {len(train_files)} files {len(train_data)} bytes; heldout {len(heldout_files)} files {len(heldout_data)} bytes', flush=True)

    model = ByteTransformer(d=128, heads=4, layers=4, causal=False)

    def loss_fn(m, batch, context, gen):
        starts = torch.randint(0, len(train_data) - context, (batch,), generator=gen)
        y = torch.stack([train_data[s:s + context] for s in starts.tolist()]).long()
        masked = torch.rand(y.shape, generator=gen) < MASK_RATE
        x = torch.where(masked, torch.full_like(y, MASK_ID), y)
        return F.cross_entropy(m(x)[masked], y[masked])

    phases = [Phase(args.short_steps, batch=16, context=256), Phase(args.long_steps, batch=2, context=1024)]
    if args.from_checkpoint:
        model.load_state_dict(torch.load(args.checkpoint))
        curve = json.loads(pathlib.Path(args.checkpoint).with_suffix('.curve.json').read_text())
    else:
        curve = train(model, phases, loss_fn, lr=2e-3, seed=args.seed, log_every=25, log=lambda s: print(s, flush=True))
        pathlib.Path(args.checkpoint).parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), args.checkpoint)
        pathlib.Path(args.checkpoint).with_suffix('.curve.json').write_text(json.dumps(curve))
    train_seconds = curve[-1]['seconds'] if args.from_checkpoint else time.time() - t0
    sample = torch.frombuffer(bytearray(SAMPLE.read_bytes()), dtype=torch.uint8)  # written above
    metrics = {
        'model': 'byte-mlm', 'seed': args.seed, 'params': sum(p.numel() for p in model.parameters()),
        'config': {'d': 128, 'heads': 4, 'layers': 4, 'position': 'rope', 'causal': False, 'mask_id': MASK_ID, 'mask_rate': MASK_RATE},
        'phases': [p.__dict__ for p in phases], 'train_seconds': round(train_seconds, 1),
        'train_files': len(train_files), 'heldout_files': len(heldout_files),
        'train_bytes': len(train_data), 'heldout_bytes': len(heldout_data),
        'heldout': {str(n): masked_metrics(model, heldout_data, n, max(1, args.eval_windows * 1024 // n)) for n in (1024, 4096)},
        'heldout_eval_bytes': args.eval_windows * 1024,
        'sample': SAMPLE.name, 'sample_n4096': masked_metrics(model, sample, 4096, 1),
        'curve': curve,
    }
    print(json.dumps({k: v for k, v in metrics.items() if k != 'curve'}), flush=True)
    export_onnx(model, args.out, example_len=64)
    pathlib.Path(args.out).with_suffix('.json').write_text(json.dumps(metrics, indent=1) + '\n')
    print(f'wrote {args.out} ({pathlib.Path(args.out).stat().st_size} bytes) in {time.time() - t0:.0f} s', flush=True)


if __name__ == '__main__':
    main()
