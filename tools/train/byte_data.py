"""Training text for the byte models: the Python standard library's sources as Debian installs them, split by file
into train and held-out sets with a fixed seed."""
import pathlib
import random

SOURCE = pathlib.Path('/usr/lib/python3.11')
HELDOUT_FRACTION = 0.05


def stdlib_files() -> list[pathlib.Path]:
    files = sorted(p for p in SOURCE.rglob('*.py') if '__pycache__' not in p.parts and 'site-packages' not in p.parts
                   and 'dist-packages' not in p.parts)
    if not files:
        raise SystemExit(f'no .py files under {SOURCE}: install python3.11 (Debian package libpython3.11-stdlib)')
    return files


def split(seed: int) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """(train, heldout) file lists: the held-out files are the first HELDOUT_FRACTION of all files in a seeded
    shuffle, kept in that order (so the held-out stream does not start with whatever sorts first)."""
    files = stdlib_files()
    rng = random.Random(seed)
    order = files[:]
    rng.shuffle(order)
    k = max(1, int(len(order) * HELDOUT_FRACTION))
    return sorted(order[k:]), order[:k]


def stream(files: list[pathlib.Path]) -> bytes:
    """Files concatenated in order, each followed by a blank line."""
    return b''.join(p.read_bytes() + b'\n\n' for p in files)


SAMPLE_BYTES = 32768


def write_heldout_sample(heldout: bytes, path: pathlib.Path) -> bytes:
    """The committed held-out sample: the first SAMPLE_BYTES of the held-out stream, cut back to whole lines."""
    text = heldout[:SAMPLE_BYTES]
    text = text[:text.rfind(b'\n') + 1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return text


def spread_windows(length: int, context: int, count: int) -> list[int]:
    """Start offsets of `count` non-overlapping windows of `context` bytes spread evenly over `length` bytes."""
    count = max(1, min(count, length // context))
    step = (length - context) // max(1, count - 1) if count > 1 else 0
    return [k * step for k in range(count)]
