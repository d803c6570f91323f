"""The plain-JSON endpoints /compare, /generate, /score and /memories: the engine's functions with its defaults filled
in, so gradio_client and raw HTTP callers see a documented signature. alpha and knn_lambda left out: each mixture at its
own weight tuned for the base; lock_alpha: both at alpha (knn_lambda is not read)."""
import gradio as gr

from .. import batch as batching
from .. import endpoints
from .. import generate as generation
from .. import which_memory as survey
from ..engine import DEFAULTS, Engine
from .common import MODEL_SLOTS, limited, on_gpu, shown
from .visitors import current


def add(engine: Engine):
    default_base, default_domain = engine.default_base, engine.default_domain

    @shown
    @limited
    @on_gpu
    def compare(text: str, base: str = default_base, domain: str = default_domain, alpha: float | None = None,
                k: int | None = None, temperature: float | None = None, top_n: int = DEFAULTS["top_n"],
                knn_lambda: float | None = None, lock_alpha: bool = False, precise: bool = False) -> dict:
        """Next-token distributions of base, memdec, knn and the two mixtures, neighbours, imitation and teach
        numbers; latency_ms per component (precise: each alone, the median of 3 runs)."""
        resolved = engine.resolve(base=base, domain=domain, alpha=alpha, knn_lambda=knn_lambda, lock_alpha=lock_alpha,
                                  k=k, temperature=temperature, owner=current())
        return endpoints.compare_json(engine, resolved, text, top_n=top_n, precise=precise)

    @shown
    @limited
    @on_gpu
    def generate(text: str, base: str = default_base, domain: str = default_domain,
                 max_new_tokens: int = DEFAULTS["max_new_tokens"], sample: bool = False, seed: int = 0,
                 alpha: float | None = None, k: int | None = None, temperature: float | None = None,
                 knn_lambda: float | None = None, lock_alpha: bool = False) -> dict:
        """Continuations of base, base + MemDec and base + kNN-LM, each with its own KV cache, and ms per token."""
        resolved = engine.resolve(base=base, domain=domain, alpha=alpha, knn_lambda=knn_lambda, lock_alpha=lock_alpha,
                                  k=k, temperature=temperature, owner=current())
        return generation.generate(engine, resolved, text, max_new_tokens=max_new_tokens, sample=sample, seed=seed)

    @shown
    @limited
    @on_gpu
    def score(text: str, base: str = default_base, domain: str = default_domain, alpha: float | None = None,
              k: int | None = None, temperature: float | None = None, knn_lambda: float | None = None,
              lock_alpha: bool = False) -> dict:
        """Per-token probabilities and gains, perplexities and perplexity against alpha for a passage."""
        resolved = engine.resolve(base=base, domain=domain, alpha=alpha, knn_lambda=knn_lambda, lock_alpha=lock_alpha,
                                  k=k, temperature=temperature, owner=current())
        return endpoints.score_json(engine, resolved, text)

    @shown
    def memories(base: str = default_base) -> list:
        """The memories served: what each one's corpus is, whether it has a live kNN-LM, and its defaults for the
        base (alpha of the decoder, knn_lambda of the kNN-LM, k, temperature, block)."""
        return endpoints.memories_json(engine, base, current())

    for fn in (compare, generate, score):
        gr.api(fn, api_name=fn.__name__, concurrency_id="models", concurrency_limit=MODEL_SLOTS)
    gr.api(memories, api_name="memories", queue=False)
    add_family_views(engine)


def add_family_views(engine: Engine):
    """/which_memory and /batch: every memory of a family (None: the base's), each at its own tuned weights."""
    default_base = engine.default_base

    @shown
    @limited
    @on_gpu
    def which_memory(text: str, base: str = default_base, family: str | None = None) -> dict:
        """The passage's perplexity with base alone, base + MemDec and base + kNN-LM for every memory of the family,
        the change from the base (%), the mean gain in bits per token, and each token's gain of base + MemDec; best
        memory first. A kNN-LM not ready (its store building) or without a corpus is left out, its notes say why."""
        return survey.survey(engine, text, base, family, current())

    @shown
    @limited
    @on_gpu
    def batch(prompts: list[str] | str, base: str = default_base, family: str | None = None,
              top_n: int = DEFAULTS["top_n"]) -> dict:
        """The top_n next tokens of base, memdec, mix_memdec (and knn, mix_knn when ready) for each prompt (a list,
        or one text with a prompt per line; at most 50) and every memory of the family."""
        return batching.batch(engine, prompts, base, family, top_n, current())

    for fn in (which_memory, batch):
        gr.api(fn, api_name=fn.__name__, concurrency_id="models", concurrency_limit=MODEL_SLOTS)
