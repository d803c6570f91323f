"""Memories that visitors bring (the "Your memory" tab, its API and `cli memory`): a text uploaded or pasted (read and
split by app.serve.uploads); a live kNN-LM over it for a chosen base, served at once; and a Memory Decoder distilled
from it by a separate process (app.serve.distillations). This module keeps the registry: who owns what, the quotas
(per visitor and per client address, so that one address cannot fill the disk from many sessions), one build at a time
per address, and the sweeping of what nobody uses, on a timer.

Each memory is one folder under the cache, written under a temporary name and renamed into place, so it exists whole
or not at all. An upload belongs to the browser that made it (a token the page keeps there; an API client's session
when it has none): it is listed to that owner only (unless the server shares memories) and deleted after a day unused
(an API session's after an hour unused, since nobody can reach it once the session has gone, and a page session's as
soon as it ends). Memories made on the command line belong to the operator and are served
to everyone. It is one memory under one name: its kNN-LM from the start, its Memory Decoder too once distilled; a zip
of its decoder, card and text (export) restores it on another visit or server (restore).
"""
import atexit
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
import weakref
import zipfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ..core import datastore, paths
from ..core.cards import read_card
from ..core.documents import read_documents, write_documents
from ..core.files import read_json, write_json
from . import contract, shown_paths
from .distillations import Jobs
from .engine import Engine, InputError, Memory, key_width, store_under
from .uploads import check_name, read_pasted, read_upload, split, token_counts

# What one visitor may keep: a 100k-token memory takes about 190 MB, the largest upload (1 MB of text, about 270k
# SmolLM2 tokens) about 1.07 GiB once distilled
SESSION_MEMORIES, SESSION_BYTES = 3, 5 * 2**28
ADDRESS_MEMORIES, ADDRESS_BYTES = 6, 2 * 2**30  # what all the visitors of one client address may keep together
TOTAL_BYTES = 8 * 2**30  # all uploads together
UNUSED_TTL_S = 24 * 3600  # an upload nobody has touched for this long is deleted
SESSION_TTL_S = 3600  # the same for an upload of a client without a browser's token (an API session)
SWEEP_EVERY_S = 300
OPERATOR = "operator"  # the owner of memories made with `python -m app.serve.cli memory build`
LEFTOVERS = (".tmp", ".deleting")  # folders of a write or a deletion under way (or cut off)
# Distillation steps of 4096 tokens: 3 per 1000 tokens of text, about 12 passes over it (the pipeline makes 9 over its
# ~136k-token domains; on a 100k-token upload 12 passes gave validation perplexity 115 where 9 gave 133).
STEPS_PER_TOKEN, MIN_STEPS, MAX_STEPS = 3 / 1000, 30, 900
# Seconds, measured on the 2-core CPU with the embedded family, 90k tokens to train on, while other work held about
# one core: a fixed part (process start, loading, the temperature and alpha on validation: 15 s), the kNN targets
# (exact search, tokens squared times key width: 42 s) and the steps (per step and decoder parameter: 0.83 s a step).
# Other families scale by the same rule, which is rougher for them.
START_S, SEARCH_S_PER_FLOP, STEP_S_PER_PARAMETER = 15.0, 2.0e-11, 5.6e-7
# A memory's .zip (export, restore): what it says of itself, its text, and once distilled its decoder folder and the
# job's status; nothing else is read from a zip, and at most BUNDLE_BYTES unpacked (SmolLM2's decoder is 19 MB)
BUNDLE_BYTES = 64 * 2**20
DECODER_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json", "memdec.json", "recipe.json"}
TARGET_BYTES_PER_TOKEN = 400  # kNN targets on disk (measured: 360 on 90k tokens, dozens of next tokens per position)

log = logging.getLogger(__name__)


@dataclass
class UserMemory:
    """What memory.json holds: the memory's identity, its base and the decoder's starting point, its sizes."""
    id: str
    name: str
    owner: str
    base: str  # the engine's name for the base whose keys the store holds
    base_folder: str
    init_folder: str  # the family's smallest base, where the decoder starts
    family: str | None
    documents: dict  # split -> count
    tokens: dict  # split -> count
    key_params: int
    key_width: int
    init_params: int
    train: str = "train.txt.gz"
    validation: str = "validation.txt.gz"
    store: str = ""  # the base's store, relative to the folder
    address: str = ""  # the client address it came from, hashed as owners are ("": the operator's)
    lasting: bool = True  # kept a day unused (a browser's token, the operator), else SESSION_TTL_S

    @property
    def ttl_s(self) -> float:
        return UNUSED_TTL_S if self.lasting else SESSION_TTL_S

    @property
    def folder(self) -> Path:
        return root() / self.id


def root() -> Path:
    return paths.CACHE / "memories"


@dataclass(frozen=True)
class Origin:
    """Where an upload comes from: the client's address (hashed as owners are) and whether its maker's memories last
    (a browser's token) or go with their session (an API client's). The operator's (the command line) is Origin()."""
    address: str = ""
    lasting: bool = True


def owner(token: str) -> str:
    """A visitor (the token their browser keeps, or a session id) as a name that can be written to disk; the token
    itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


# --- sizes and times ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def parameter_count(name_or_path: str) -> int:
    """From the model's config alone (its layers built on the meta device): no weights are read or downloaded."""
    with torch.device("meta"):
        return sum(p.numel()
                   for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(name_or_path)).parameters())


def smallest_base(engine: Engine, family: str | None, chosen: str) -> str:
    """The family's smallest model (of those whose config is at hand): the decoder starts there, as in the paper.
    Its bases first, then its served decoders: SmolLM2's smallest base is 135M parameters, its decoders 8M."""
    def of_family(names):
        return [n for n in names if family is None or engine.family.get(n) == family]

    folders = [engine.bases[n] for n in of_family(engine.bases)]
    folders += [engine.memories[n].decoder for n in of_family(engine.memories)]
    sizes = {}
    for folder in folders:
        try:
            sizes.setdefault(folder, parameter_count(folder))
        except (OSError, ValueError):  # a listed hub model never downloaded here
            continue
    return min(sizes, key=sizes.get) if sizes else chosen


def read_bundle(path) -> dict:
    """{name: bytes} of a memory's .zip, or an InputError: not a zip, too large unpacked, a file it should not hold,
    or one it lacks."""
    wanted = {"memory.json", "train.txt.gz", "validation.txt.gz"}
    allowed = wanted | {"status.json"} | {f"decoder/{name}" for name in DECODER_FILES}
    try:
        with zipfile.ZipFile(path) as bundle:
            entries = bundle.infolist()
            if sum(e.file_size for e in entries) > BUNDLE_BYTES:
                raise InputError(f"this .zip holds more than {BUNDLE_BYTES // 2**20} MB unpacked: not a memory this "
                                 "app saved")
            strange = sorted(e.filename for e in entries if e.filename not in allowed)
            if strange or not wanted <= {e.filename for e in entries}:
                raise InputError(f"this .zip is not a memory this app saved (Download this memory makes one): "
                                 f"{'it holds ' + ', '.join(strange[:3]) if strange else 'it lacks its text'}")
            files = {e.filename: bundle.read(e) for e in entries}
    except (zipfile.BadZipFile, OSError):
        raise InputError("this file is not a readable .zip") from None
    if "status.json" in files and "decoder/memdec.json" not in files:
        raise InputError("this .zip has a distillation's status but no decoder card (memdec.json)")
    return files


def steps_for(tokens: int) -> int:
    return max(MIN_STEPS, min(MAX_STEPS, round(STEPS_PER_TOKEN * tokens)))


def estimate_s(memory: UserMemory, steps: int) -> float:
    """How long distillation takes here, from the token count and the models' sizes (see START_S)."""
    return (START_S + SEARCH_S_PER_FLOP * memory.tokens["train"] ** 2 * memory.key_width
            + STEP_S_PER_PARAMETER * steps * memory.init_params)


def disk_bytes(tokens: int, width: int, init_params: int) -> int:
    """What a memory takes on disk once distilled: its store (keys, their index, values), its kNN targets, the training
    checkpoint (fp32 weights and two Adam moments) and the fp16 decoder."""
    return tokens * (datastore.bytes_per_entry(width) + TARGET_BYTES_PER_TOKEN) + init_params * (3 * 4 + 2)


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


# --- the memories of one engine -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Own:
    """A memory served to one visitor only."""
    owner: str
    memory: Memory
    family: str | None
    folder: Path


class Memories:
    """The memories on disk that an engine serves, and their distillation jobs (one at a time: each takes the CPU).
    Those served to everyone are added to the engine; a visitor's own are kept here (private), where the engine finds
    them by name (find) and nothing lists them to anyone else."""

    def __init__(self, engine: Engine):
        self.engine, self.lock, self.jobs, self.private = engine, threading.RLock(), Jobs(), {}
        self.building = set()  # the addresses with a build under way: one each, so none holds every build slot
        engine.visitors = self
        self.sweep()
        self.visible(OPERATOR)  # serves what every visitor sees: the operator's memories (everyone's when shared)
        atexit.register(self.jobs.stop_all)
        threading.Thread(target=self._sweep_every, name="memory-sweeps", daemon=True).start()

    def find(self, name: str, owner: str | None = None) -> Memory | None:
        """The private memory of this name when it is the owner's (owner None: whoever's, for the engine's own
        lookups of a name a request has already been allowed)."""
        own = self.private.get(name)
        if own is None or owner not in (None, own.owner):
            return None
        if owner is not None:  # its owner uses it: not swept
            with contextlib.suppress(OSError):
                os.utime(own.folder / "memory.json")
        return own.memory

    def choices(self, who: str | None, family: str | None = None) -> list[tuple[str, str]]:
        """(label, name) of the memories this visitor may pick, of one family (all when None): those served to
        everyone, then their own."""
        own = [(o.memory.label, name) for name, o in list(self.private.items())
               if o.owner == who and (family is None or o.family == family)]
        return self.engine.memory_choices(family) + own

    def all(self) -> list[UserMemory]:
        found = [read_json(f / "memory.json") for f in sorted(root().glob("*")) if not f.name.endswith(LEFTOVERS)]
        return [UserMemory(**data) for data in found if data]

    def public(self, memory: UserMemory) -> bool:
        return memory.owner == OPERATOR or self.engine.share_memories

    def visible(self, who: str) -> list[UserMemory]:
        """The memories this owner may use that this engine can serve (same base model), registered with it."""
        out = [m for m in self.all()
               if (self.public(m) or m.owner == who) and self.engine.bases.get(m.base) == m.base_folder]
        for memory in out:
            self.register(memory)
        return out

    def get(self, who: str, memory_id: str) -> UserMemory:
        found = [m for m in self.visible(who) if m.id == memory_id]
        if not found:
            raise InputError(f"no memory {memory_id!r} of yours here: build one first (it may have been deleted after "
                             "a day unused, or when its page was closed)")
        os.utime(found[0].folder / "memory.json")  # in use: not swept
        return found[0]

    def owned(self, who: str, memory_id: str) -> UserMemory:
        """A memory this owner may change (distil, cancel, delete): one they made, not one shared with them."""
        memory = self.get(who, memory_id)
        if memory.owner != who:
            raise InputError(f"{memory.name} is shared with you: only whoever made it can distil, cancel or delete it")
        return memory

    def register(self, memory: UserMemory):
        """Serves the memory under its id: its kNN-LM, with the base standing in for a decoder until one exists, and
        once distilled its Memory Decoder too, with the defaults tuned on validation."""
        engine, decoder = self.engine, memory.folder / "decoder"
        tuned = read_card(decoder) if self.job(memory)["phase"] == "done" else None
        served = self.find(memory.id) or engine.memories.get(memory.id)
        if served is not None and (not tuned or served.decoder is not None):
            return
        mine = "" if self.public(memory) else "your "
        family, stores = engine.family.get(memory.base), memory.folder / "stores"
        corpus, size = memory.folder / memory.train, f"{memory.tokens['train']:,} tokens"
        if tuned:
            # the card's weights, k and T, tuned on validation for the memory's base
            served = Memory.from_folder(decoder, corpus, f"{mine}text {memory.name} ({size}), searched by its kNN-LM "
                                        "and distilled into its Memory Decoder", store_root=stores,
                                        label=f"{memory.name}: kNN-LM and Memory Decoder ({mine}upload)")
        else:
            served = Memory(None, corpus, f"{mine}text {memory.name} ({size}), searched by its kNN-LM; no Memory "
                            "Decoder yet (distil one in the Your memory tab): the Memory Decoder views show the base",
                            label=f"{memory.name}: kNN-LM only ({mine}upload)", store_root=stores)
        self.serve(memory, memory.id, served, family)

    def serve(self, made: UserMemory, name: str, memory: Memory, family: str | None):
        """To everyone when the memory is public, else to its maker alone."""
        with self.lock:
            if self.public(made):
                self.engine.add_memory(name, memory, family)
            else:
                self.private[name] = Own(made.owner, memory, family, made.folder)

    def unserve(self, name: str):
        with self.lock:
            own = self.private.pop(name, None)
            memory = own.memory if own else self.engine.memories.get(name)
            if memory is not None:
                self.engine.drop_memory(name, memory)

    def build(self, who: str, name: str | None, base: str | None, upload=None, pasted: str | None = None,
              progress=None, origin: Origin = Origin()) -> UserMemory:
        """Reads the text, splits it, writes the memory's folder and builds the base's datastore (with progress): its
        kNN-LM is served from then on. Whatever fails leaves nothing behind."""
        with self.one_build(origin):
            return self._build(who, name, base, upload, pasted, progress, origin)

    @contextlib.contextmanager
    def one_build(self, origin: Origin):
        """One build at a time per client address: a second is refused at once, so that an address with many builds
        waits for its own and never holds the slots that others' wait for."""
        with self.lock:
            if origin.address in self.building:
                raise InputError("a memory from your address is being built already; one is built at a time per "
                                 "address, so that everyone gets a turn: try again when it has finished")
            if origin.address:
                self.building.add(origin.address)
        try:
            yield
        finally:
            with self.lock:
                self.building.discard(origin.address)

    def _build(self, who, name, base, upload, pasted, progress, origin: Origin) -> UserMemory:
        pasted = contract.text(pasted, "the pasted text", limit=None, empty=None).strip()
        if bool(upload) == bool(pasted):
            raise InputError("upload a file or paste some text (one of the two)")
        default, documents = read_upload(upload) if upload else ("pasted", read_pasted(pasted))
        name = contract.text(name, "the name", limit=None, empty=None).strip()
        name, base = check_name(name or default), self.engine.base_name(base)
        if name in self.engine.memories or name in self.engine.bases or any(m.name == name for m in self.visible(who)):
            raise InputError(f"there is a memory named {name!r} already: choose another name, or delete that one")
        parts, tokens = split(documents, self.engine.tokenizer(self.engine.bases[base]))
        return self.make(who, name, base, parts, tokens, progress, origin=origin)

    def make(self, who: str, name: str, base: str, parts: dict, tokens: dict, progress=None,
             decoder: dict | None = None, origin: Origin = Origin()) -> UserMemory:
        """Writes the memory (its text split, and a decoder restored with its job's status: {path in the folder:
        bytes}) and builds the base's datastore (with progress): its kNN-LM is served from then on. Whatever fails
        leaves nothing behind."""
        folder_name, family = self.engine.bases[base], self.engine.family.get(base)
        init = smallest_base(self.engine, family, folder_name)
        memory = UserMemory(name if who == OPERATOR else f"{name}-{secrets.token_hex(6)}", name, who, base, folder_name,
                            init, family, {k: len(v) for k, v in parts.items()}, tokens, parameter_count(folder_name),
                            key_width(self.engine.model(folder_name)), parameter_count(init),
                            store=str(store_under(Path("stores"), folder_name)), address=origin.address,
                            lasting=origin.lasting)
        with self.lock:
            self.check_quota(who, origin, disk_bytes(tokens["train"], memory.key_width, memory.init_params))
            self.write(memory, parts, decoder or {})
        try:
            self.register(memory)
            self.engine.datastore(base, memory.id, progress, here=True)  # the visitor waits for their own
        except BaseException:
            self.delete(memory)
            raise
        return memory

    def write(self, memory: UserMemory, parts: dict, files: dict):
        tmp = memory.folder.with_name(memory.id + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for split_name, docs in parts.items():
            write_documents(tmp / getattr(memory, split_name), docs)
        for relative, data in files.items():
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp / relative).write_bytes(data)
        write_json(tmp / "memory.json", asdict(memory))
        tmp.rename(memory.folder)

    def check_quota(self, who: str, origin: Origin, need: int):
        """A visitor keeps at most SESSION_MEMORIES memories and SESSION_BYTES, the visitors of one address together
        ADDRESS_MEMORIES and ADDRESS_BYTES; all uploads together TOTAL_BYTES."""
        if who != OPERATOR:
            every = self.all()
            for mine, most, most_bytes, whose in (
                    ([m for m in every if m.owner == who], SESSION_MEMORIES, SESSION_BYTES, "one visitor"),
                    ([m for m in every if origin.address and m.address == origin.address], ADDRESS_MEMORIES,
                     ADDRESS_BYTES, "the visitors of one address together")):
                used = sum(folder_bytes(m.folder) for m in mine)
                if len(mine) >= most:
                    raise InputError(f"{len(mine)} memories are kept for you, the most {whose} may keep: delete one "
                                     "first (unused ones are deleted after a while)")
                if used + need > most_bytes:
                    raise InputError(f"this memory would take about {need / 2**20:,.0f} MB on disk and yours take "
                                     f"{used / 2**20:,.0f} MB: over the {most_bytes / 2**20:,.0f} MB {whose} may use; "
                                     "delete one or upload less text")
        total = folder_bytes(root())
        if total + need > TOTAL_BYTES:
            raise InputError(f"the space for uploaded memories is full ({total / 2**30:.1f} of {TOTAL_BYTES / 2**30:g} "
                             "GB): try again later")
        root().mkdir(parents=True, exist_ok=True)
        if need > shutil.disk_usage(root()).free // 2:
            raise InputError(f"this memory would take about {need / 2**20:,.0f} MB and the disk is nearly full")

    # --- distillation (a separate process, app.serve.distillations) --------------------------------------------------
    def distil(self, who: str, memory_id: str, steps: int | None = None, foreground: bool = False) -> UserMemory:
        """Starts (or resumes: the trainer continues from its checkpoint) the distillation; in the foreground, waits
        for it with its output on this terminal (the command line)."""
        memory = self.owned(who, memory_id)
        steps = (steps_for(memory.tokens["train"]) if steps is None
                 else contract.check("steps", steps, int, (1, MAX_STEPS)))
        with self.lock:
            if self.job(memory)["phase"] == "done":
                raise InputError(f"{memory.name} has its Memory Decoder already")
            if any(self.job(m)["running"] for m in self.all()):
                raise InputError("a distillation is running on this server already; one runs at a time, since each "
                                 "takes the whole CPU: try again when it ends")
            if not foreground:
                self.jobs.start(memory.folder, steps)
                return memory
        if self.jobs.start(memory.folder, steps, foreground=True):
            raise InputError(f"distillation stopped: {self.job(memory).get('error', 'see the output above')}")
        return memory

    def job(self, memory: UserMemory) -> dict:
        return self.jobs.status(memory.folder)

    def cancel(self, who: str, memory_id: str) -> UserMemory:
        """Stops the job at once (SIGTERM; its last checkpoint stays, so distilling again resumes from there)."""
        memory = self.owned(who, memory_id)
        if not self.jobs.stop(memory.folder):
            raise InputError(f"no distillation is running for {memory.name}")
        return memory

    def curve(self, memory: UserMemory) -> pd.DataFrame | None:
        """The trainer's loss log (train KL and CE every step, validation at each checkpoint), None before training."""
        log = self.job(memory).get("log")
        path = memory.folder / log if log else None
        return pd.read_csv(path) if path and path.exists() else None

    # --- keeping a memory: a .zip of it, and back ---------------------------------------------------------------------
    def export(self, who: str, memory_id: str, folder: Path) -> Path:
        """FOLDER/NAME.zip: memory.json (its name, base and sizes), its text (train and validation) and, once
        distilled, its decoder (weights, tokenizer, card memdec.json) and the job's status."""
        memory = self.get(who, memory_id)
        path = Path(folder) / f"{memory.name}.zip"
        about = {"name": memory.name, "base": memory.base, "documents": memory.documents, "tokens": memory.tokens}
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr("memory.json", json.dumps(about, indent=1))
            for split_name in ("train", "validation"):
                bundle.write(memory.folder / getattr(memory, split_name), f"{split_name}.txt.gz")
            if self.job(memory)["phase"] == "done":
                bundle.write(memory.folder / "making" / "status.json", "status.json")
                for file in sorted((memory.folder / "decoder").iterdir()):
                    if file.name in DECODER_FILES:
                        bundle.write(file, f"decoder/{file.name}")
        return path

    def restore(self, who: str, path, name: str | None = None, progress=None, origin: Origin = Origin()) -> UserMemory:
        """A memory from a .zip that export wrote: its text split as it was, its decoder (when it has one) served at
        once with the weights tuned for it; the datastore is built again here. Under its own name unless one is
        given."""
        with self.one_build(origin):
            return self._restore(who, path, name, progress, origin)

    def _restore(self, who: str, path, name, progress, origin: Origin) -> UserMemory:
        files = read_bundle(path)
        about = json.loads(files.pop("memory.json"))
        base = about.get("base")
        if base not in self.engine.bases:
            raise InputError(f"this memory was made with base {base!r}, which this server does not serve (it serves "
                             f"{', '.join(self.engine.bases)})")
        name = check_name(contract.text(name, "the name", limit=None, empty=None).strip() or about.get("name"))
        if name in self.engine.memories or name in self.engine.bases or any(m.name == name for m in self.visible(who)):
            raise InputError(f"there is a memory named {name!r} already: give the restored one another name, or "
                             "delete that one")
        with tempfile.TemporaryDirectory() as folder:
            parts = {}
            for split_name in ("train", "validation"):
                text = Path(folder) / f"{split_name}.txt.gz"  # read_documents reads a .gz by its suffix
                text.write_bytes(files.pop(text.name))
                parts[split_name] = read_documents(text)
        tokens = token_counts(parts, self.engine.tokenizer(self.engine.bases[base]))
        decoder = {}
        if "status.json" in files:
            card = json.loads(files["decoder/memdec.json"])
            if base not in card.get("knn_by_base", {}):
                raise InputError("the decoder's card (memdec.json) has no weights tuned for its base: not a memory "
                                 "this app saved")
            status = {k: v for k, v in json.loads(files.pop("status.json")).items() if k not in ("pid", "log")}
            decoder = {"making/status.json": json.dumps({**status, "phase": "done"}).encode(), **files}
        return self.make(who, name, base, parts, tokens, progress, decoder, origin)

    # --- clean-up -----------------------------------------------------------------------------------------------------
    def delete(self, memory: UserMemory):
        """Stops its job, stops serving it and removes its folder (renamed first, so nothing half-deleted is read)."""
        self.jobs.stop(memory.folder)
        self.unserve(memory.id)
        if memory.folder.exists():
            gone = memory.folder.with_name(memory.id + ".deleting")
            memory.folder.rename(gone)
            shutil.rmtree(gone)

    def remove(self, who: str, memory_id: str):
        self.delete(self.owned(who, memory_id))

    def forget(self, who: str):
        """A page session has ended: nobody can reach its private uploads any more."""
        for memory in self.all():
            if memory.owner == who and not self.public(memory):
                self.delete(memory)

    def sweep(self):
        """Deletes uploads unused for their ttl_s, and folders that a cut-off write or deletion left behind."""
        now = time.time()
        for folder in root().glob("*"):
            if folder.name.endswith(LEFTOVERS) and now - folder.stat().st_mtime > 3600:
                shutil.rmtree(folder, ignore_errors=True)
        for memory in self.all():
            try:
                unused = now - (memory.folder / "memory.json").stat().st_mtime
            except FileNotFoundError:  # deleted meanwhile
                continue
            if memory.owner != OPERATOR and unused > memory.ttl_s and not self.job(memory)["running"]:
                self.delete(memory)

    def _sweep_every(self):
        while True:
            time.sleep(SWEEP_EVERY_S)
            try:  # not under the registry's lock: deleting gigabytes would hold every visitor's build and quota check
                self.sweep()
            except Exception:  # the next sweep tries again; serving goes on
                log.exception("sweeping the memories failed")

    # --- what the page and the API show -------------------------------------------------------------------------------
    def describe(self, memory: UserMemory) -> dict:
        job, steps = self.job(memory), steps_for(memory.tokens["train"])
        return {"id": memory.id, "name": memory.name, "base": memory.base, "documents": memory.documents,
                "tokens": memory.tokens, "knn_memory": memory.id,  # one memory: its name serves both, once distilled
                "decoder_memory": memory.id if job["phase"] == "done" else None,
                "decoder_starts_from": shown_paths.named(self.engine, memory.init_folder), "automatic_steps": steps,
                "estimated_distillation_s": round(estimate_s(memory, steps)), "distillation": shown_paths.scrubbed(job)}


_registries = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def of(engine: Engine) -> Memories:
    """The one registry of an engine (the page, its API and its handlers share it)."""
    with _registries_lock:
        if engine not in _registries:
            _registries[engine] = Memories(engine)
        return _registries[engine]
