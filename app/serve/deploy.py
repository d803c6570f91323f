"""Puts this repository on a Hugging Face Space for one preset: the plan (which files, which front matter, which
variables) is computed here, offline, and `--dry-run` prints it; without it, huggingface_hub creates the Space if
needed and uploads the plan in one commit. The Hub stores every large or binary file through LFS/Xet on its own
(a plain `git push` of a file over 10 MB is refused), and the history does not travel: only the files of today.

    python -m app.serve.cli deploy --space OWNER/NAME [--preset NAME] [--hardware l4x1] [--dry-run]
"""
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceHardware

from ..core import paths
from . import presets
from .engine import InputError

LARGE_BYTES = 10 * 1024 * 1024  # the Hub refuses plain git blobs above this: LFS/Xet
SAMPLE_BYTES = 512  # what the Hub reads of each file to tell text from binary (huggingface_hub's upload sample)
# What a Space never needs: the test suite, the operator's scripts, CI and developer settings. Caches and virtual
# environments are never tracked by git, so they cannot be in the plan at all.
LEFT_OUT = ("tests/", "tools/", ".ci/", "pytest.ini", ".gitignore", ".gitattributes")
EMBEDDED_ONLY = ("models/", "assets/corpora/")  # the embedded family's weights and the text its kNN-LMs search
# Files of a hub base that the loader reads, where the repository also holds weights of other frameworks
PRELOAD_FILES = {"openai-community/gpt2": "config.json,generation_config.json,model.safetensors,tokenizer.json,"
                                          "vocab.json,merges.txt,tokenizer_config.json"}
HARDWARE = [h.value for h in SpaceHardware]
HUB_HARDWARE = "l4x1"  # a hub family's models want a GPU; the embedded family runs on the free CPU


@dataclass
class Upload:
    path: str  # in the repository and on the Space
    size: int
    large: bool  # stored through LFS/Xet: over 10 MB, or binary by the Hub's sample


@dataclass
class Plan:
    space: str
    presets: list
    files: list  # Upload, README.md last (its front matter rewritten)
    readme: str
    variables: dict
    secrets: list  # names; values come from this process's environment, never printed
    hardware: str | None  # requested now (paid hardware costs money: only when asked for)
    notes: list = field(default_factory=list)


def git_files(root: Path, *options: str) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", *options], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise InputError(f"deploy uploads the files git tracks, and {root} is not a git checkout") from None
    return sorted(name for name in out.decode().split("\0") if name and (root / name).is_file())


def is_large(path: Path) -> bool:
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
    return path.stat().st_size > LARGE_BYTES or b"\0" in sample


def front_matter(readme: str, chosen: list) -> str:
    """README.md with its front matter set for the chosen presets: the models and datasets it shows, the hardware it
    suggests, what the Space downloads at build time (not gated files: those need HF_TOKEN at start-up)."""
    card = SpaceCard(readme)
    data = card.data
    for key in ("models", "datasets", "preload_from_hub", "suggested_hardware", "suggested_storage"):
        data.pop(key, None)
    hub = [p for p in chosen if p.name not in presets.LOCAL]
    if hub:
        base_ids = [next(iter(p.bases.values())) for p in hub]
        decoders = [m.decoder for p in hub for m in p.memories.values()]
        corpora = [m.corpus.repo for p in hub for m in p.memories.values() if isinstance(m.corpus, presets.HubText)]
        data.models = list(dict.fromkeys(base_ids + decoders))
        if corpora:
            data.datasets = list(dict.fromkeys(corpora))
            data.suggested_storage = "small"  # the live kNN-LM's datastore is worth keeping across restarts
        data.suggested_hardware = HUB_HARDWARE
        open_bases = [base for base, p in zip(base_ids, hub) if not p.gated]
        data.preload_from_hub = [f"{repo} {PRELOAD_FILES[repo]}" if repo in PRELOAD_FILES else repo
                                 for repo in dict.fromkeys(open_bases + decoders)]
    return str(card)


def plan(space: str, preset_names: list, hardware: str | None = None, cache: str | None = None,
         variables: dict | None = None, secrets: list | None = None, root: Path = paths.ROOT) -> Plan:
    if space.count("/") != 1 or not all(space.split("/")):
        raise InputError(f"--space {space!r}: give OWNER/NAME, e.g. alice/memory-decoder")
    if hardware and hardware not in HARDWARE:
        raise InputError(f"--hardware {hardware!r}: choose one of {', '.join(HARDWARE)}")
    try:
        chosen = [presets.named(name) for name in preset_names]
    except KeyError as error:
        raise InputError(error.args[0]) from None
    local = any(p.name in presets.LOCAL for p in chosen)  # committed models and corpora go with them
    left_out = LEFT_OUT + (() if local else EMBEDDED_ONLY)
    names = [n for n in git_files(root) if n != "README.md" and not n.startswith(left_out)]
    untracked = [n for n in git_files(root, "--others", "--exclude-standard") if not n.startswith(left_out)]
    files = [Upload(n, (root / n).stat().st_size, is_large(root / n)) for n in names]
    readme = front_matter((root / "README.md").read_text(), chosen)
    files.append(Upload("README.md", len(readme.encode()), False))

    # a Space is open to anyone: presets only, no server paths; its proxy forwards each visitor's address, which the
    # limits per address read (app.serve.clients)
    settings = {"MEMDEC_PUBLIC": "1", "MEMDEC_TRUSTED_PROXIES": "1"}
    if len(chosen) == 1:
        settings["MEMDEC_PRESET"] = chosen[0].name
    else:
        settings["MEMDEC_PRESETS"] = ",".join(p.name for p in chosen)
    if any(p.name != "embedded" for p in chosen):
        settings["MEMDEC_PRELOAD"] = "1"  # download the models and build the stores before the first visitor
    if cache:
        settings["MEMDEC_CACHE"] = cache
    if hardware and hardware.startswith("t4"):
        settings["MEMDEC_DTYPE"] = "fp16"  # a T4 has no fast bf16
    settings.update(variables or {})
    wanted_secrets = list(dict.fromkeys(secrets or []))
    notes = []
    if untracked:
        notes.append(f"not uploaded, as git does not track them yet (commit them to include them): "
                     f"{', '.join(untracked)}")
    if any(p.gated for p in chosen) and "HF_TOKEN" not in wanted_secrets:
        notes.append("the bases are gated: add --secret HF_TOKEN (a read token of an account that accepted the "
                     "licence, taken from this shell's HF_TOKEN) or set it in the Space's settings")
    return Plan(space, [p.name for p in chosen], files, readme, settings, wanted_secrets, hardware, notes)


def describe(p: Plan) -> str:
    """What deploy would do, exactly: every file with its size and how it is stored, the settings and the card."""
    large = [f for f in p.files if f.large]
    lines = [f"Space {p.space} (Gradio SDK), presets: {', '.join(p.presets)}",
             f"hardware: {p.hardware or 'as it is (a new Space starts on cpu-basic); the card suggests it'}",
             f"{len(p.files)} files, {sum(f.size for f in p.files) / 1e6:.1f} MB; {len(large)} stored as large files "
             f"(LFS/Xet): over {LARGE_BYTES // 2**20} MB or binary",
             "files on the Space that are not listed here are deleted (its .gitattributes stays)"]
    lines += [f"  {'large  ' if f.large else 'regular'} {f.size:>11,}  {f.path}" for f in p.files]
    lines += ["variables:"] + [f"  {k}={v}" for k, v in p.variables.items()]
    lines += ["secrets (from this shell's environment):"] + [f"  {name}" for name in p.secrets or ["(none)"]]
    lines += [f"note: {n}" for n in p.notes]
    lines += ["README.md front matter:", p.readme.split("\n---", 1)[0] + "\n---"]
    return "\n".join(lines)


def push(p: Plan, root: Path = paths.ROOT, api=None) -> str:
    """Creates the Space if needed and makes it hold exactly the plan, in one commit; returns its address."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    missing = [name for name in p.secrets if not os.environ.get(name)]
    if missing:
        raise InputError(f"--secret {', '.join(missing)}: set it in this shell's environment first")
    api = api or HfApi()
    url = api.create_repo(p.space, repo_type="space", space_sdk="gradio", exist_ok=True)
    if p.hardware:
        api.request_space_hardware(p.space, p.hardware)
    for key, value in p.variables.items():
        api.add_space_variable(p.space, key, value)
    stale = set(api.get_space_variables(p.space)) - set(p.variables)
    for key in sorted(k for k in stale if k.startswith("MEMDEC_")):  # a variable of an earlier deploy would win
        api.delete_space_variable(p.space, key)
    for name in p.secrets:
        api.add_space_secret(p.space, name, os.environ[name])
    planned = {f.path for f in p.files}
    operations = [CommitOperationAdd(f.path, str(root / f.path)) for f in p.files if f.path != "README.md"]
    operations.append(CommitOperationAdd("README.md", p.readme.encode()))
    operations += [CommitOperationDelete(path) for path in api.list_repo_files(p.space, repo_type="space")
                   if path not in planned and path != ".gitattributes"]
    api.create_commit(p.space, operations, repo_type="space",
                      commit_message=f"Deploy Memory Decoder Explorer: {', '.join(p.presets)}")
    return str(url)
