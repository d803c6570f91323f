"""Which memory knows this passage? One passage scored against every memory of a family with one base, each memory at
its own tuned weights: the perplexities (score.summary's, memory by memory), the change from the base, and each
token's gain in bits, best memory (lowest base + MemDec perplexity) first. A kNN-LM whose store is still building or
that has no corpus is left out of its row, which says why."""
import math
import statistics

from . import contract, score
from .engine import Engine
from .family import chosen

NO_DECODER = "no Memory Decoder distilled yet: base + MemDec is the base itself"


def change_percent(mixed: float | None, base: float | None) -> float | None:
    """How much the mixture changes the base's perplexity, in % (negative: the memory helps)."""
    return None if mixed is None or base is None else 100 * (mixed / base - 1)


def entry(name: str, label: str, summary: dict, missing: list[str]) -> dict:
    """One memory's row: its perplexities, each mixture's change and mean gain per token, and the per-token gains of
    base + MemDec (the heatmap's row)."""
    perplexity = summary["perplexity"]
    mixtures = [m for m in ("mix_memdec", "mix_knn") if m in perplexity]
    return {"memory": name, "label": label, "knows": summary["knows"], "alpha": summary["alpha"],
            "knn_lambda": summary["knn_lambda"] if "mix_knn" in mixtures else None, "perplexity": perplexity,
            "change_percent": {m: change_percent(perplexity[m], perplexity["base"]) for m in mixtures},
            "bits_per_token": {m: statistics.fmean(t["gain_bits"][m] for t in summary["tokens"]) for m in mixtures},
            "token_gain_bits": [t["gain_bits"]["mix_memdec"] for t in summary["tokens"]],
            "notes": missing}


def survey(engine: Engine, text: str, base=None, family=None, owner: str | None = None, progress=None) -> dict:
    """text scored with base against every memory of family (None: the base's), each at its own tuned weights."""
    text = contract.text(text)
    base, family, listed = chosen(engine, base, family, owner)
    found = []
    for label, name in listed:
        # alpha, lambda, k, T: the memory's own for this base
        resolved = engine.resolve(base=base, domain=name, owner=owner)
        notes = [] if resolved.pair.memory.decoder else [NO_DECODER]
        scored = score.score(engine, resolved, text, progress)  # a kNN-LM still building: the rest answers now
        notes += [scored.unavailable.reason] if scored.unavailable else []
        found.append(entry(name, label, score.summary(scored, resolved.weights), notes))
        tokens = scored.tokens
    found.sort(key=lambda m: math.inf if m["perplexity"]["mix_memdec"] is None else m["perplexity"]["mix_memdec"])
    return {"text": text, "base": base, "family": family, "tokens": tokens, "memories": found}


def rows(result: dict) -> list[dict]:
    """The table: one row per memory, best first (the page shows it, the export writes it as CSV)."""
    out = []
    for m in result["memories"]:
        p, change, bits = m["perplexity"], m["change_percent"], m["bits_per_token"]
        out.append({"memory": m["memory"], "perplexity base": p["base"], "perplexity base + MemDec": p["mix_memdec"],
                    "perplexity base + kNN-LM": p.get("mix_knn"), "change % base + MemDec": change["mix_memdec"],
                    "change % base + kNN-LM": change.get("mix_knn"), "bits/token base + MemDec": bits["mix_memdec"],
                    "bits/token base + kNN-LM": bits.get("mix_knn"), "alpha": m["alpha"], "lambda": m["knn_lambda"],
                    "note": " ".join(m["notes"])})
    return out
