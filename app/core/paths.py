"""Where the project keeps things: committed assets and models, and an ignored cache for rebuildable data.

One helper per kind of folder. Each reads the module's roots when it is called, so a test (or a Space with a
persistent disk) moves the cache, the models or the corpora by changing one attribute here.
"""
import hashlib
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
MODELS = ROOT / "models"
CORPORA = ROOT / "assets" / "corpora"
RESULTS = ROOT / "assets" / "results"
# Datastores, downloaded sources and the general corpus are rebuilt on demand, so they live outside git.
CACHE = Path(os.environ.get("MEMDEC_CACHE", ROOT / ".cache"))
DOMAINS = ("biomed", "finance", "law")
SPLITS = ("train", "validation", "test")


EMBEDDED = "embedded"  # the committed family at the top of models/; every other family has a folder of its own


def family_folder(root: Path, family: str) -> Path:
    return root if family == EMBEDDED else root / family


def model_folder(kind: str, name: str, family: str = EMBEDDED) -> Path:
    """models/<kind>-<name> (models/<family>/<kind>-<name> for another family): kind is "base" or "memdec"."""
    return family_folder(MODELS, family) / f"{kind}-{name}"


def results_folder(family: str = EMBEDDED) -> Path:
    return family_folder(RESULTS, family)


def tokenizer_folder() -> Path:
    return MODELS / "tokenizer"


def corpus_path(domain: str, split: str) -> Path:
    """assets/corpora/<domain>/<split>.txt.gz, or a plain .txt that a user dropped there for a domain of their own."""
    plain = CORPORA / domain / f"{split}.txt"
    return plain if plain.exists() else CORPORA / domain / f"{split}.txt.gz"


def general_corpus() -> Path:
    return CACHE / "corpora" / "general.txt"


def sources_folder() -> Path:
    return CACHE / "sources"


def store_folder(model, domain: str) -> Path:
    """Where the datastore of (model, domain) lives: one place for the app and the pipeline, so each reuses the
    other's."""
    name = Path(model).name if Path(model).exists() else str(model).replace("/", "--")
    return CACHE / "datastores" / f"{name}__{domain}"


def token_cache(key: str) -> Path:
    return CACHE / "tokens" / f"{key}.npy"


def targets_folder(domain: str, family: str = EMBEDDED) -> Path:
    return family_folder(CACHE / "targets", family) / domain


def key_targets_folder(domain: str, family: str = EMBEDDED) -> Path:
    """The key model's own next-token distributions over a domain's train split (the plain-distillation control)."""
    return family_folder(CACHE / "key-targets", family) / domain


def predictions_folder(model: str, domain: str, split: str) -> Path:
    """p(next token) of one model (a base with its kNN-LM, a decoder, a control) on one split, as evaluated."""
    return CACHE / "predictions" / f"{model}__{domain}__{split}"


def control_folder(domain: str, name: str, family: str = EMBEDDED) -> Path:
    """Decoders of other seeds and losses, and DAPT models: rebuilt by the pipeline, so not committed."""
    return family_folder(CACHE / "controls", family) / domain / name


def decoder_start_folder(family: str) -> Path:
    """The fresh decoder a family's Memory Decoders start from, when no base of the family is small enough."""
    return CACHE / "starts" / family


def run_folder(name: str, recipe: dict) -> Path:
    """Where a training run keeps its checkpoint: keyed by the recipe, so a checkpoint resumes only its own run."""
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return CACHE / "runs" / f"{name}-{digest}"
