"""Sparse kNN targets: for every training position, the kNN-LM's next-token distribution, which the Memory
Decoder learns to imitate. Stored as CSR rows (token ids int32 + probabilities fp16), checked on load and rebuilt when
damaged (app.core.sealed)."""
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import locks, quarantine, recipe, sealed
from ..core.distributions import knn_weights

LEGACY = "targets.npz"  # how targets were saved before they had checksums


@dataclass
class SparseTargets:
    offsets: np.ndarray  # (n + 1,) int64: row p is ids[offsets[p]:offsets[p + 1]]
    ids: np.ndarray  # int32 token ids, most probable first within a row
    probs: np.ndarray  # float16 probabilities
    recipe: dict  # k, temperature and the recipe of the datastore they were searched in

    def __len__(self):
        return len(self.offsets) - 1

    def row(self, p: int) -> dict:
        lo, hi = self.offsets[p], self.offsets[p + 1]
        return dict(zip(self.ids[lo:hi].tolist(), self.probs[lo:hi].astype(np.float32).tolist()))

    def padded(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(len(positions), widest row) ids and probabilities, zero-padded; rows renormalised after fp16 storage."""
        lo, hi = self.offsets[positions], self.offsets[positions + 1]
        width = int((hi - lo).max())
        cols = np.arange(width)
        take = lo[:, None] + cols
        valid = cols < (hi - lo)[:, None]
        take = np.where(valid, take, 0)
        ids = torch.from_numpy(np.where(valid, self.ids[take], 0).astype(np.int64))
        probs = torch.from_numpy(np.where(valid, self.probs[take].astype(np.float32), 0.0))
        return ids, probs / probs.sum(-1, keepdim=True)


def targets_recipe(store_recipe: dict, k: int, temperature: float) -> dict:
    return {"k": k, "temperature": temperature, "datastore": store_recipe}


def sparse_rows(distances: torch.Tensor, values: torch.Tensor, temperature: float):
    """Per query, the distinct next tokens of its neighbours and their summed softmax(-d/T) weight, largest first."""
    weights = knn_weights(distances, temperature)
    for w, v in zip(weights, values):
        tokens, inverse = torch.unique(v, return_inverse=True)
        mass = torch.zeros(len(tokens)).scatter_add_(0, inverse, w)
        order = torch.argsort(mass, descending=True)
        yield tokens[order].numpy(), mass[order].numpy()


def build_targets(store, k: int, temperature: float, batch_size: int = 2048, progress=None) -> SparseTargets:
    """Queries the store with its own keys; the position itself is excluded by id (not assumed to be first)."""
    n = len(store)
    offsets, all_ids, all_probs = [0], [], []
    for start in tqdm(range(0, n, batch_size), desc="knn targets", leave=False):
        positions = np.arange(start, min(n, start + batch_size))
        distances, ids = store.search(store.keys[positions].astype(np.float32), k + 1)
        keep = ids != positions[:, None]
        # Drop the self hit where present, else the farthest neighbour, so every row has exactly k.
        keep[keep.all(1), -1] = False
        distances = torch.from_numpy(distances[keep].reshape(len(positions), k))
        values = torch.from_numpy(store.values[ids[keep].reshape(len(positions), k)].astype(np.int64))
        for tokens, mass in sparse_rows(distances, values, temperature):
            all_ids.append(tokens.astype(np.int32))
            all_probs.append(mass.astype(np.float16))
            offsets.append(offsets[-1] + len(tokens))
        if progress:
            progress(positions[-1] / n, "knn targets")
    return SparseTargets(np.asarray(offsets, dtype=np.int64), np.concatenate(all_ids), np.concatenate(all_probs),
                         targets_recipe(store.recipe, k, temperature))


def save(targets: SparseTargets, folder: Path):
    """Written whole with checksums, the recipe last (app.core.sealed): targets cut off half-way are never current."""
    sealed.save(folder, {"offsets": targets.offsets, "ids": targets.ids, "probs": targets.probs}, targets.recipe)


def load(folder: Path, wanted: dict | None = None) -> SparseTargets | None:
    """The targets in folder when made from the wanted recipe (None: whichever is recorded) and intact; None when
    missing, stale or damaged (then moved aside, logged). Targets saved before checksums were (targets.npz) are
    accepted when their rows add up, and saved again with checksums."""
    folder = Path(folder)
    with locks.held(folder):
        try:
            wanted = recipe.recorded(folder) if wanted is None else wanted
        except ValueError as error:
            quarantine.move_aside(folder, f"{recipe.FILE} is unreadable ({error})")
            return None
        if wanted is None:
            return None
        arrays = sealed.load(folder, wanted) or legacy(folder, wanted)
        if arrays is None:
            return None
        return SparseTargets(arrays["offsets"], arrays["ids"], arrays["probs"], recipe.recorded(folder))


def legacy(folder: Path, wanted: dict) -> dict | None:
    """The arrays of a targets.npz from before checksums, saved again sealed, when it is current and its rows add up."""
    if not (folder / LEGACY).exists() or not recipe.is_current(folder, wanted):
        return None
    try:
        with np.load(folder / LEGACY) as data:
            arrays = {name: data[name] for name in ("offsets", "ids", "probs")}
        offsets = arrays["offsets"]
        intact = (offsets[0] == 0 and (np.diff(offsets) >= 0).all()
                  and offsets[-1] == len(arrays["ids"]) == len(arrays["probs"]))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        intact = False
    if not intact:
        quarantine.move_aside(folder, f"{LEGACY} is unreadable or its rows do not add up")
        return None
    sealed.save(folder, arrays, wanted)
    return arrays


def load_or_build(store, k: int, temperature: float, folder: Path, progress=None) -> SparseTargets:
    """The targets of (store, k, temperature) from folder when current and intact, else built and saved there, once
    however many threads and processes ask at the same time."""
    wanted = targets_recipe(store.recipe, k, temperature)
    with locks.held(folder):
        found = load(folder, wanted)
        if found is None:
            found = build_targets(store, k, temperature, progress=progress)
            save(found, folder)
        return found
