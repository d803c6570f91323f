"""The corpus file format: documents separated by two blank lines, plain or gzip."""
import gzip
from pathlib import Path

from .files import write_bytes


def read_documents(path: Path) -> list[str]:
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [d.strip() for d in f.read().split("\n\n\n") if d.strip()]


def write_documents(path: Path, docs):
    data = ("\n\n\n".join(d.replace("\n\n\n", "\n\n") for d in docs) + "\n").encode()
    # mtime=0: the same documents give the same bytes, so fingerprints of a rebuilt corpus do not change.
    write_bytes(path, gzip.compress(data, mtime=0) if Path(path).suffix == ".gz" else data)
