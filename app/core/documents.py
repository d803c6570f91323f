"""The corpus file format: documents separated by two blank lines, plain or gzip."""
import gzip
from pathlib import Path


def read_documents(path: Path) -> list[str]:
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [d.strip() for d in f.read().split("\n\n\n") if d.strip()]


def write_documents(path: Path, docs):
    """Written to a temporary file first, so a cut-off run leaves nothing half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = ("\n\n\n".join(d.replace("\n\n\n", "\n\n") for d in docs) + "\n").encode()
    # mtime=0: the same documents give the same bytes, so fingerprints of a rebuilt corpus do not change.
    tmp.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    tmp.replace(path)
