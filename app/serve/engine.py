"""The model set the app compares, loaded lazily and cached: base LMs, Memory Decoders with their domain
corpora, and one live kNN-LM datastore per (base, domain), built from the base's own keys.

No gradio here: the UI, the API and the CLI all call the same Engine.
"""
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core import datastore, models, paths
from ..core.settings import BASE_SIZES, UNTUNED_MEMORY, Settings
from ..core.tokens import encode_file

MAX_CHARS = 4000  # longer text is refused: the embedded models read 256 tokens, and the CPU is shared
MAX_CONTEXT = 1024  # hub models read more, but the app keeps each request quick
DEFAULTS = {"top_n": 10, "max_new_tokens": 24}  # what the API and the CLI use when a request leaves them out
LIMITS = {"alpha": (0.0, 1.0), "k": (1, 2048), "temperature": (0.01, 10000.0), "top_n": (1, 50),
          "max_new_tokens": (1, 64), "seed": (0, 2**31 - 1)}


class InputError(ValueError):
    """A problem with what the user asked for; its message is shown as is."""


@dataclass(frozen=True)
class Memory:
    """A Memory Decoder, the domain corpus its kNN-LM counterpart searches, and its tuned defaults."""
    decoder: str
    corpus: Path
    alpha: float = UNTUNED_MEMORY["alpha"]
    knn_temperature: float = UNTUNED_MEMORY["knn_temperature"]
    knn_k: int = UNTUNED_MEMORY["knn_k"]

    @classmethod
    def from_folder(cls, decoder, corpus) -> "Memory":
        """Defaults come from the decoder's memdec.json when the pipeline wrote one."""
        meta_path = Path(decoder) / "memdec.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        keep = {k: meta[k] for k in UNTUNED_MEMORY if k in meta}
        return cls(str(decoder), Path(corpus), **keep)


@dataclass(frozen=True)
class Pair:
    """A base model and a Memory Decoder that share its tokenizer, ready to run."""
    base: str
    domain: str
    lm: torch.nn.Module
    decoder: torch.nn.Module
    tokenizer: object
    memory: Memory


def check(name: str, value, cast=float):
    """value as a number inside LIMITS[name], or an InputError that says what is allowed."""
    low, high = LIMITS[name]
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number between {low} and {high}, not {value!r}") from None
    if cast is int and number != float(value):
        raise InputError(f"{name} must be a whole number, not {value!r}")
    if not (low <= number <= high):
        raise InputError(f"{name} must be between {low} and {high}, not {value}")
    return number


class Engine:
    def __init__(self, bases: dict, memories: dict):
        """bases: {name: folder or hub id}; memories: {domain: Memory}. The first of each is the default."""
        if not bases or not memories:
            raise InputError("the engine needs at least one base model and one memory")
        self.bases = {name: str(path) for name, path in bases.items()}
        self.memories = dict(memories)
        self._models, self._tokenizers, self._fingerprints, self._stores, self._streams, self._vocab = {}, {}, {}, {}, {}, {}
        self.lock = threading.RLock()  # one model call at a time: KeyCapture hooks are shared state

    @classmethod
    def embedded(cls) -> "Engine":
        """The committed models: bases largest first (the family's key model), memories by domain."""
        found = models.embedded("base")
        order = [s for s in reversed(BASE_SIZES) if s in found] + [s for s in found if s not in BASE_SIZES]
        memories = {}
        for name, folder in models.embedded("memdec").items():
            meta_path = folder / "memdec.json"
            domain = json.loads(meta_path.read_text()).get("domain", name) if meta_path.exists() else name
            memories[domain] = Memory.from_folder(folder, paths.corpus_path(domain, "train"))
        if not found or not memories:
            raise InputError("no embedded models in models/ yet: run the pipeline, or serve other models with "
                             "python -m app.serve.cli serve --model NAME=PATH --memory DOMAIN=DECODER,CORPUS")
        return cls({s: found[s] for s in order}, memories)

    @property
    def default_base(self) -> str:
        return next(iter(self.bases))

    @property
    def default_domain(self) -> str:
        return next(iter(self.memories))

    # --- choosing -----------------------------------------------------------------------------------
    def base_name(self, base) -> str:
        base = base or self.default_base
        if base not in self.bases:
            raise InputError(f"unknown base model {base!r}; choose one of {', '.join(self.bases)}")
        return base

    def memory(self, domain) -> tuple[str, Memory]:
        domain = domain or self.default_domain
        if domain not in self.memories:
            raise InputError(f"unknown memory {domain!r}; choose one of {', '.join(self.memories)}")
        return domain, self.memories[domain]

    def alpha(self, domain, alpha=None) -> float:
        """The mixing weight asked for, or the memory's own (from its memdec.json), checked."""
        return check("alpha", self.memory(domain)[1].alpha if alpha is None else alpha)

    def knn_settings(self, domain, k=None, temperature=None) -> tuple[int, float]:
        """The kNN-LM's k and temperature asked for, or the memory's own, checked."""
        memory = self.memory(domain)[1]
        return (check("k", memory.knn_k if k is None else k, int),
                check("temperature", memory.knn_temperature if temperature is None else temperature))

    # --- loading (cached) ---------------------------------------------------------------------------
    def model(self, name_or_path: str):
        """A frozen LM, warmed with one forward pass so that the first timed call is not a cold one."""
        with self.lock:
            if name_or_path not in self._models:
                model = models.load_lm(name_or_path)
                model(input_ids=torch.zeros(1, 8, dtype=torch.long, device=model.device))
                self._models[name_or_path] = model
            return self._models[name_or_path]

    def tokenizer(self, name_or_path: str):
        with self.lock:
            if name_or_path not in self._tokenizers:
                self._tokenizers[name_or_path] = models.load_tokenizer(name_or_path)
            return self._tokenizers[name_or_path]

    def fingerprint(self, name_or_path: str) -> str:
        """The tokenizer's vocabulary hash, computed once per model (a large vocabulary takes a while)."""
        with self.lock:
            if name_or_path not in self._fingerprints:
                self._fingerprints[name_or_path] = models.tokenizer_fingerprint(self.tokenizer(name_or_path))
            return self._fingerprints[name_or_path]

    def pair(self, base, domain) -> Pair:
        """The chosen base and memory, loaded; refuses a decoder with another tokenizer."""
        base, (domain, memory) = self.base_name(base), self.memory(domain)
        tokenizer = self.tokenizer(self.bases[base])
        if self.fingerprint(memory.decoder) != self.fingerprint(self.bases[base]):
            raise InputError(f"the {domain} decoder does not share the tokenizer of base {base!r}")
        return Pair(base, domain, self.model(self.bases[base]), self.model(memory.decoder), tokenizer, memory)

    def datastore(self, base: str, domain: str, progress=None) -> datastore.Datastore:
        """The base's kNN-LM store over the domain corpus: from disk when current, else built once (with progress)."""
        with self.lock:
            key = (base, domain)
            if key not in self._stores:
                name = self.bases[base]
                self._stores[key] = datastore.load_or_build(
                    self.model(name), self.tokenizer(name), name, self.memories[domain].corpus,
                    paths.store_folder(name, domain), Settings.block, progress)
            return self._stores[key]

    def stream(self, base: str, domain: str) -> np.ndarray:
        """The tokenized domain corpus: entry p of the datastore is position p of this stream."""
        fingerprint = self.fingerprint(self.bases[base])
        key = (fingerprint, str(self.memories[domain].corpus))
        if key not in self._streams:
            self._streams[key] = encode_file(self.tokenizer(self.bases[base]), self.memories[domain].corpus, fingerprint)
        return self._streams[key]

    def vocab_text(self, base: str) -> list:
        """id -> token text for the base's tokenizer, for labels and neighbour text."""
        with self.lock:
            if base not in self._vocab:
                tokenizer = self.tokenizer(self.bases[base])
                self._vocab[base] = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
            return self._vocab[base]

    def context(self, *lms) -> int:
        return min([MAX_CONTEXT] + [getattr(m.config, "n_positions", None) or m.config.max_position_embeddings for m in lms])

    def encode(self, tokenizer, text, room: int, truncate: bool) -> tuple[torch.Tensor, int]:
        """Token ids (1, n) after an EOS, as documents start in the corpus; returns also how many tokens were cut.

        Too long for the context: the oldest tokens are dropped when truncate, else an InputError."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("the text is empty: type a prompt or a passage")
        if len(text) > MAX_CHARS:
            raise InputError(f"the text has {len(text)} characters; the app takes at most {MAX_CHARS}")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        start = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        ids = start + ids
        cut = max(0, len(ids) - room)
        if cut and not truncate:
            raise InputError(f"the passage is {len(ids)} tokens; these models read at most {room}: shorten it")
        return torch.tensor([ids[cut:]]), cut
