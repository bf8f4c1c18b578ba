"""Trains attnopt's byte-level causal code language model on the Python standard library and exports it.

    /usr/bin/python3 tools/train/train_code_lm.py --max-seconds 3000   # writes examples/trained/code-lm.onnx + .json

With --max-seconds the run is bounded by wall clock: 30% of it at context 256 (batch 16), 40% at 1024 (batch 4), the
remaining 30% at 2048 (batch 2), the learning-rate schedule following the elapsed fraction (so it always reaches its
tail); the steps taken per phase are recorded. Without it, the fixed-step phases of --short-steps/--long-steps. Held-out bits per byte are measured on held-out files never
trained on; the metrics file also records torch's bits per byte on the committed held-out sample at n = 4096, which
the onnxruntime test compares against.
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
from byte_model import ByteTransformer  # noqa: E402
from byte_train import Phase, TimedPhase, export_onnx, train, train_timed  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / 'examples' / 'trained'
SAMPLE = OUT / 'heldout' / 'stdlib-heldout.txt'


def lm_bits_per_byte(model: torch.nn.Module, data: torch.Tensor, context: int, max_windows: int) -> float:
    """Mean next-byte cross-entropy in bits over `max_windows` non-overlapping windows of `context` bytes spread
    evenly over the data (the first byte of each window has no prediction)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in spread_windows(len(data), context, max_windows):
            x = data[start:start + context].long()[None]
            logits = model(x)
            total += F.cross_entropy(logits[0, :-1], x[0, 1:], reduction='sum').item()
            count += context - 1
    return total / count / math.log(2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--short-steps', type=int, default=500)
    ap.add_argument('--long-steps', type=int, default=40)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--position', choices=['alibi', 'rope'], default='alibi', help='position scheme (ALiBi extrapolates past the trained context)')
    ap.add_argument('--max-seconds', type=float, default=0, help='train by wall clock (timed phases 256/1024/2048)')
    ap.add_argument('--eval-windows', type=int, default=8)
    ap.add_argument('--out', default=str(OUT / 'code-lm.onnx'))
    ap.add_argument('--checkpoint', default='/tmp/attnopt-train/code-lm.pt', help='weights saved before export')
    ap.add_argument('--from-checkpoint', action='store_true', help='skip training: load --checkpoint, then evaluate and export')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()
    train_files, heldout_files = split(args.seed)
    train_data = torch.frombuffer(bytearray(stream(train_files)), dtype=torch.uint8)
    heldout = stream(heldout_files)
    heldout_data = torch.frombuffer(bytearray(heldout), dtype=torch.uint8)
    sample = write_heldout_sample(heldout, SAMPLE)
    print(f'train {len(train_files)} files {len(train_data)} bytes; heldout {len(heldout_files)} files {len(heldout_data)} bytes', flush=True)

    model = ByteTransformer(d=128, heads=4, layers=4, causal=True, position=args.position)

    def loss_fn(m, batch, context, gen):
        starts = torch.randint(0, len(train_data) - context - 1, (batch,), generator=gen)
        x = torch.stack([train_data[s:s + context + 1] for s in starts.tolist()]).long()
        logits = m(x[:, :-1])
        return F.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1))

    ckpt = pathlib.Path(args.checkpoint)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    if args.max_seconds > 0:
        timed = [TimedPhase(0.30, batch=16, context=256), TimedPhase(0.40, batch=4, context=1024),
                 TimedPhase(0.30, batch=2, context=2048)]
        phases = [p.__dict__ for p in timed]
    else:
        fixed = [Phase(args.short_steps, batch=16, context=256), Phase(args.long_steps, batch=1, context=2048)]
        phases = [p.__dict__ for p in fixed]
    if args.from_checkpoint:
        model.load_state_dict(torch.load(ckpt))
        saved = json.loads(ckpt.with_suffix('.curve.json').read_text())
        if isinstance(saved, list):  # a checkpoint of the fixed-step run, which saved the curve alone
            curve = saved
        else:
            curve, phases = saved['curve'], saved['phases']
    else:
        if args.max_seconds > 0:
            def save(step: int) -> None:
                torch.save(model.state_dict(), ckpt)
            curve, steps = train_timed(model, timed, loss_fn, lr=2e-3, seed=args.seed, max_seconds=args.max_seconds,
                                       log_every=10, log=lambda s: print(s, flush=True), checkpoint=save)
            for p, n in zip(phases, steps):
                p['steps'] = n
        else:
            curve = train(model, fixed, loss_fn, lr=2e-3, seed=args.seed, log_every=25, log=lambda s: print(s, flush=True))
        torch.save(model.state_dict(), ckpt)
        ckpt.with_suffix('.curve.json').write_text(json.dumps({'curve': curve, 'phases': phases}))
    train_seconds = curve[-1]['seconds'] if args.from_checkpoint else time.time() - t0
    sample_data = torch.frombuffer(bytearray(sample), dtype=torch.uint8)
    metrics = {
        'model': 'code-lm', 'seed': args.seed, 'params': sum(p.numel() for p in model.parameters()),
        'config': {'d': 128, 'heads': 4, 'layers': 4, 'position': args.position, 'causal': True},
        'phases': phases, 'max_seconds': args.max_seconds, 'train_seconds': round(train_seconds, 1),
        'train_files': len(train_files), 'heldout_files': len(heldout_files),
        'train_bytes': len(train_data), 'heldout_bytes': len(heldout_data),
        'heldout_bits_per_byte': {
            str(n): lm_bits_per_byte(model, heldout_data, n, max(1, args.eval_windows * 2048 // n)) for n in (1024, 2048, 4096)},
        'heldout_eval_bytes': args.eval_windows * 2048,
        'sample': SAMPLE.name, 'sample_bits_per_byte_n4096': lm_bits_per_byte(model, sample_data, 4096, 1),
        'curve': curve,
    }
    print(json.dumps({k: v for k, v in metrics.items() if k != 'curve'}), flush=True)
    export_onnx(model, args.out, example_len=64)
    pathlib.Path(args.out).with_suffix('.json').write_text(json.dumps(metrics, indent=1) + '\n')
    print(f'wrote {args.out} ({pathlib.Path(args.out).stat().st_size} bytes) in {time.time() - t0:.0f} s', flush=True)


if __name__ == '__main__':
    main()
