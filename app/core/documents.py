"""The corpus file format (documents separated by two blank lines, plain or gzip), and how a long document is cut
into sections: the pipeline's evaluation splits and a visitor's upload both hold sections, not whole documents."""
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


def sections(doc: str, max_chars: int) -> list[str]:
    """The document cut at line boundaries (a line longer than max_chars at word boundaries) into pieces of at
    most max_chars. The committed corpora's evaluation splits were cut this way: a change here changes them."""
    pieces, current = [], ""
    for line in doc.split("\n"):
        while len(line) > max_chars:
            cut = line.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            pieces, current = pieces + [p for p in (current,) if p] + [line[:cut]], ""
            line = line[cut:].strip()
        if current and len(current) + 1 + len(line) > max_chars:
            pieces.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    return [p for p in pieces + [current] if p.strip()]
