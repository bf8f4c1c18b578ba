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
    """(train, heldout) file lists; the held-out files are a seeded sample of HELDOUT_FRACTION of all files."""
    files = stdlib_files()
    rng = random.Random(seed)
    order = files[:]
    rng.shuffle(order)
    k = max(1, int(len(order) * HELDOUT_FRACTION))
    heldout = sorted(order[:k])
    train = sorted(order[k:])
    return train, heldout


def stream(files: list[pathlib.Path]) -> bytes:
    """Files concatenated in order, each followed by a blank line."""
    return b''.join(p.read_bytes() + b'\n\n' for p in files)
