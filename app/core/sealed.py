"""A folder of arrays written whole and checked on load: how a rebuildable array cache (kNN targets, cached
predictions) is kept. Saving, under the folder's lock, writes each array as <name>.npy into a temporary folder of its
own, records their checksums and then the recipe, and swaps it into place; loading returns the arrays only when the
recipe is the one wanted and every file matches its checksum, and moves a damaged folder aside (logged)."""
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import checksums, locks, quarantine, recipe
from .files import read_json, replace_folder, temporary_folder


def save(folder: Path, arrays: dict[str, np.ndarray], made_from: dict):
    """Writes the arrays (names: file names without .npy) with their checksums and recipe in place of folder."""
    folder = Path(folder)
    with locks.held(folder):
        for abandoned in folder.parent.glob(f"{folder.name}.tmp-*"):  # left by a killed writer: none runs now
            shutil.rmtree(abandoned, ignore_errors=True)
        work = temporary_folder(folder)
        for name, array in arrays.items():
            np.save(work / f"{name}.npy", np.asarray(array))
        checksums.seal(work, [f"{name}.npy" for name in arrays])
        recipe.record(work, made_from)
        replace_folder(work, folder)


def load(folder: Path, made_from: dict, mmap: bool = False) -> dict[str, np.ndarray] | None:
    """{name: array} when folder holds intact arrays made from made_from; None when it is missing, stale, not made
    by save, or damaged (then it is moved aside). mmap: map the arrays rather than read them."""
    folder = Path(folder)
    with locks.held(folder):
        try:
            if not recipe.is_current(folder, made_from) or not checksums.is_sealed(folder):
                return None
            problem = checksums.problem(folder)
            if problem is None:
                names = read_json(folder / checksums.FILE)
                return {name[:-len(".npy")]: np.load(folder / name, mmap_mode="r" if mmap else None) for name in names}
        except (OSError, ValueError, EOFError) as error:  # a recipe or an array that cannot be read
            problem = f"unreadable: {error}"
        quarantine.move_aside(folder, problem)
        return None


def load_or_make(folder: Path, made_from: dict, make: Callable[[], dict[str, np.ndarray]],
                 mmap: bool = False) -> dict[str, np.ndarray]:
    """The arrays from folder when current and intact, else make()'s, saved there: made once however many threads
    and processes ask at the same time (the others wait, then load them)."""
    with locks.held(folder):
        arrays = load(folder, made_from, mmap)
        if arrays is None:
            arrays = make()
            save(folder, arrays, made_from)
        return arrays
