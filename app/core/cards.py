"""A decoder's card, memdec.json beside its weights: the weights tuned for it on validation and what its corpus is.
The making half writes it (the pipeline for its decoders, app.make.distil for a visitor's) and the serving half reads
it, so its shape is written here once."""
from pathlib import Path

from . import paths
from .files import read_json, write_json

CARD = "memdec.json"


def decoder_card(domain: str, alpha: float, tuned: dict, knn_temperature: float, knn_k: int, block: int, beta: float,
                 key_model, label: str | None = None) -> dict:
    """The card's fields, in the order the committed cards hold them. tuned: base -> {"alpha", "lambda",
    "temperature"}, what validation chose with that base for the decoder and for the kNN-LM; alpha: the decoder's
    weight for a base not in tuned; knn_temperature: the one its kNN targets were made at; key_model: the base whose
    datastore made them. A card without a label (an upload) leaves the app to say what the memory holds."""
    card = {"domain": domain, "label": label, "alpha": alpha,
            "alpha_by_base": {base: v["alpha"] for base, v in tuned.items()},
            "knn_temperature": knn_temperature, "knn_k": knn_k, "block": block,
            "knn_by_base": {base: {"lambda": v["lambda"], "temperature": v["temperature"]}
                            for base, v in tuned.items()},
            "beta": beta, "tuned_on": "validation split", "key_model": model_name(key_model)}
    if label is None:
        del card["label"]
    return card


def model_name(path_or_id) -> str:
    """A model as a person would name it: relative to the repository when it lives there (the same card on every
    clone), else its path or hub id."""
    path = Path(path_or_id).resolve()
    return str(path.relative_to(paths.ROOT)) if path.is_relative_to(paths.ROOT) else str(path_or_id)


def write_card(decoder_folder: Path, card: dict):
    write_json(Path(decoder_folder) / CARD, card)


def read_card(decoder_folder: Path) -> dict | None:
    """None for a decoder that has no card (one this app did not make, or one still being made)."""
    return read_json(Path(decoder_folder) / CARD)
