"""Sparse kNN targets: for every training position, the kNN-LM's next-token distribution, which the Memory
Decoder learns to imitate. Stored as CSR rows (token ids int32 + probabilities fp16)."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import recipe
from ..core.distributions import knn_weights


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
    """The recipe is removed first and written last: targets cut off half-way are never taken as current."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe.forget(folder)
    tmp = folder / "targets.tmp.npz"
    np.savez(tmp, offsets=targets.offsets, ids=targets.ids, probs=targets.probs)
    tmp.replace(folder / "targets.npz")
    recipe.record(folder, targets.recipe)


def load(folder: Path) -> SparseTargets:
    data = np.load(folder / "targets.npz")
    return SparseTargets(data["offsets"], data["ids"], data["probs"], recipe.recorded(folder))
