"""Side-by-side continuations of base, base + MemDec and base + kNN-LM. Each model keeps its own KV cache, so
every step reads one new token; the kNN-LM takes its query key from the base's pass over that token while the text
fits in the store's block, and from a pass over the block's worth of latest tokens after (app.serve.queries)."""
import statistics
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from ..core.distributions import knn_probs, mix, model_probs
from ..core.keys import KeyCapture
from .builds import ANSWERED
from .contract import check, flag
from .engine import DEFAULTS, Engine, Resolved
from .queries import last_keys


class Incremental:
    """One model reading a sequence chunk by chunk with its own KV cache; returns p(next) over the tokenizer."""

    def __init__(self, model, vocab: int):
        self.model, self.vocab, self.cache = model, vocab, DynamicCache(config=model.config)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids.to(self.model.device), cache=self.cache, use_cache=True)
        return model_probs(out.logits[0, -1], self.vocab).cpu()


def predictors(resolved: Resolved, store) -> dict:
    """name -> a fresh stateful function: new token ids (1, n) -> next-token distribution (no kNN-LM without a
    store); each mixture at its own weight; a kNN query reads at most the block's worth of latest tokens."""
    lm, decoder, vocab, weights = resolved.pair.lm, resolved.pair.decoder, resolved.vocab, resolved.weights
    block = resolved.block

    def memdec():
        step_base, step_mem = Incremental(lm, vocab), Incremental(decoder, vocab)
        return lambda ids: mix(step_base(ids), step_mem(ids), weights.alpha)

    def knn():
        step_base, seen = Incremental(lm, vocab), []

        def step(ids):
            seen.extend(ids[0].tolist())
            with KeyCapture(lm) as capture:
                p_base = step_base(ids)
            query = capture.keys[0, -1:] if len(seen) <= block else last_keys(lm, torch.tensor([seen[-block:]]))
            distances, _, values = store.neighbours(query.float().cpu().numpy(), resolved.k)
            return mix(p_base, knn_probs(distances, values, resolved.temperature, vocab)[0], weights.knn_lambda)
        return step

    out = {"base": lambda: Incremental(lm, vocab), "mix_memdec": memdec}
    if store is not None:
        out["mix_knn"] = knn
    return out


@dataclass
class Run:
    """One predictor's generation under way: its stateful step, the ids it reads next, its own random generator."""
    step: object
    chunk: torch.Tensor
    generator: torch.Generator
    new: list = field(default_factory=list)
    times: list = field(default_factory=list)  # ms of each step's model call
    ended: bool = False


def generate(engine: Engine, resolved: Resolved, prompt: str, max_new_tokens=DEFAULTS["max_new_tokens"], sample=False,
             seed=0, progress=None) -> dict:
    """{predictor: {"text", "tokens", "ms_per_token", "stopped"}}; greedy, or sampled from a generator seeded per
    predictor.
    ms_per_token is the median step time (one step = the forward passes, search and mixing for one token, timed
    on the real call)."""
    steps = check("max_new_tokens", max_new_tokens, int, default=DEFAULTS["max_new_tokens"])
    seed = check("seed", seed, int, default=0)
    sample = flag("sample", sample)
    pair, weights = resolved.pair, resolved.weights
    tokenizer = pair.tokenizer
    ids, cut = resolved.encode(prompt, truncate=True, reserve=steps)
    store, missing = engine.knn_store(pair.base, pair.domain, progress)
    # the predictors advance together, one model call each per token, so a long generation shares the models
    # with other requests step by step (app.serve.scheduler)
    runs = {name: Run(make(), ids, torch.Generator().manual_seed(seed))
            for name, make in predictors(resolved, store).items()}
    for _ in range(steps):
        live = [run for run in runs.values() if not run.ended]
        if not live:
            break
        calls = [(run, engine.scheduler.submit(lambda items, step=run.step: [step(items[0])], run.chunk))
                 for run in live]
        for run, call in calls:
            done = call.result()
            token = (int(torch.multinomial(done.value, 1, generator=run.generator)) if sample
                     else int(done.value.argmax()))
            run.times.append(done.ms)
            if token == tokenizer.eos_token_id:
                run.ended = True
            else:
                run.new.append(token)
                run.chunk = torch.tensor([[token]])
    out = {name: {"text": tokenizer.decode(run.new), "tokens": [tokenizer.decode([t]) for t in run.new],
                  "ms_per_token": round(statistics.median(run.times), 3) if run.times else 0.0,
                  "stopped": stop_reason(run, steps)}
           for name, run in runs.items()}
    return {"prompt": prompt, "base": pair.base, "domain": pair.domain, "alpha": weights.alpha,
            "knn_lambda": weights.knn_lambda, "lock_alpha": weights.locked, "k": resolved.k,
            "temperature": resolved.temperature,
            "max_new_tokens": steps, "sample": bool(sample), "seed": seed, "prompt_tokens_dropped": cut,
            **(missing.fields() if missing else ANSWERED), "continuations": out}


def stop_reason(run: Run, steps: int) -> str:
    """Why a continuation is as long as it is: the token limit, or the model chose to end the text."""
    if run.ended:
        return f"the model ended the text (its end-of-text token) after {len(run.new)} of {steps} tokens"
    return f"reached the {steps} new tokens asked for"
