"""Writing files and folders so that a reader never sees half of one: each is written under a temporary name of its
own (unique, so that two writers never share one), then renamed into place."""
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path


def write_bytes(path: Path, data: bytes):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str):
    write_bytes(path, text.encode())


def write_json(path: Path, data):
    write_text(path, json.dumps(data, indent=1))


def read_json(path: Path):
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def temporary_folder(folder: Path) -> Path:
    """A new empty folder next to folder, `<name>.tmp-<random>`, to build it in."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{folder.name}.tmp-", dir=folder.parent))


def replace_folder(built: Path, folder: Path):
    """Puts a finished folder in place of folder (which may exist): the old one is renamed away first, then deleted,
    so that folder is never a mix of both. Call it holding folder's lock (app.core.locks)."""
    folder = Path(folder)
    old = folder.with_name(f"{folder.name}.old-{uuid.uuid4().hex[:8]}")
    if folder.exists():
        folder.rename(old)
    Path(built).rename(folder)
    shutil.rmtree(old, ignore_errors=True)
