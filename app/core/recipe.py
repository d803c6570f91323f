"""Is it current? Every output the project makes (a model, the tokenizer, a datastore, kNN targets, cached
predictions, the corpora and their sources) records the recipe it was made from in its folder; it is current
exactly when that recorded recipe equals the one wanted now. The recipe is written last, after the output, so an
output cut off half-way is never current."""
import json
from pathlib import Path

from .files import read_json, write_json

FILE = "recipe.json"


def recorded(folder: Path) -> dict | None:
    return read_json(Path(folder) / FILE)


def is_current(folder: Path, wanted: dict) -> bool:
    # a JSON round trip so that tuples and lists, or int and float keys, compare as they will be read back
    return recorded(folder) == json.loads(json.dumps(wanted))


def record(folder: Path, recipe: dict):
    write_json(Path(folder) / FILE, recipe)


def forget(folder: Path):
    """Before an output is rewritten in place: until the new recipe is recorded, it is not current."""
    (Path(folder) / FILE).unlink(missing_ok=True)
