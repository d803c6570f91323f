"""Content checksums of an output's files: written when it is built, checked each time it is loaded, so that a
truncated or rewritten file is found before it is read (and not answered from).

blake2b from hashlib (about 1.3 GB/s on this machine). A file up to FULL_BYTES is checked whole on every load. A
larger one (the keys of a store of 10^7 entries are GBs, seconds to hash) is checked on every load against its size
and a sampled checksum: SAMPLES blocks spread evenly over the file, its header and its end included, which finds a
truncated, extended or rewritten file in milliseconds but may miss a few bytes changed between two blocks; its full
checksum is recorded too, for problem(folder, full=True).
"""
import hashlib
from pathlib import Path

from .files import read_json, write_json

FILE = "checksums.json"
FULL_BYTES = 256 << 20
SAMPLES, SAMPLE_BYTES = 64, 64 << 10


def full_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def sampled_digest(path: Path, samples: int, sample_bytes: int) -> str:
    size = Path(path).stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    last = max(0, size - sample_bytes)
    with open(path, "rb") as f:
        for i in range(samples):
            f.seek(last * i // max(1, samples - 1))
            h.update(f.read(sample_bytes))
    return h.hexdigest()


def entry(path: Path) -> dict:
    """What is recorded of one file: its size, its checksum, and its sampled checksum with how it was sampled."""
    return {"bytes": Path(path).stat().st_size, "blake2b": full_digest(path),
            "sampled": {"samples": SAMPLES, "sample_bytes": SAMPLE_BYTES,
                        "blake2b": sampled_digest(path, SAMPLES, SAMPLE_BYTES)}}


def mismatch(path: Path, recorded: dict, full: bool | None = None) -> str | None:
    """Why the file is not the one recorded (a short sentence), or None. full: hash it whole (None: when small)."""
    path = Path(path)
    if not path.exists():
        return f"{path.name} is missing"
    size = path.stat().st_size
    if size != recorded["bytes"]:
        return f"{path.name} has {size:,} bytes, {recorded['bytes']:,} were written"
    whole = size <= FULL_BYTES if full is None else full
    sampled = recorded["sampled"]
    if whole and full_digest(path) != recorded["blake2b"] or not whole and sampled_digest(
            path, sampled["samples"], sampled["sample_bytes"]) != sampled["blake2b"]:
        return f"{path.name} does not match the checksum written when it was built"
    return None


def seal(folder: Path, names):
    """Records the checksums of these files of the folder in its FILE."""
    write_json(Path(folder) / FILE, {name: entry(Path(folder) / name) for name in names})


def is_sealed(folder: Path) -> bool:
    return (Path(folder) / FILE).exists()


def problem(folder: Path, full: bool | None = None) -> str | None:
    """What is wrong with the sealed files of the folder, or None when each matches its checksum. An unreadable
    FILE is a problem too."""
    try:
        recorded = read_json(Path(folder) / FILE)
        return next(filter(None, (mismatch(Path(folder) / name, each, full) for name, each in recorded.items())), None)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return f"{FILE} is unreadable ({error})"
