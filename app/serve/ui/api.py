"""The plain-JSON endpoints /compare, /generate and /score: the functions of app.serve.endpoints with the
engine's defaults filled in, so gradio_client and raw HTTP callers see a documented signature."""
import gradio as gr

from .. import endpoints
from ..engine import DEFAULTS, Engine
from .common import MODEL_SLOTS, limited, on_gpu, shown


def add(engine: Engine):
    default_base, default_domain = engine.default_base, engine.default_domain

    @shown
    @limited
    @on_gpu
    def compare(text: str, base: str = default_base, domain: str = default_domain, alpha: float | None = None,
                k: int | None = None, temperature: float | None = None, top_n: int = DEFAULTS["top_n"],
                precise: bool = False) -> dict:
        """Next-token distributions of base, memdec, knn and the two mixtures, neighbours, imitation and teach
        numbers; latency_ms per component (precise: each alone, the median of 3 runs)."""
        return endpoints.compare_json(engine, text, base, domain, alpha, k, temperature, top_n, precise=precise)

    @shown
    @limited
    @on_gpu
    def generate(text: str, base: str = default_base, domain: str = default_domain, max_new_tokens: int = DEFAULTS["max_new_tokens"],
                 sample: bool = False, seed: int = 0, alpha: float | None = None, k: int | None = None,
                 temperature: float | None = None) -> dict:
        """Continuations of base, base + MemDec and base + kNN-LM, each with its own KV cache, and ms per token."""
        return endpoints.generate_json(engine, text, base, domain, max_new_tokens, sample, seed, alpha, k, temperature)

    @shown
    @limited
    @on_gpu
    def score(text: str, base: str = default_base, domain: str = default_domain, alpha: float | None = None,
              k: int | None = None, temperature: float | None = None) -> dict:
        """Per-token probabilities and gains, perplexities and perplexity against alpha for a passage."""
        return endpoints.score_json(engine, text, base, domain, alpha, k, temperature)

    for fn in (compare, generate, score):
        gr.api(fn, api_name=fn.__name__, concurrency_id="models", concurrency_limit=MODEL_SLOTS)
