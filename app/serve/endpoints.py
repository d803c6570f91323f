"""The plain JSON that the API, the CLI and the page's export share, from a request resolved once (Engine.resolve:
base, memory, weights, k and T, each defaulted from the memory's own settings). Generation is JSON already
(app.serve.generate)."""
from dataclasses import asdict

from . import compare, memories, score
from .contract import check
from .engine import DEFAULTS, Engine, Resolved


def compare_json(engine: Engine, resolved: Resolved, text: str, top_n=DEFAULTS["top_n"], precise: bool = False,
                 progress=None) -> dict:
    """Next-token distributions of base, memdec, knn and the two mixtures, the neighbours, the imitation and teach
    numbers, and latency_ms per component: of the real call (latency_batch: how many requests shared it), or with
    precise, of each alone, the median of 3 runs."""
    top_n = check("top_n", top_n, int, default=DEFAULTS["top_n"])
    return compare.to_dict(compare.next_token(engine, resolved, text, progress, precise), resolved.weights, top_n)


def score_json(engine: Engine, resolved: Resolved, text: str, progress=None) -> dict:
    """Per-token probabilities and gains, perplexities and perplexity against alpha for a passage."""
    return score.summary(score.score(engine, resolved, text, progress), resolved.weights)


def memories_json(engine: Engine, base=None, owner=None) -> list[dict]:
    """The memories a visitor may pick: what each one's corpus is, whether it has a live kNN-LM, and its defaults
    for the base (each mixture's own weight, k, T, and the block its keys read)."""
    base, out = engine.base_name(base), []
    for label, name in memories.of(engine).choices(owner, engine.family.get(base)):
        memory = engine.memory(name, owner)[1]
        out.append({"name": name, "label": label, "knows": memory.knows, "live_knn": memory.corpus is not None,
                    "defaults": asdict(memory.defaults(base))})
    return out
