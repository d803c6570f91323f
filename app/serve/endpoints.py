"""One function per endpoint, building the plain JSON that the API, the CLI and the page's export share: the text
first, every other argument defaulted (None: the memory's own weights, k and T for the base; lock_alpha: both
mixtures at one alpha)."""
from dataclasses import asdict

from . import compare, generate, score
from .contract import check
from .engine import DEFAULTS, Engine


def compare_json(engine: Engine, text: str, base=None, domain=None, alpha=None, k=None, temperature=None,
                 top_n=DEFAULTS["top_n"], progress=None, knn_lambda=None, lock_alpha=False, precise: bool = False) -> dict:
    """Next-token distributions of base, memdec, knn and the two mixtures, the neighbours, the imitation and teach
    numbers, and latency_ms per component: of the real call (latency_batch: how many requests shared it), or with
    precise, of each alone, the median of 3 runs."""
    weights = engine.weights(base, domain, alpha, knn_lambda, lock_alpha)  # checked before any model runs
    top_n = check("top_n", top_n, int, default=DEFAULTS["top_n"])
    return compare.to_dict(compare.next_token(engine, text, base, domain, k, temperature, progress, precise), weights,
                           top_n)


def generate_json(engine: Engine, text: str, base=None, domain=None, max_new_tokens=DEFAULTS["max_new_tokens"], sample=False, seed=0,
                  alpha=None, k=None, temperature=None, progress=None, knn_lambda=None, lock_alpha=False) -> dict:
    """Continuations of base, base + MemDec and base + kNN-LM, each with its own KV cache, and ms per token."""
    return generate.generate(engine, text, base, domain, max_new_tokens, sample, seed, alpha, k, temperature, progress,
                             knn_lambda, lock_alpha)


def score_json(engine: Engine, text: str, base=None, domain=None, alpha=None, k=None, temperature=None,
               progress=None, knn_lambda=None, lock_alpha=False) -> dict:
    """Per-token probabilities and gains, perplexities and perplexity against alpha for a passage."""
    weights = engine.weights(base, domain, alpha, knn_lambda, lock_alpha)
    return score.summary(score.score(engine, text, base, domain, k, temperature, progress), weights)


def memories_json(engine: Engine, base=None, owner=None) -> list[dict]:
    """The memories a visitor may pick: what each one's corpus is, whether it has a live kNN-LM, and its defaults
    for the base (each mixture's own weight, k, T, and the block its keys read)."""
    base, out = engine.base_name(base), []
    for label, name in engine.memory_choices(owner, engine.family.get(base)):
        memory = engine.memory(name)[1]
        out.append({"name": name, "label": label, "knows": memory.knows, "live_knn": memory.corpus is not None,
                    "defaults": asdict(memory.defaults(base))})
    return out
