"""The model set the app compares, loaded lazily and cached: base LMs, Memory Decoders with their domain
corpora, and one live kNN-LM datastore per (base, domain), built from the base's own keys. Memories can be added
while serving (app.serve.memories); a visitor's own stay in that registry, which the engine asks for a name it does
not serve to everyone.

No gradio here: the UI, the API and the CLI all call the same Engine.
"""
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch

from ..core import datastore, hub_text, models, paths, vocab
from ..core.tokens import block_entries, encode_file, first_tokens
from . import contract, presets
from .builds import NO_CORPUS, Builds, StillBuilding, Unavailable
from .contract import LIMITS, MAX_CHARS, InputError, check  # noqa: F401 (the names the app imports from here)
from .presets import Defaults, Memory
from .scheduler import Scheduler

MAX_CONTEXT = 1024  # hub models read more, but the app keeps each request quick
# A hub corpus (WikiText-103 has 100M+ tokens) is read up to this many tokens for the live kNN-LM: its keys take one
# forward pass of the base per token, minutes for 20k tokens of a 0.5B model on 2 CPU cores, seconds per 1M on a GPU.
CORPUS_TOKENS = {"cpu": 20_000, "cuda": 2_000_000}
FREE_MEMORY_SHARE = 0.5  # a datastore may take at most this share of the memory free when it is built
DEFAULTS = {"top_n": 10, "max_new_tokens": 24}  # what the API and the CLI use when a request leaves them out
PRIVATE = "a visitor's own memory"  # how the Models panel names what belongs to one visitor
# Visitors' stores kept in memory (an upload of 1 MB makes one of about 0.6 GB); the least recently used beyond these
# leave it, and are loaded again from disk when next asked for
PRIVATE_STORES = 2


@dataclass(frozen=True)
class Pair:
    """A base model and a Memory Decoder that share its tokenizer, ready to run."""
    base: str
    domain: str
    lm: torch.nn.Module
    decoder: torch.nn.Module
    tokenizer: object
    memory: Memory

    @property
    def room(self) -> int:
        """The longest context both models read (the app keeps each request within MAX_CONTEXT)."""
        return min([MAX_CONTEXT] + [getattr(m.config, "n_positions", None) or m.config.max_position_embeddings
                                    for m in (self.lm, self.decoder)])


@dataclass(frozen=True)
class Weights:
    """The mixing weight of each mixture: alpha for base + MemDec, lambda for base + kNN-LM; locked: one alpha for both
    (for teaching: the two mixtures at equal weight)."""
    alpha: float
    knn_lambda: float
    locked: bool = False

    @classmethod
    def of(cls, weights) -> "Weights":
        """Weights as they are; a single number is the lock: both mixtures at that alpha."""
        if isinstance(weights, Weights):
            return weights
        alpha = check("alpha", weights)
        return cls(alpha, alpha, True)

    @classmethod
    def chosen(cls, tuned: Defaults, alpha=None, knn_lambda=None, lock_alpha=False) -> "Weights":
        """The lock rule, for the page, the API and the CLI alike: each mixture at the weight asked for, else at the
        memory's own tuned for the base; locked, both at alpha (a knn_lambda sent is checked, not used)."""
        alpha = check("alpha", tuned.alpha if alpha is None else alpha)
        knn_lambda = check("knn_lambda", tuned.knn_lambda if knn_lambda is None else knn_lambda)
        if contract.flag("lock_alpha", lock_alpha):
            return cls(alpha, alpha, True)
        return cls(alpha, knn_lambda)

    def of_mixture(self, name: str) -> float:
        return self.knn_lambda if name == "mix_knn" else self.alpha


@dataclass(frozen=True)
class Resolved:
    """One request's choices, resolved once (Engine.resolve) and passed down as one value: the loaded pair, each
    mixture's weight, the kNN-LM's k and temperature, and the longest context its query reads (the keys' block)."""
    pair: Pair
    weights: Weights
    k: int
    temperature: float
    block: int

    @property
    def base(self) -> str:
        return self.pair.base

    @property
    def domain(self) -> str:
        return self.pair.domain

    @property
    def vocab(self) -> int:
        return len(self.pair.tokenizer)

    @property
    def tuned(self) -> Weights:
        """The memory's own weights for this base, whatever the request asked for."""
        return Weights.chosen(self.pair.memory.defaults(self.base))

    def encode(self, text, truncate: bool, reserve: int = 0) -> tuple[torch.Tensor, int]:
        """Token ids (1, n), started as the family starts a text (vocab.start_ids), leaving room for `reserve` more
        tokens; returns also how many were cut. Too long: the oldest tokens are dropped when truncate, else an
        InputError."""
        text, room = contract.text(text), self.pair.room - reserve
        tokenizer = self.pair.tokenizer
        ids = vocab.start_ids(tokenizer) + tokenizer(text, add_special_tokens=False)["input_ids"]
        cut = max(0, len(ids) - room)
        if cut and not truncate:
            raise InputError(f"the passage is {len(ids)} tokens; these models read at most {room}: shorten it")
        return torch.tensor([ids[cut:]]), cut


class Engine:
    def __init__(self, bases: dict, memories: dict, device: str | None = None, dtype: str | None = None,
                 corpus_tokens: int | None = None, family: dict | None = None, share_memories: bool = False):
        """bases: {name: folder or hub id}; memories: {name: Memory}. The first of each is the default. device and
        dtype: where and in what precision models run (default: CUDA in bf16 when present, else CPU in float32).
        corpus_tokens caps a hub corpus for the live kNN-LM. family: name -> the preset it comes from.
        share_memories: memories that visitors upload are listed to everyone, not only to their maker."""
        if not bases or not memories:
            raise InputError("the engine needs at least one base model and one memory")
        self.bases = {name: str(path) for name, path in bases.items()}
        self.memories = dict(memories)
        self.device = torch.device(device) if device else models.device()
        self.dtype, self.family, self.share_memories = dtype, family or {}, share_memories
        self.corpus_tokens = corpus_tokens or CORPUS_TOKENS.get(self.device.type, CORPUS_TOKENS["cpu"])
        self._models, self._tokenizers, self._fingerprints, self._stores, self._streams = {}, {}, {}, {}, {}
        self._labels, self._checked, self._corpora = {}, {}, {}
        self._private_used = {}  # (base, domain) of visitors' stores in memory, least recently used first
        # visitors' own memories are kept by their registry (app.serve.memories), which sets itself here: the engine
        # asks it for a name it does not serve to everyone, and never lists what it holds
        self.visitors = None
        self.public = False  # --public (MEMDEC_PUBLIC=1): nothing of a visitor's shown to others (the Models panel)
        self.lock = threading.RLock()  # guards the caches of loaded models and stores
        self.scheduler = Scheduler()  # every model call of a request goes through it (app.serve.batched)
        self.builds = None  # once serving: the datastores built in the background (app.serve.builds)
        self._folder_locks = {}  # one builder per store folder

    @classmethod
    def from_presets(cls, names, **options) -> "Engine":
        """One preset keeps its own names; several are merged with names qualified as "preset/name"."""
        try:
            chosen = [presets.named(name) for name in names]
        except KeyError as error:
            raise InputError(error.args[0]) from None
        bases, memories, family = {}, {}, {}
        for preset in chosen:
            qualify = (lambda n, p=preset.name: f"{p}/{n}") if len(chosen) > 1 else (lambda n: n)
            for name, path in preset.bases.items():
                bases[qualify(name)], family[qualify(name)] = path, preset.name
            for name, memory in preset.memories.items():
                memories[qualify(name)] = memory
                family[qualify(name)] = preset.name
        if not bases or not memories:
            raise InputError(f"the preset {names[0]!r} has no models: for the embedded family, run python -m "
                             "app.make.pipeline")
        return cls(bases, memories, family=family, **options)

    @classmethod
    def embedded(cls) -> "Engine":
        """The committed family: bases largest first (the family's key model), memories by domain."""
        return cls.from_presets(["embedded"])

    @property
    def default_base(self) -> str:
        return next(iter(self.bases))

    @property
    def default_domain(self) -> str:
        return next(iter(self.memories))

    # --- choosing -----------------------------------------------------------------------------------
    def base_name(self, base) -> str:
        return contract.choice("base model", base, self.bases)

    def memory(self, domain, owner: str | None = None) -> tuple[str, Memory]:
        """A memory served to everyone (None: the first), or one of the owner's own that the visitors' registry finds
        by its name. Another visitor's is refused as a name never served is: the refusal does not say it exists."""
        own = self._own(domain, owner) if owner else None
        if own is not None:
            return domain, own
        domain = contract.choice("memory", domain, self.memories)
        return domain, self.memories[domain]

    def _served(self, domain) -> tuple[str, Memory]:
        """(name, memory) of a name a request has been allowed already (resolve), or a store's build asks for,
        whoever owns it; no visitor's name reaches here unchecked."""
        own = self._own(domain, None)
        return (domain, own) if own is not None else self.memory(domain)

    def _own(self, domain, owner: str | None) -> Memory | None:
        """The visitor's memory of this name from their registry (owner None: whoever's), else None."""
        # a name only: anything else (a list, a number) is refused by contract.choice in memory()
        if self.visitors is None or not isinstance(domain, str) or domain in self.memories:
            return None
        return self.visitors.find(domain, owner)

    def add_memory(self, name: str, memory: Memory, family: str | None = None):
        """Serves a memory made while running (an operator's, or an upload shared with every visitor)."""
        with self.lock:
            self.memories[name] = memory
            if family:
                self.family[name] = family

    def drop_memory(self, name: str, memory: Memory):
        """Stops serving a memory added while running and frees what it alone held (its stores, its decoder)."""
        with self.lock:
            self.memories.pop(name, None)
            self.family.pop(name, None)
            for table in (self._stores, self._checked, self._private_used):
                for key in [key for key in table if key[1] == name]:
                    del table[key]
            for key in [key for key in self._streams if key[1] == str(memory.corpus)]:
                del self._streams[key]
            if memory.decoder and all(m.decoder != memory.decoder for m in self.memories.values()):
                self._models.pop(memory.decoder, None)

    def memory_choices(self, family: str | None = None) -> list[tuple[str, str]]:
        """(label, name) of the memories served to everyone, of one family (all when None)."""
        return [(m.label or (f"{name}: {m.knows}" if m.knows else name), name)
                for name, m in list(self.memories.items()) if family is None or self.family.get(name) == family]

    def defaults(self, base, domain, owner: str | None = None) -> Defaults:
        """What the memory uses with this base where a request leaves something out (tuned per base)."""
        return self.memory(domain, owner)[1].defaults(self.base_name(base))

    def weights(self, base, domain, alpha=None, knn_lambda=None, lock_alpha=False, owner: str | None = None) -> Weights:
        """Each mixture's weight for these choices (Weights.chosen: the lock rule), without loading a model."""
        return Weights.chosen(self.defaults(base, domain, owner), alpha, knn_lambda, lock_alpha)

    def resolve(self, base=None, domain=None, alpha=None, knn_lambda=None, lock_alpha=False, k=None,
                temperature=None, owner: str | None = None) -> Resolved:
        """A request's choices, the one way in for the page, the API and the CLI: names chosen (a visitor's own
        memory only for its owner), everything left out defaulted from the memory's own settings for the base,
        everything checked before a model loads, then the pair loaded."""
        domain, memory = self.memory(domain, owner)
        tuned = memory.defaults(self.base_name(base))
        weights = Weights.chosen(tuned, alpha, knn_lambda, lock_alpha)
        k = check("k", tuned.k if k is None else k, int)
        temperature = check("temperature", tuned.temperature if temperature is None else temperature)
        return Resolved(self.pair(base, domain), weights, k, temperature, tuned.block)

    # --- loading (cached) ---------------------------------------------------------------------------
    def model(self, name_or_path: str):
        """A frozen LM, warmed with one forward pass so that the first timed call is not a cold one."""
        with self.lock:
            if name_or_path not in self._models:
                try:
                    model = models.load_lm(name_or_path, self.device, self.dtype)
                except (FileNotFoundError, OSError) as error:
                    raise InputError(str(error)) from error
                model(input_ids=torch.zeros(1, 8, dtype=torch.long, device=model.device))
                self._models[name_or_path] = model
            return self._models[name_or_path]

    def tokenizer(self, name_or_path: str):
        with self.lock:
            if name_or_path not in self._tokenizers:
                try:
                    self._tokenizers[name_or_path] = models.load_tokenizer(name_or_path)
                except (FileNotFoundError, OSError) as error:
                    raise InputError(str(error)) from error
            return self._tokenizers[name_or_path]

    def fingerprint(self, name_or_path: str) -> str:
        """The tokenizer's vocabulary hash, computed once per model (a large vocabulary takes a while)."""
        with self.lock:
            if name_or_path not in self._fingerprints:
                self._fingerprints[name_or_path] = models.tokenizer_fingerprint(self.tokenizer(name_or_path))
            return self._fingerprints[name_or_path]

    def pair(self, base, domain) -> Pair:
        """The chosen base and memory (a name resolve has allowed), loaded. Both read the base's token ids, so the
        decoder must agree with the base's tokenizer on every one of them; a real mismatch is refused with its first
        differences."""
        base, (domain, memory) = self.base_name(base), self._served(domain)
        lm, tokenizer = self.model(self.bases[base]), self.tokenizer(self.bases[base])
        if memory.decoder is None:  # no decoder distilled yet: the base stands in, so p_mem = p_base
            return Pair(base, domain, lm, lm, tokenizer, memory)
        decoder = self.model(memory.decoder)
        with self.lock:
            if (base, domain) not in self._checked:
                self._checked[base, domain] = vocab.mismatch(tokenizer, self.tokenizer(memory.decoder),
                                                             models.logits_width(decoder))
        if self._checked[base, domain]:
            raise InputError(f"the {domain} decoder cannot read the token ids of base {base!r}: "
                             f"{self._checked[base, domain]}")
        return Pair(base, domain, lm, decoder, tokenizer, memory)

    def corpus(self, base: str, domain: str, progress=None) -> Path | None:
        """The text the live kNN-LM searches: the memory's file, or its hub dataset read up to corpus_tokens (fewer
        when the datastore would not fit in memory); None when the memory has no corpus."""
        source = self._served(domain)[1].corpus
        cap = self.corpus_cap(domain)
        if source is None or isinstance(source, Path) and cap is None:
            return source
        name = self.bases[base]
        if isinstance(source, Path):
            return first_tokens(source, self.tokenizer(name), self.fingerprint(name), cap)
        key = (self.fingerprint(name), source)
        if key not in self._corpora:
            fits = int(FREE_MEMORY_SHARE * psutil.virtual_memory().available
                       / datastore.bytes_per_entry(key_width(self.model(name))))
            try:
                self._corpora[key] = hub_text.local_corpus(source.repo, source.files, source.name, self.tokenizer(name),
                                                           key[0], min(self.corpus_tokens, fits), progress)[0]
            except (FileNotFoundError, OSError) as error:
                raise InputError(f"the {domain} corpus ({source.repo}) is neither cached nor reachable: "
                                 f"{error}") from error
        return self._corpora[key]

    def knn_store(self, base: str, domain: str, progress=None) -> tuple[datastore.Datastore | None,
                                                                         Unavailable | None]:
        """The store a request's kNN-LM searches, or why there is none now (no corpus, still building, a corpus that
        cannot be reached, too big for memory): base and Memory Decoder answer either way."""
        try:
            store = self.datastore(base, domain, progress)
        except StillBuilding as building:
            return None, building.unavailable
        except InputError as error:
            return None, Unavailable(str(error))
        return store, None if store is not None else Unavailable(NO_CORPUS)

    def datastore(self, base: str, domain: str, progress=None, here: bool = False) -> datastore.Datastore | None:
        """The base's kNN-LM store over the memory's corpus: from disk when current, else built once (with progress),
        refused when it would not fit in memory; None when the memory has no corpus. While serving, a store not ready
        yet is built in the background and the request is told how far it has got (StillBuilding), unless here: then
        this thread builds it."""
        key = (base, domain)
        if key in self._stores:
            self._used(key)
            return self._stores[key]
        if self._served(domain)[1].corpus is None:
            return None
        if self.builds is not None and not here:
            raise self.builds.wait(key)
        folder = self.store_folder(base, domain)
        with self.lock:
            folder_lock = self._folder_locks.setdefault(folder, threading.Lock())
        with folder_lock:  # not the engine's lock: other requests go on while a store is built
            if key not in self._stores:
                corpus = self.corpus(base, domain, progress)
                name, block = self.bases[base], self._served(domain)[1].defaults(base).block
                model = self.model(name)
                entries = block_entries(self.stream(base, domain, progress), block)
                needed, free = entries * datastore.bytes_per_entry(key_width(model)), psutil.virtual_memory().available
                if needed > FREE_MEMORY_SHARE * free:
                    raise InputError(f"the {domain} datastore for {base} would hold {entries:,} entries and need "
                                     f"{needed / 1e9:.1f} GB, more than half of the {free / 1e9:.1f} GB free: use a "
                                     "smaller corpus or a larger machine")
                shared = [store for (b, d), store in list(self._stores.items()) if self.store_folder(b, d) == folder]
                self._stores[key] = shared[0] if shared else datastore.load_or_build(
                    model, self.tokenizer(name), name, corpus, folder, block, progress)
                self._used(key)
            return self._stores[key]

    def _used(self, key: tuple[str, str]):
        """A store just used: a visitor's goes to the end of the queue of those kept in memory, and the least
        recently used beyond PRIVATE_STORES leave it (requests that hold one finish with it)."""
        if key[1] in self.memories:
            return
        with self.lock:
            self._private_used.pop(key, None)
            self._private_used[key] = True
            while len(self._private_used) > PRIVATE_STORES:
                oldest = next(iter(self._private_used))
                del self._private_used[oldest]
                self._stores.pop(oldest, None)

    def corpus_cap(self, domain) -> int | None:
        """How many tokens of a memory's corpus file the live kNN-LM searches on this device (None: all of it)."""
        return self._served(domain)[1].corpus_tokens.get(self.device.type)

    def corpus_extent(self, base, domain) -> str:
        """How much of its corpus the live kNN-LM searches, in words, for the page."""
        cap, memory = self.corpus_cap(domain), self._served(domain)[1]
        if memory.corpus is None or cap is None:
            return ""
        total = len(encode_file(self.tokenizer(self.bases[base]), memory.corpus, self.fingerprint(self.bases[base])))
        if total <= cap:
            return ""
        return (f"On this {self.device.type.upper()} the live kNN-LM searches the first {cap:,} of its corpus's "
                f"{total:,} tokens (all of them on a GPU), so that its datastore builds in a minute or two.")

    def store_folder(self, base: str, domain: str) -> Path:
        """Where the store of (base, domain) lives: the cache, or the folder of a memory added while serving (its
        memories with and without a decoder share one store there)."""
        name, root, cap = self.bases[base], self._served(domain)[1].store_root, self.corpus_cap(domain)
        if root is not None:
            return store_under(root, name)
        # a store over part of a corpus has a folder of its own: the pipeline's store over all of it stays as it is;
        # one folder for "smollm2/law" (several presets served together) and "law"
        domain = domain.rsplit("/", 1)[-1]
        return paths.store_folder(name, domain if cap is None else f"{domain}-first{cap}")

    def stream(self, base: str, domain: str, progress=None) -> np.ndarray:
        """The tokenized corpus: entry p of the datastore is position p of this stream."""
        name, corpus = self.bases[base], self.corpus(base, domain, progress)
        key = (self.fingerprint(name), str(corpus))
        if key not in self._streams:
            self._streams[key] = encode_file(self.tokenizer(name), corpus, key[0])
        return self._streams[key]

    def prepare(self) -> list[dict]:
        """Loads the default base with every memory and builds each datastore, so that no visitor waits for it
        (a Space runs this at start-up, or `python -m app.serve.cli prepare` ahead of time); returns loaded()."""
        for domain in self.memories:
            self.pair(None, domain)
            self.datastore(self.default_base, domain)
        return self.loaded()

    def prepare_in_background(self):
        """What prepare() does, in a background thread while the app serves; later stores are built there too."""

        self.builds = Builds(self)
        for domain in self.memories:
            self.builds.add((self.default_base, domain))

    def labels(self, base: str) -> vocab.TokenText:
        """id -> token text for the base's tokenizer, decoded on demand, for labels and neighbour text."""
        with self.lock:
            if base not in self._labels:
                self._labels[base] = vocab.TokenText(self.tokenizer(self.bases[base]))
            return self._labels[base]

    def loaded(self) -> list[dict]:
        """What is in memory now: each model's role, id, size and where it runs, and each datastore's entries."""
        # what belongs to a visitor (their memories are not in self.memories) is named to no one
        roles = {path: f"base {name}" for name, path in self.bases.items()}
        roles.update({m.decoder: f"Memory Decoder {name}" for name, m in list(self.memories.items())})
        out = [{"role": roles.get(path, PRIVATE), "id": path if path in roles else PRIVATE,
                "parameters": sum(p.numel() for p in model.parameters()),
                "bytes": sum(p.numel() * p.element_size() for p in model.parameters()), "dtype": str(model.dtype),
                "device": str(model.device)}
               for path, model in list(self._models.items())]  # a snapshot: others may load
        out += [{"role": f"datastore {base} / {domain if domain in self.memories else PRIVATE}",
                 "id": str(self.store_folder(base, domain)) if domain in self.memories else PRIVATE,
                 "entries": len(store), "index": store.recipe["index"]["type"],
                 "bytes": len(store) * datastore.bytes_per_entry(store.keys.shape[1])}
                for (base, domain), store in list(self._stores.items())]
        return out


def store_under(root: Path, model: str) -> Path:
    """The store of a model inside a memory's own folder."""
    return Path(root) / paths.store_folder(model, "store").name


def key_width(model) -> int:
    """The width of the kNN key: the hidden size that the last feed-forward layer reads."""
    return model.config.get_text_config().hidden_size
