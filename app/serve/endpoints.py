"""One function per endpoint, building the plain JSON that the API, the CLI and the page's export share: the text
first, every other argument defaulted (None: the memory's own alpha, k and T)."""
from . import compare, generate, score
from .contract import check
from .engine import DEFAULTS, Engine


def compare_json(engine: Engine, text: str, base=None, domain=None, alpha=None, k=None, temperature=None,
                 top_n=DEFAULTS["top_n"], progress=None, precise: bool = False) -> dict:
    """Next-token distributions of base, memdec, knn and the two mixtures, the neighbours, the imitation and teach
    numbers, and latency_ms per component: of the real call (latency_batch: how many requests shared it), or with
    precise, of each alone, the median of 3 runs."""
    alpha = engine.alpha(base, domain, alpha)  # checked before any model runs
    top_n = check("top_n", top_n, int, default=DEFAULTS["top_n"])
    return compare.to_dict(compare.next_token(engine, text, base, domain, k, temperature, progress, precise), alpha, top_n)


def generate_json(engine: Engine, text: str, base=None, domain=None, max_new_tokens=DEFAULTS["max_new_tokens"], sample=False, seed=0,
                  alpha=None, k=None, temperature=None, progress=None) -> dict:
    """Continuations of base, base + MemDec and base + kNN-LM, each with its own KV cache, and ms per token."""
    return generate.generate(engine, text, base, domain, max_new_tokens, sample, seed, alpha, k, temperature, progress)


def score_json(engine: Engine, text: str, base=None, domain=None, alpha=None, k=None, temperature=None,
               progress=None) -> dict:
    """Per-token probabilities and gains, perplexities and perplexity against alpha for a passage."""
    alpha = engine.alpha(base, domain, alpha)
    return score.summary(score.score(engine, text, base, domain, k, temperature, progress), alpha)
