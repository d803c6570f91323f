"""Where the project keeps things: committed assets and models, and an ignored cache for rebuildable data."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
CORPORA = ROOT / "assets" / "corpora"
# Datastores, downloaded sources and the general corpus are rebuilt on demand, so they live outside git.
CACHE = Path(os.environ.get("MEMDEC_CACHE", ROOT / ".cache"))
DOMAINS = ("biomed", "finance", "law")
SPLITS = ("train", "validation", "test")
