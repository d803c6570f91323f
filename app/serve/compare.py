"""One next-token comparison: p_base, p_mem and p_kNN for a prompt, timed per component, and everything derived
from them (mixtures for any alpha, the shared token axis, the neighbours, how well the decoder imitates kNN, the
formulas' numbers). Every number a tab shows is computed here, so the API and the CLI return it too."""
import math
import statistics
import time
from dataclasses import dataclass, field

import torch

from ..core.distributions import knn_probs, knn_weights, mix, mix_log, mix_logits
from . import batched
from .builds import ANSWERED, NO_CORPUS, Unavailable  # noqa: F401 (NO_CORPUS: the tabs' text without a corpus)
from .contract import flag
from .engine import DEFAULTS, Engine, InputError, Resolved, Weights, check


@dataclass
class NextToken:
    """The three distributions are kept so that a new alpha re-mixes them without running a model."""
    prompt: str
    base: str
    domain: str
    k: int
    temperature: float
    p_base: torch.Tensor  # (vocab,)
    p_mem: torch.Tensor
    p_knn: torch.Tensor | None  # None when the memory has no corpus to search
    distances: torch.Tensor  # (k,) squared L2, nearest first
    ids: torch.Tensor  # (k,) datastore entry ids = corpus stream positions
    values: torch.Tensor  # (k,) next-token ids
    tokens: object = None  # id -> token text (vocab.TokenText), for labels
    latency_ms: dict = field(default_factory=dict)
    cut: int = 0  # prompt tokens dropped to fit the context
    neighbours: list = field(default_factory=list)  # the retrieved entries with their corpus text (see neighbours())
    repeats: int = 1  # runs timed per component (next_token's precise)
    batch: dict = field(default_factory=dict)  # component -> how many requests shared the timed call
    unavailable: Unavailable | None = None  # why there is no p_kNN: no corpus, or its store building (how far)

    @property
    def knn_missing(self) -> str | None:
        return self.unavailable and self.unavailable.reason
REPEATS = 3  # "measure precisely": each component alone, the median of this many warm runs (the CPU may be shared)


def _timed(latency: dict, name: str, fn, repeats: int):
    """fn's result, with its median wall-clock time in ms stored under latency[name]."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1000)
    latency[name] = round(statistics.median(times), 3)
    return out


def next_token(engine: Engine, resolved: Resolved, prompt: str, progress=None, precise: bool = False) -> NextToken:
    """The latency of each component is that of the call that computed it, shared with concurrent requests when it was
    batched (batch: how many); precise runs each alone REPEATS times and keeps the median."""
    pair = resolved.pair
    lm, decoder = pair.lm, pair.decoder
    ids, cut = resolved.encode(prompt, truncate=True)
    store, missing = engine.knn_store(pair.base, pair.domain, progress)  # before anything is timed
    vocab, latency, batch, repeats = resolved.vocab, {}, {}, REPEATS if flag("precise", precise) else 1
    last = [ids.shape[1] - 1]
    calls = {"base forward": batched.forward(engine, lm, vocab, ids, last, repeats),
             "decoder forward": batched.forward(engine, decoder, vocab, ids, last, repeats)}

    def result(name):
        done = calls[name].result()
        latency[name], batch[name] = done.ms, done.batch
        return done.value

    p_base, query = result("base forward")
    p_base, p_mem = p_base[0], result("decoder forward")[0][0]
    if store is None:
        distances = entry_ids = values = torch.zeros(1, 0, dtype=torch.long)
        p_knn = None
    else:
        block = store.recipe["block"]
        if ids.shape[1] > block:  # the query reads at most the store's block, as its keys did: one more pass
            calls["kNN key"] = batched.forward(engine, lm, vocab, ids[:, -block:], [block - 1], repeats)
            query = result("kNN key")[1]
        calls["kNN search"] = batched.search(engine, store, query.numpy(), resolved.k, repeats)
        distances, entry_ids, values = result("kNN search")
        p_knn = _timed(latency, "kNN distribution",
                       lambda: knn_probs(distances, values, resolved.temperature, vocab)[0], repeats)
        latency["kNN search"] = round(latency["kNN search"] + latency.pop("kNN key", 0)
                                      + latency.pop("kNN distribution"), 3)
        batch.pop("kNN key", None)
    # the alpha picked later only changes the numbers, not the cost, of the mixtures
    mixed = ((p_mem, resolved.weights.alpha), (p_knn, resolved.weights.knn_lambda))
    _timed(latency, "mixing", lambda: [mix(p_base, p, a) for p, a in mixed if p is not None], repeats)
    nt = NextToken(prompt, pair.base, pair.domain, distances.shape[1], resolved.temperature, p_base, p_mem, p_knn,
                   distances[0], entry_ids[0], values[0], engine.labels(pair.base), latency, cut, repeats=repeats,
                   batch=batch, unavailable=missing)
    if store is not None:  # k is fewer than asked when the datastore is smaller
        nt.neighbours = neighbours(engine.stream(pair.base, pair.domain), store.recipe["block"], nt)
    return nt


def mixtures(nt: NextToken, weights: Weights | float) -> dict:
    """All five distributions for these weights (a single number: both at that alpha; three distributions without a
    kNN-LM); the mixtures are the only thing new weights change."""
    w = Weights.of(weights)
    out = {"base": nt.p_base, "memdec": nt.p_mem, "mix_memdec": mix(nt.p_base, nt.p_mem, w.alpha)}
    if nt.p_knn is not None:
        out.update(knn=nt.p_knn, mix_knn=mix(nt.p_base, nt.p_knn, w.knn_lambda))
    return out


def shared_axis(dists: dict, n: int) -> torch.Tensor:
    """The n token ids with the highest probability under any of the distributions, most likely first."""
    best = torch.stack(list(dists.values())).max(0).values
    return best.topk(n).indices


def rows(nt: NextToken, weights: Weights | float, n: int = DEFAULTS["top_n"]) -> list[dict]:
    """One row per token of the shared axis, with its probability under every predictor."""
    dists = mixtures(nt, weights)
    return [{"id": int(i), "token": nt.tokens[i], **{name: float(p[i]) for name, p in dists.items()}}
            for i in shared_axis(dists, check("top_n", n, int)).tolist()]


def kl(p: torch.Tensor, q: torch.Tensor) -> float:
    """KL(p || q) in nats over p's support; q is floored at the smallest float so a zero never gives infinity."""
    support = p > 0
    return float((p[support] * (p[support].log() - q[support].clamp_min(torch.finfo(q.dtype).tiny).log())).sum())


def imitation(nt: NextToken, top: int = 10) -> dict | None:
    """How close the decoder is to the retriever for this context, next to the same numbers for the base (None
    without a kNN-LM)."""
    if nt.p_knn is None:
        return None
    knn_top = set(nt.p_knn.topk(min(top, int((nt.p_knn > 0).sum()))).indices.tolist())

    def overlap(p):
        return len(knn_top & set(p.topk(top).indices.tolist())) / max(1, len(knn_top))

    return {"kl_knn_mem": kl(nt.p_knn, nt.p_mem), "kl_knn_base": kl(nt.p_knn, nt.p_base),
            "top_k": top, "overlap_mem": overlap(nt.p_mem), "overlap_base": overlap(nt.p_base)}


def neighbours(stream, block: int, nt: NextToken, window: int = 16) -> list[dict]:
    """The retrieved entries: the text its key saw (from its block start, at most window tokens: a key sees only its
    own block), its next token, its distance and its weight softmax(-d / T). stream is the corpus the store keys."""
    tokens = nt.tokens
    weights = knn_weights(nt.distances, nt.temperature)
    out = []
    for rank, (d, p, v, w) in enumerate(zip(nt.distances.tolist(), nt.ids.tolist(), nt.values.tolist(),
                                            weights.tolist())):
        start = max(p - window + 1, p - p % block)
        out.append({"rank": rank + 1, "context": "".join(tokens[t] for t in stream[start: p + 1]),
                    "next": tokens[v], "after": "".join(tokens[t] for t in stream[p + 2: p + 6]),
                    "distance": d, "weight": w, "entry": p})
    return out


def per_token(nt: NextToken) -> list[dict]:
    """p_kNN by token: the summed weight of the neighbours that continue with it, and how many do."""
    weights = knn_weights(nt.distances, nt.temperature)
    totals = {}
    for v, w in zip(nt.values.tolist(), weights.tolist()):
        count, total = totals.get(v, (0, 0.0))
        totals[v] = (count + 1, total + w)
    ranked = sorted(totals.items(), key=lambda item: -item[1][1])
    return [{"token": nt.tokens[v], "id": v, "neighbours": c, "p_knn": t} for v, (c, t) in ranked]


def teach(nt: NextToken, weights: Weights | float, n: int = DEFAULTS["top_n"]) -> dict:
    """The numbers that go into the two formulas, for each mixture's most likely next token ("knn": None without a
    kNN-LM), each mixture at its own weight (locked: both at alpha), and the same mixtures taken in logit space."""
    w = Weights.of(weights)
    dists = mixtures(nt, w)
    y = int(dists["mix_memdec"].argmax())
    p_base, p_mem = float(dists["base"][y]), float(dists["memdec"][y])
    log_p_mix = float(mix_log(torch.tensor(p_base).log(), torch.tensor(p_mem).log(), w.alpha))
    out = {"alpha": w.alpha, "knn_lambda": w.knn_lambda, "locked": w.locked, "knn": None,
           "logit": logit_mixture(nt, w, n),
           "memdec": {"token": nt.tokens[y], "id": y, "p_base": p_base, "p_mem": p_mem,
                      "p_mix": float(dists["mix_memdec"][y]), "log_p_mix": log_p_mix,
                      "exp_log_p_mix": math.exp(log_p_mix)}}
    if nt.p_knn is None:
        return out
    z = int(dists["mix_knn"].argmax())
    voting = next((t for t in per_token(nt) if t["id"] == z), {"neighbours": 0})
    out["knn"] = {"k": nt.k, "temperature": nt.temperature, "nearest_distance": float(nt.distances[0]),
                  "nearest_weight": float(knn_weights(nt.distances, nt.temperature)[0]),
                  "nearest_next": nt.tokens[int(nt.values[0])],
                  "token": nt.tokens[z], "id": z, "neighbours": voting["neighbours"], "p_knn": float(dists["knn"][z]),
                  "p_base": float(dists["base"][z]), "p_mix": float(dists["mix_knn"][z])}
    return out


def logit_mixture(nt: NextToken, weights: Weights | float, n: int = DEFAULTS["top_n"]) -> dict:
    """Each mixture taken the wrong way, in logit space (mix_logits), beside the interpolation the paper uses: the
    interpolation's top token y with p(y) both ways, the logit mixture's own top token, the total-variation distance
    between the two, and the mass each puts on tokens that one of the models rules out (probability 0: for the
    kNN-LM, every token no neighbour predicts). "rows": base + MemDec on the top n tokens of any of its four
    distributions, for the chart. In float64, so that a floored zero stays ruled out even at a small weight."""
    w = Weights.of(weights)
    out = {"memdec": None, "knn": None, "rows": []}
    for name, other in (("memdec", nt.p_mem), ("knn", nt.p_knn)):
        if other is None:
            continue
        weight, p_base, other = w.of_mixture(f"mix_{name}"), nt.p_base.double(), other.double()
        prob, logit = mix(p_base, other, weight), mix_logits(p_base.log(), other.log(), weight)
        y, top, zero = int(prob.argmax()), int(logit.argmax()), (p_base == 0) | (other == 0)
        out[name] = {"token": nt.tokens[y], "id": y, "p_prob": float(prob[y]), "p_logit": float(logit[y]),
                     "logit_token": nt.tokens[top], "logit_id": top, "logit_p": float(logit[top]),
                     "tv": float((prob - logit).abs().sum() / 2), "ruled_out": int(zero.sum()),
                     "ruled_out_prob": float(prob[zero].sum()), "ruled_out_logit": float(logit[zero].sum())}
        if name == "memdec":
            dists = {"base": p_base, "memdec": other, "mix_memdec": prob, "logit_memdec": logit}
            out["rows"] = [{"id": i, "token": nt.tokens[i], **{d: float(p[i]) for d, p in dists.items()}}
                           for i in shared_axis(dists, check("top_n", n, int)).tolist()]
    return out


def reweighted(nt: NextToken, k: int, temperature: float) -> torch.Tensor:
    """p_kNN from the cached neighbours at another k (at most the k retrieved) and T, without a new search: the
    first k of the K nearest are the k nearest, so this is what a search at k and T gives."""
    if nt.p_knn is None:
        raise InputError(nt.knn_missing or NO_CORPUS)
    k = check("k", k, int, (1, nt.k))
    temperature = check("temperature", temperature)
    return knn_probs(nt.distances[None, :k], nt.values[None, :k], temperature, nt.p_knn.shape[0])[0]


def reweighting(nt: NextToken, k: int, temperature: float, n: int = DEFAULTS["top_n"]) -> dict:
    """p_kNN at k and T beside the comparison's own, on the top n tokens of either, and each neighbour's weight w_i
    both ways (nearest first; 0 past k)."""
    p = reweighted(nt, k, temperature)
    k, temperature = check("k", k, int, (1, nt.k)), check("temperature", temperature)
    weights = knn_weights(nt.distances[:k], temperature).tolist() + [0.0] * (nt.k - k)
    return {"k": k, "temperature": temperature, "compared_k": nt.k, "compared_temperature": nt.temperature,
            "rows": [{"id": i, "token": nt.tokens[i], "p_knn": float(p[i]), "p_knn_compared": float(nt.p_knn[i])}
                     for i in shared_axis({"p": p, "compared": nt.p_knn}, check("top_n", n, int)).tolist()
                     if p[i] > 0 or nt.p_knn[i] > 0],  # only the tokens some neighbour predicts
            "weights": weights, "weights_compared": knn_weights(nt.distances, nt.temperature).tolist(),
            "next": [nt.tokens[v] for v in nt.values.tolist()]}


def to_dict(nt: NextToken, weights: Weights | float, n: int = DEFAULTS["top_n"]) -> dict:
    """The plain-JSON comparison that the API and the CLI return and the page exports."""
    w = Weights.of(weights)
    dists = mixtures(nt, w)
    n = check("top_n", n, int)
    top = {name: [{"token": nt.tokens[i], "id": int(i), "p": float(p[i])} for i in p.topk(n).indices.tolist()]
           for name, p in dists.items()}
    return {"prompt": nt.prompt, "base": nt.base, "domain": nt.domain, "alpha": w.alpha, "knn_lambda": w.knn_lambda,
            "lock_alpha": w.locked, "k": nt.k,
            "temperature": nt.temperature, "prompt_tokens_dropped": nt.cut, "top": top, "axis": rows(nt, w, n),
            "latency_ms": nt.latency_ms, "latency_runs": nt.repeats, "latency_batch": nt.batch,
            "imitation": imitation(nt), "neighbours": nt.neighbours,
            "knn_by_token": per_token(nt), "teach": teach(nt, w, n),
            **(nt.unavailable.fields() if nt.unavailable else ANSWERED)}

