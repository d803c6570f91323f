"""Is it current? Every output the project makes (a model, a datastore, kNN targets, cached predictions, the
general corpus) records the recipe it was made from in its folder; it is current exactly when that recorded
recipe equals the one wanted now. The recipe is written last, so an output cut off half-way is never current.
"""
import json
from pathlib import Path

FILE = "recipe.json"


def read_json(path: Path):
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def write_json(path: Path, data):
    """Through a temporary file renamed into place, so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def recorded(folder: Path) -> dict | None:
    return read_json(Path(folder) / FILE)


def is_current(folder: Path, wanted: dict) -> bool:
    # a JSON round trip so that tuples and lists, or int and float keys, compare as they will be read back
    return recorded(folder) == json.loads(json.dumps(wanted))


def record(folder: Path, recipe: dict):
    write_json(Path(folder) / FILE, recipe)
