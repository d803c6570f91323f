"""A text dataset on the hub (parquet files with a `text` column, one row per line as in WikiText) made into a
local corpus file for a datastore, read only up to a token cap."""
import hashlib
from pathlib import Path

import pyarrow.parquet as pq
from huggingface_hub import snapshot_download

from . import paths
from .documents import write_documents
from .files import write_text


def articles(lines):
    """WikiText rows -> articles: a new article starts at each top-level heading ' = Title = '."""
    current = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("= ") and stripped.endswith(" =") and not stripped.startswith("= ="):
            if current:
                yield "\n".join(current)
            current = [stripped.strip("= ").strip()]
        elif stripped:
            current.append(stripped)
    if current:
        yield "\n".join(current)


def rows(folder: Path, files: str):
    for part in sorted(folder.glob(files)):
        for batch in pq.ParquetFile(part).iter_batches(columns=["text"], batch_size=4096):
            yield from batch.column("text").to_pylist()


def local_corpus(repo: str, files: str, name: str, tokenizer, fingerprint: str, max_tokens: int,
                 progress=None) -> tuple[Path, int]:
    """(corpus file, tokens it holds): the dataset's first articles up to max_tokens under this tokenizer (whose
    vocabulary hash is fingerprint), written once into the cache and reused."""
    key = hashlib.sha256(f"{repo}|{files}|{max_tokens}|{fingerprint}".encode()).hexdigest()[:12]
    out = paths.CACHE / "corpora" / f"{name}-{key}.txt"
    count = out.with_suffix(".tokens")
    if count.exists():  # written last
        return out, int(count.read_text())
    folder = Path(snapshot_download(repo, repo_type="dataset", allow_patterns=[files]))
    kept, total = [], 0
    for article in articles(rows(folder, files)):
        kept.append(article)
        total += len(tokenizer.backend_tokenizer.encode(article, add_special_tokens=False).ids)
        if progress:
            progress(min(1.0, total / max_tokens), f"corpus {name}")
        if total >= max_tokens:
            break
    write_documents(out, kept)
    write_text(count, str(total))
    return out, total
