"""Loading and saving models through the transformers Auto classes, and the fingerprints that recipes record."""
import hashlib
import json
import shutil
from functools import lru_cache
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from transformers import AutoModelForCausalLM, AutoTokenizer

from . import paths, recipe


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve(path_or_id) -> Path:
    """A local folder as is; a hub id (e.g. "gpt2", "Clover-Hill/MemoryDecoder-gpt2-small") through the hub cache,
    so that fingerprints and datastores always refer to files on disk."""
    if Path(path_or_id).exists():
        return Path(path_or_id)
    try:
        return Path(snapshot_download(str(path_or_id), allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))
    except Exception as error:  # offline, unknown id, gated repo: one clear message
        raise FileNotFoundError(f"model '{path_or_id}' is neither a local folder nor reachable on the hub: {error}") from error


def load_tokenizer(path):
    return AutoTokenizer.from_pretrained(str(resolve(path)))


def load_lm(path, dev=None):
    """A frozen causal LM in float32 on CPU (the embedded models are stored in fp16 to stay small), bf16 on GPU."""
    dtype = torch.float32 if (dev or device()).type == "cpu" else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(str(resolve(path)), dtype=dtype).to(dev or device())
    return model.eval().requires_grad_(False)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@lru_cache(maxsize=64)
def _folder_fingerprint(folder: str, stamp: tuple) -> str:
    files = sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.bin"))
    return hashlib.sha256("".join(file_digest(f) for f in files).encode()).hexdigest()[:16]


def model_fingerprint(folder) -> str:
    """Hash of the weight files; cached per (size, mtime) so repeated checks stay cheap."""
    folder = resolve(folder)
    files = sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"no weights in {folder}")
    return _folder_fingerprint(str(folder), tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(vocab.encode()).hexdigest()[:16]


def embedded(kind: str) -> dict:
    """name -> folder for committed models/<kind>-<name> that hold weights."""
    return {p.name[len(kind) + 1:]: p for p in sorted(paths.MODELS.glob(f"{kind}-*")) if any(p.glob("*.safetensors"))}


def save_model(model, tokenizer, folder: Path, made_from: dict | None = None):
    """Saves fp16 safetensors (shards under 16 MB), the tokenizer and the recipe, via a temporary folder renamed at
    the end, so a cut-off save never replaces a good model with half of one."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.float16).save_pretrained(tmp, max_shard_size="15MB")
    model.to(torch.float32)
    tokenizer.save_pretrained(tmp)
    if made_from:
        recipe.record(tmp, made_from)
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
