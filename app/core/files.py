"""Writing files so that a reader never sees half of one: each goes to a temporary name, then is renamed into place."""
import json
from pathlib import Path


def write_bytes(path: Path, data: bytes):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_text(path: Path, text: str):
    write_bytes(path, text.encode())


def write_json(path: Path, data):
    write_text(path, json.dumps(data, indent=1))


def read_json(path: Path):
    return json.loads(Path(path).read_text()) if Path(path).exists() else None
