"""The part of an answer that is still coming: while the kNN-LM's datastore builds, a tab shows base and Memory
Decoder at once and this bar under them, which a timer keeps up to date; when the store is ready the tab's request is
asked again by itself and the kNN-LM fills in. A kNN-LM that cannot be had here (no corpus, unreachable) is said once,
with no bar."""
import html
from dataclasses import dataclass

import gradio as gr

from ..builds import Unavailable
from ..engine import Engine
from .common import MODEL_SLOTS, limited, shown
from .visitors import current

POLL_S = 2.0


def bar_html(missing: Unavailable | None) -> str:
    if missing is None:
        return ""
    if not missing.building:
        return f"<div class='pending'>kNN-LM not shown: {html.escape(missing.reason)}</div>"
    value = f" value='{missing.fraction:.3f}'" if missing.fraction is not None else ""  # no value: indeterminate
    return (f"<div class='pending'><progress max='1'{value}></progress> <b>kNN-LM coming:</b> "
            f"{html.escape(missing.reason)} It appears here by itself when ready.</div>")


@dataclass
class PendingBar:
    html: gr.HTML
    timer: gr.Timer

    def shows(self, missing: Unavailable | None) -> dict:
        """The bar for an answer, its timer running while the store builds."""
        return {self.html: bar_html(missing), self.timer: gr.Timer(active=bool(missing and missing.building))}

    def wire(self, engine: Engine, state: gr.State, refill, inputs: list, outputs: list):
        """Each tick reads how far the store of the answer in state has got, without building anything; once it is
        ready (or has failed), refill(state, *inputs) asks the request again: it returns the tab's outputs, this bar
        included (shows). Returns the tick's event."""
        @shown
        @limited
        def poll(answer, *values):
            if answer is None or not (answer.unavailable and answer.unavailable.building):
                return {self.timer: gr.Timer(active=False)}  # nothing to wait for (a tick queued before a refill)
            missing = engine.knn_store(answer.base, answer.domain)[1]
            if missing is not None and missing.building:
                return {self.html: bar_html(missing)}
            return refill(answer, *values)

        return self.timer.tick(poll, [state, *inputs], list(dict.fromkeys([self.html, self.timer, *outputs])),
                               api_visibility="private", concurrency_id="models", concurrency_limit=MODEL_SLOTS,
                               show_progress="hidden")


def resolve_again(engine: Engine, answer, alpha, knn_lambda, lock_alpha, k, temperature):
    """The request of an answer kept in state (its base and memory), with the weights, k and T on the page now."""
    return engine.resolve(base=answer.base, domain=answer.domain, alpha=alpha, knn_lambda=knn_lambda,
                          lock_alpha=lock_alpha, k=k, temperature=temperature, owner=current())


def build(elem_id: str) -> PendingBar:
    return PendingBar(gr.HTML(elem_id=elem_id), gr.Timer(POLL_S, active=False))
