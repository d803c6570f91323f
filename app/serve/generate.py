"""Side-by-side continuations of base, base + MemDec and base + kNN-LM. Each model keeps its own KV cache, so
every step reads one new token; the kNN-LM takes its query key from the base's pass over that token."""
import statistics
import time

import torch
from transformers import DynamicCache

from ..core.distributions import knn_probs, mix, model_probs
from ..core.keys import KeyCapture
from .contract import check, flag
from .engine import DEFAULTS, Engine


class Incremental:
    """One model reading a sequence chunk by chunk with its own KV cache; returns p(next) over the tokenizer."""

    def __init__(self, model, vocab: int):
        self.model, self.vocab, self.cache = model, vocab, DynamicCache(config=model.config)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids.to(self.model.device), cache=self.cache, use_cache=True)
        return model_probs(out.logits[0, -1], self.vocab).cpu()


def predictors(lm, decoder, store, vocab: int, alpha: float, k: int, temperature: float) -> dict:
    """name -> a fresh stateful function: new token ids (1, n) -> next-token distribution (no kNN-LM without a
    store)."""

    def memdec():
        step_base, step_mem = Incremental(lm, vocab), Incremental(decoder, vocab)
        return lambda ids: mix(step_base(ids), step_mem(ids), alpha)

    def knn():
        step_base = Incremental(lm, vocab)

        def step(ids):
            with KeyCapture(lm) as capture:
                p_base = step_base(ids)
            distances, _, values = store.neighbours(capture.keys[0, -1:].float().cpu().numpy(), k)
            return mix(p_base, knn_probs(distances, values, temperature, vocab)[0], alpha)
        return step

    out = {"base": lambda: Incremental(lm, vocab), "mix_memdec": memdec}
    if store is not None:
        out["mix_knn"] = knn
    return out


def generate(engine: Engine, prompt: str, base=None, domain=None, max_new_tokens=DEFAULTS["max_new_tokens"], sample=False, seed=0,
             alpha=None, k=None, temperature=None, progress=None) -> dict:
    """{predictor: {"text", "tokens", "ms_per_token"}}; greedy, or sampled from a generator seeded per predictor.
    ms_per_token is the median step time (one step = the forward passes, search and mixing for one token)."""
    steps = check("max_new_tokens", max_new_tokens, int, default=DEFAULTS["max_new_tokens"])
    seed = check("seed", seed, int, default=0)
    sample = flag("sample", sample)
    pair = engine.pair(base, domain)
    tokenizer = pair.tokenizer
    alpha = engine.alpha(pair.base, pair.domain, alpha)
    k, temperature = engine.knn_settings(pair.base, pair.domain, k, temperature)
    ids, cut = engine.encode(tokenizer, prompt, engine.context(pair.lm, pair.decoder) - steps, truncate=True)
    store = engine.datastore(pair.base, pair.domain, progress)
    out = {}
    with engine.lock, torch.no_grad():
        for name, make in predictors(pair.lm, pair.decoder, store, len(tokenizer), alpha, k, temperature).items():
            step, chunk, new, times = make(), ids, [], []
            generator = torch.Generator().manual_seed(seed)
            for _ in range(steps):
                start = time.perf_counter()
                p = step(chunk)
                token = int(torch.multinomial(p, 1, generator=generator)) if sample else int(p.argmax())
                times.append((time.perf_counter() - start) * 1000)
                if token == tokenizer.eos_token_id:
                    break
                new.append(token)
                chunk = torch.tensor([[token]])
            out[name] = {"text": tokenizer.decode(new), "tokens": [tokenizer.decode([t]) for t in new],
                         "ms_per_token": round(statistics.median(times), 3) if times else 0.0}
    return {"prompt": prompt, "base": pair.base, "domain": pair.domain, "alpha": alpha, "k": k, "temperature": temperature,
            "sample": bool(sample), "seed": seed, "prompt_tokens_dropped": cut, "continuations": out}
