"""Memories that visitors bring (the "Your memory" tab, its API and `cli memory`): a text uploaded or pasted, split
into train and validation by document; a live kNN-LM over it for a chosen base, served at once; and a Memory Decoder
distilled from it by a separate process, `python -m app.make.distil FOLDER` (the serving half never imports the making
half), watched through the files that process writes.

Each memory is one folder under the cache, written under a temporary name and renamed into place, so it exists whole
or not at all. An upload belongs to the page session that made it: it is listed to that session only (unless the
server shares memories) and deleted when the session ends or after a day unused. Memories made on the command line
belong to the operator and are served to everyone.
"""
import atexit
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import psutil
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ..core import datastore, paths
from ..core.documents import write_documents
from ..core.files import read_json, write_json
from ..core.settings import Settings
from ..core.vocab import document_start_ids
from . import contract
from .engine import Engine, InputError, Memory, key_width, store_under

MAX_BYTES = 1_000_000  # of text, unpacked: about 250k tokens here, a distillation of about 16 minutes on 2 CPU cores
KINDS = (".txt.gz", ".txt", ".jsonl")
SECTION_CHARS = 2_000  # longer documents are cut, so that one long text still splits into train and validation
VALIDATION_EVERY = 10  # every tenth document is held out for validation
SESSION_MEMORIES, SESSION_BYTES = 3, 2**30  # what one visitor may keep: a 100k-token memory takes about 190 MB
TOTAL_BYTES = 8 * 2**30  # all uploads together
UNUSED_TTL_S = 24 * 3600  # an upload nobody has touched for this long is deleted
OPERATOR = "operator"  # the owner of memories made with `python -m app.serve.cli memory build`
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
LEFTOVERS = (".tmp", ".deleting")  # folders of a write or a deletion under way (or cut off)
DECODER_SUFFIX = "+memdec"
# Distillation steps of 4096 tokens: 3 per 1000 tokens of text, about 12 passes over it (the pipeline makes 9 over its
# ~136k-token domains; on a 100k-token upload 12 passes gave validation perplexity 115 where 9 gave 133).
STEPS_PER_TOKEN, MIN_STEPS, MAX_STEPS = 3 / 1000, 30, 900
# Seconds, measured on the 2-core CPU with the embedded family, 90k tokens to train on, while other work held about
# one core: a fixed part (process start, loading, the temperature and alpha on validation: 15 s), the kNN targets
# (exact search, tokens squared times key width: 42 s) and the steps (per step and decoder parameter: 0.83 s a step).
# Other families scale by the same rule, which is rougher for them.
START_S, SEARCH_S_PER_FLOP, STEP_S_PER_PARAMETER = 15.0, 2.0e-11, 5.6e-7
TARGET_BYTES_PER_TOKEN = 400  # kNN targets on disk (measured: 360 on 90k tokens, dozens of next tokens per position)
FINISHED = ("done", "failed", "cancelled", "not started")


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

    @property
    def folder(self) -> Path:
        return root() / self.id

    @property
    def decoder_name(self) -> str:
        return self.id + DECODER_SUFFIX


def root() -> Path:
    return paths.CACHE / "memories"


def owner(session_hash: str) -> str:
    """A page session as a name that can be written to disk; the session id itself is never stored."""
    return hashlib.sha256(session_hash.encode()).hexdigest()[:16]


# --- reading what a visitor gives ----------------------------------------------------------------------------------
def limits_text() -> str:
    return (f"`.txt` (documents separated by a blank line), `.txt.gz`, or `.jsonl` (one document per line, in a `text` "
            f"field), at most {MAX_BYTES / 1e6:g} MB of UTF-8 text; or paste it. One document in {VALIDATION_EVERY} is "
            f"held out for validation; documents longer than {SECTION_CHARS:,} characters are cut into sections.")


def read_upload(path) -> tuple[str, list[str]]:
    """(a name from the file's, its documents), or an InputError that says what is wrong with the file."""
    filename = Path(path).name
    kind = next((k for k in KINDS if filename.lower().endswith(k)), None)
    if kind is None:
        raise InputError(f"{filename}: only .txt, .txt.gz and .jsonl files are read")
    if kind == ".txt.gz":
        try:
            with gzip.open(path) as f:
                data = f.read(MAX_BYTES + 1)
        except (OSError, EOFError, zlib.error) as error:
            raise InputError(f"{filename} is not a readable gzip file ({error})") from None
    elif os.path.getsize(path) > MAX_BYTES:
        raise InputError(f"{filename} is {os.path.getsize(path) / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:g} MB limit")
    else:
        data = Path(path).read_bytes()
    text = decoded(filename, data)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", filename[: -len(kind)]).strip("-_")[:40] or "upload"
    return stem, jsonl_documents(filename, text) if kind == ".jsonl" else text_documents(text)


def read_pasted(text: str) -> list[str]:
    return text_documents(decoded("the pasted text", text.encode()))


def decoded(what: str, data: bytes) -> str:
    if not data.strip():
        raise InputError(f"{what} is empty")
    if len(data) > MAX_BYTES:
        raise InputError(f"{what} holds more than {MAX_BYTES / 1e6:g} MB of text, the limit")
    if b"\0" in data:
        raise InputError(f"{what} is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} is not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start:,}): "
                         "save it as UTF-8") from None


def text_documents(text: str) -> list[str]:
    return [d.strip() for d in re.split(r"\n\s*\n", text) if d.strip()]


def jsonl_documents(filename: str, text: str) -> list[str]:
    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{filename}, line {number}, is not JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputError(f'{filename}, line {number}, has no "text" field holding a string')
        documents += [record["text"].strip()] if record["text"].strip() else []
    return documents


def sections(document: str) -> list[str]:
    """A document cut at line or word breaks into pieces of at most SECTION_CHARS characters."""
    out = []
    while len(document) > SECTION_CHARS:
        cut = document.rfind("\n", 0, SECTION_CHARS)
        cut = cut if cut > SECTION_CHARS // 2 else document.rfind(" ", 0, SECTION_CHARS)
        cut = cut if cut > 0 else SECTION_CHARS
        out.append(document[:cut].strip())
        document = document[cut:].strip()
    return [s for s in out + [document] if s]


def split(documents: list[str], tokenizer) -> tuple[dict, dict]:
    """({split: documents}, {split: tokens}): every tenth section held out (the last one when there are fewer than
    ten); each split must fill at least one block of the store and of training."""
    pieces = [s for d in documents for s in sections(d)]
    held = set(range(VALIDATION_EVERY - 1, len(pieces), VALIDATION_EVERY)) or {len(pieces) - 1}
    parts = {"train": [p for i, p in enumerate(pieces) if i not in held], "validation": [pieces[i] for i in sorted(held)]}
    start = len(document_start_ids(tokenizer)) + 1  # each document's start ids and its end-of-text token
    tokens = {name: sum(start + len(e.ids) for e in tokenizer.backend_tokenizer.encode_batch(docs, add_special_tokens=False))
              for name, docs in parts.items()}
    if min(tokens.values()) <= Settings.block:
        raise InputError(f"the text is too short to split: {len(pieces)} document(s), {tokens['train']:,} tokens to train "
                         f"on and {tokens['validation']:,} held out, and each part needs more than {Settings.block} "
                         f"tokens: give at least about {Settings.block * VALIDATION_EVERY * 2:,} tokens in two or more documents")
    return parts, tokens


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise InputError(f"{name!r} is not a usable name: 1 to 40 letters, digits, '-' or '_', starting with a letter "
                         "or digit")
    return name


# --- sizes and times ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def parameter_count(name_or_path: str) -> int:
    """From the model's config alone (its layers built on the meta device): no weights are read or downloaded."""
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(name_or_path)).parameters())


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


def running(pid: int | None) -> bool:
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def send(pid: int, sig: int):
    """To the job's process group when it leads one (a job the page started: whatever it started stops too), else to
    the process alone (a job in the foreground of a command line)."""
    try:
        os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
    except ProcessLookupError:  # it has just ended
        pass


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


# --- the memories of one engine -------------------------------------------------------------------------------------
class Memories:
    """The memories on disk that an engine serves, and their distillation jobs (one at a time: each takes the CPU)."""

    def __init__(self, engine: Engine):
        self.engine, self.lock, self.jobs = engine, threading.RLock(), {}
        self.sweep()
        self.visible(OPERATOR)  # serves what every visitor sees: the operator's memories (everyone's when shared)
        atexit.register(self.stop_all)  # jobs end with the server that started them; distilling again resumes them

    def all(self) -> list[UserMemory]:
        found = [read_json(f / "memory.json") for f in sorted(root().glob("*")) if not f.name.endswith(LEFTOVERS)]
        return [UserMemory(**data) for data in found if data]

    def public(self, memory: UserMemory) -> bool:
        return memory.owner == OPERATOR or self.engine.share_memories

    def visible(self, who: str) -> list[UserMemory]:
        """The memories this owner may use that this engine can serve (same base model), registered with it."""
        out = [m for m in self.all() if (self.public(m) or m.owner == who) and self.engine.bases.get(m.base) == m.base_folder]
        for memory in out:
            self.register(memory)
        return out

    def get(self, who: str, memory_id: str) -> UserMemory:
        found = [m for m in self.visible(who) if memory_id in (m.id, m.decoder_name)]
        if not found:
            raise InputError(f"no memory {memory_id!r} of yours here: build one first (it may have been deleted after a "
                             "day unused, or when its page was closed)")
        os.utime(found[0].folder / "memory.json")  # in use: not swept
        return found[0]

    def owned(self, who: str, memory_id: str) -> UserMemory:
        """A memory this owner may change (distil, cancel, delete): one they made, not one shared with them."""
        memory = self.get(who, memory_id)
        if memory.owner != who:
            raise InputError(f"{memory.name} is shared with you: only whoever made it can distil, cancel or delete it")
        return memory

    def register(self, memory: UserMemory):
        """Serves the memory's kNN-LM (with the base standing in for a decoder until one exists) and, once distilled,
        its Memory Decoder; with the defaults tuned on validation when there are some."""
        engine, decoder = self.engine, memory.folder / "decoder"
        tuned = read_json(decoder / "memdec.json") if self.job(memory)["phase"] == "done" else None
        known = set(engine.memories) | set(engine.private)
        if memory.id in known and (not tuned or memory.decoder_name in known):
            return
        mine = "" if self.public(memory) else "your "
        options = dict(family=engine.family.get(memory.base), store_root=memory.folder / "stores",
                       owner=None if self.public(memory) else memory.owner)
        corpus, size = memory.folder / memory.train, f"{memory.tokens['train']:,} tokens"
        knn = Memory(None, corpus, f"{mine}upload {memory.name} ({size}); no decoder: the Memory Decoder views show the base")
        if tuned:
            knn = Memory(None, corpus, knn.knows, alpha=tuned["knn_by_base"][memory.base]["lambda"],
                         knn_temperature=tuned["knn_temperature"], knn_k=tuned["knn_k"])
            engine.add_memory(memory.decoder_name, Memory.from_folder(decoder, corpus, f"{mine}upload {memory.name} ({size})"),
                              label=f"{memory.name}: Memory Decoder ({mine}upload)", **options)
        engine.add_memory(memory.id, knn, label=f"{memory.name}: kNN-LM only ({mine}upload)", **options)

    def build(self, who: str, name: str | None, base: str | None, upload=None, pasted: str | None = None,
              progress=None) -> UserMemory:
        """Reads the text, splits it, writes the memory's folder and builds the base's datastore (with progress): its
        kNN-LM is served from then on. Whatever fails leaves nothing behind."""
        self.sweep()
        pasted = contract.text(pasted, "the pasted text", limit=None, empty=None).strip()
        if bool(upload) == bool(pasted):
            raise InputError("upload a file or paste some text (one of the two)")
        default, documents = read_upload(upload) if upload else ("pasted", read_pasted(pasted))
        name = contract.text(name, "the name", limit=None, empty=None).strip()
        name, base = check_name(name or default), self.engine.base_name(base)
        if name in self.engine.memories or name in self.engine.bases or any(m.name == name for m in self.visible(who)):
            raise InputError(f"there is a memory named {name!r} already: choose another name, or delete that one")
        folder_name, family = self.engine.bases[base], self.engine.family.get(base)
        parts, tokens = split(documents, self.engine.tokenizer(folder_name))
        init = smallest_base(self.engine, family, folder_name)
        memory = UserMemory(name if who == OPERATOR else f"{name}-{secrets.token_hex(6)}", name, who, base, folder_name,
                            init, family, {k: len(v) for k, v in parts.items()}, tokens, parameter_count(folder_name),
                            key_width(self.engine.model(folder_name)), parameter_count(init),
                            store=str(store_under(Path("stores"), folder_name)))
        with self.lock:
            self.check_quota(who, disk_bytes(tokens["train"], memory.key_width, memory.init_params))
            self.write(memory, parts)
        try:
            self.register(memory)
            self.engine.datastore(base, memory.id, progress, here=True)  # the visitor waits for their own
        except BaseException:
            self.delete(memory)
            raise
        return memory

    def write(self, memory: UserMemory, parts: dict):
        tmp = memory.folder.with_name(memory.id + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for split_name, docs in parts.items():
            write_documents(tmp / getattr(memory, split_name), docs)
        write_json(tmp / "memory.json", asdict(memory))
        tmp.rename(memory.folder)

    def check_quota(self, who: str, need: int):
        """A visitor keeps at most SESSION_MEMORIES memories and SESSION_BYTES; all uploads together TOTAL_BYTES."""
        if who != OPERATOR:
            mine = [m for m in self.all() if m.owner == who]
            used = sum(folder_bytes(m.folder) for m in mine)
            if len(mine) >= SESSION_MEMORIES:
                raise InputError(f"you keep {len(mine)} memories, the most one visitor may: delete one first")
            if used + need > SESSION_BYTES:
                raise InputError(f"this memory would take about {need / 2**20:,.0f} MB on disk and yours take "
                                 f"{used / 2**20:,.0f} MB: over the {SESSION_BYTES / 2**20:,.0f} MB one visitor may use; "
                                 "delete one or upload less text")
        total = folder_bytes(root())
        if total + need > TOTAL_BYTES:
            raise InputError(f"the space for uploaded memories is full ({total / 2**30:.1f} of {TOTAL_BYTES / 2**30:g} "
                             "GB): try again later")
        root().mkdir(parents=True, exist_ok=True)
        if need > shutil.disk_usage(root()).free // 2:
            raise InputError(f"this memory would take about {need / 2**20:,.0f} MB and the disk is nearly full")

    # --- distillation (a separate process) ----------------------------------------------------------------------------
    def command(self, memory: UserMemory, steps: int) -> list[str]:
        return [sys.executable, "-m", "app.make.distil", str(memory.folder), "--steps", str(steps)]

    def distil(self, who: str, memory_id: str, steps: int | None = None, foreground: bool = False) -> UserMemory:
        """Starts (or resumes: the trainer continues from its checkpoint) the distillation; in the foreground, waits
        for it with its output on this terminal (the command line)."""
        memory = self.owned(who, memory_id)
        steps = steps_for(memory.tokens["train"]) if steps is None else contract.check("steps", steps, int, (1, MAX_STEPS))
        with self.lock:
            if self.job(memory)["phase"] == "done":
                raise InputError(f"{memory.name} has its Memory Decoder already")
            busy = [m.name for m in self.all() if self.job(m)["running"]]
            if busy:
                raise InputError("a distillation is running on this server already; one runs at a time, since each "
                                 "takes the whole CPU: try again when it ends")
            making = memory.folder / "making"
            write_json(making / "status.json", {"phase": "starting", "steps": steps, "timings": {}, "started": time.time()})
            # The job shares the CPU with this server; OpenMP threads that spin while they wait make it several times
            # slower then (measured: 2.3 s a step instead of 0.65 on the embedded decoder), so they sleep instead.
            env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "MEMDEC_CACHE": str(paths.CACHE)}
            if foreground:
                finished = subprocess.run(self.command(memory, steps), cwd=paths.ROOT, env=env)
                if finished.returncode:
                    raise InputError(f"distillation stopped: {self.job(memory).get('error', 'see the output above')}")
                return memory
            with open(making / "job.log", "ab") as log:
                self.jobs[memory.id] = subprocess.Popen(self.command(memory, steps), cwd=paths.ROOT, env=env, stdout=log,
                                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                        start_new_session=True)
        return memory

    def job(self, memory: UserMemory) -> dict:
        """The distillation's status.json, with "running" (its process is alive) and "stopped" for a process that
        ended without saying so (killed)."""
        state = read_json(memory.folder / "making" / "status.json") or {"phase": "not started"}
        process = self.jobs.get(memory.id)
        alive = process.poll() is None if process else running(state.get("pid"))  # else: another server's, or the CLI's
        if not alive and state["phase"] not in FINISHED:
            state["phase"] = "stopped"
        return {**state, "running": alive and state["phase"] not in FINISHED}

    def cancel(self, who: str, memory_id: str) -> UserMemory:
        """Stops the job at once (SIGTERM; its last checkpoint stays, so distilling again resumes from there)."""
        memory = self.owned(who, memory_id)
        if not self.stop(memory):
            raise InputError(f"no distillation is running for {memory.name}")
        return memory

    def stop(self, memory: UserMemory) -> bool:
        state = self.job(memory)
        if not state["running"]:
            return False
        process = self.jobs.get(memory.id)
        pid = process.pid if process else state["pid"]
        send(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self.job(memory)["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.job(memory)["running"]:
            send(pid, signal.SIGKILL)
        return True

    def stop_all(self):
        for memory in self.all():
            if memory.id in self.jobs:
                self.stop(memory)

    def curve(self, memory: UserMemory) -> pd.DataFrame | None:
        """The trainer's loss log (train KL and CE every step, validation at each checkpoint), None before training."""
        log = self.job(memory).get("log")
        path = memory.folder / log if log else None
        return pd.read_csv(path) if path and path.exists() else None

    # --- clean-up -----------------------------------------------------------------------------------------------------
    def delete(self, memory: UserMemory):
        """Stops its job, stops serving it and removes its folder (renamed first, so nothing half-deleted is read)."""
        self.stop(memory)
        for name in (memory.id, memory.decoder_name):
            self.engine.remove_memory(name)
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
        """Deletes uploads unused for UNUSED_TTL_S, and folders that a cut-off write or deletion left behind."""
        now = time.time()
        for folder in root().glob("*"):
            if folder.name.endswith(LEFTOVERS) and now - folder.stat().st_mtime > 3600:
                shutil.rmtree(folder, ignore_errors=True)
        for memory in self.all():
            unused = now - (memory.folder / "memory.json").stat().st_mtime
            if memory.owner != OPERATOR and unused > UNUSED_TTL_S and not self.job(memory)["running"]:
                self.delete(memory)

    # --- what the page and the API show -------------------------------------------------------------------------------
    def describe(self, memory: UserMemory) -> dict:
        job, steps = self.job(memory), steps_for(memory.tokens["train"])
        return {"id": memory.id, "name": memory.name, "base": memory.base, "documents": memory.documents,
                "tokens": memory.tokens, "knn_memory": memory.id,
                "decoder_memory": memory.decoder_name if job["phase"] == "done" else None,
                "decoder_starts_from": memory.init_folder, "automatic_steps": steps,
                "estimated_distillation_s": round(estimate_s(memory, steps)), "distillation": job}


_registries = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def of(engine: Engine) -> Memories:
    """The one registry of an engine (the page, its API and its handlers share it)."""
    with _registries_lock:
        if engine not in _registries:
            _registries[engine] = Memories(engine)
        return _registries[engine]
