"""The Compare tab: the three predictors and the two mixtures on one token axis, the latency per component, the
same numbers as a table and an export. It also runs the comparison that the Neighbours, Imitation and Teach tabs
show, and re-mixes them all when a weight, the lock or the token count changes."""
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .. import compare, plots
from ..engine import Engine, Weights
from . import pending
from .common import MODEL_SLOTS, limited, on_gpu, progress_bar, shown
from .exports import wire_export
from .settings_row import SettingsRow
from .visitors import current


def axis_frame(rows: list[dict]) -> pd.DataFrame:
    """The shared axis as a table: a column per distribution the comparison has (no kNN-LM ones while it is missing)."""
    return pd.DataFrame([{"token": plots.label(r["token"]), "id": r["id"],
                          **{name: round(r[key], 5) for key, name in plots.NAMES.items() if key in r}} for r in rows])


@dataclass
class CompareTab:
    knn_pending: pending.PendingBar
    distributions: gr.Plot
    latency: gr.Plot
    precise: gr.Checkbox
    axis: gr.Dataframe
    export: gr.Button
    files: gr.File
    remixes = True  # what it shows depends on the weights and the token count

    @property
    def outputs(self) -> list:
        # files: emptied by each new comparison
        return [self.knn_pending.html, self.knn_pending.timer, self.distributions, self.latency, self.axis, self.files]

    def show(self, nt: compare.NextToken, w: Weights, top_n: int) -> dict:
        rows = compare.rows(nt, w, top_n)
        return {**self.knn_pending.shows(nt.unavailable), self.distributions: plots.distributions(rows, w),
                self.latency: plots.latency(nt.latency_ms, nt.repeats, max(nt.batch.values(), default=1)),
                self.axis: axis_frame(rows), self.files: None}


def build() -> CompareTab:
    with gr.Tab("Compare"):
        knn_pending = pending.build("compare-pending")
        distributions = gr.Plot(label="distributions", elem_id="dist-plot")
        with gr.Row():
            with gr.Column():
                latency = gr.Plot(label="latency: wall-clock on this machine, warm models, of the call that served the "
                                  "request (concurrent requests share batched calls); tick measure precisely for each "
                                  "component alone, the median of 3 runs", elem_id="latency-plot")
                precise = gr.Checkbox(label="measure precisely (each component alone, the median of 3 runs)")
            with gr.Column():
                export = gr.Button("Export this comparison (JSON, CSV)", elem_id="export-button")
                files = gr.File(label="exported comparison", file_count="multiple", interactive=False)
        # the page's full width: seven columns in half of it cut the last one off
        axis = gr.Dataframe(label="probabilities on the shared axis", wrap=True, elem_id="axis-table")
    return CompareTab(knn_pending, distributions, latency, precise, axis, export, files)


def wire(engine: Engine, row: SettingsRow, views: list):
    """views: every tab that shows a comparison (this one first); each has outputs, show() and remixes, and may have
    wire_state(state, answered) for events of its own on the cached comparison (answered: the events that answer one).
    Returns the comparison event."""
    state = gr.State()
    outputs = [state] + [c for view in views for c in view.outputs]

    def show_all(nt, w, top_n, which) -> dict:
        out = {}
        for view in which:
            out.update(view.show(nt, w, top_n))
        return out

    @shown
    @limited
    @on_gpu
    def on_compare(text, base, domain, alpha, knn_lambda, lock_alpha, k, temperature, top_n, precise,
                   progress=gr.Progress()):
        resolved = engine.resolve(base=base, domain=domain, alpha=alpha, knn_lambda=knn_lambda, lock_alpha=lock_alpha,
                                  k=k, temperature=temperature, owner=current())
        nt = compare.next_token(engine, resolved, text, progress_bar(progress), precise)
        return {state: nt, **show_all(nt, resolved.weights, top_n, views)}

    @shown
    @limited
    @on_gpu
    def refill(nt, alpha, knn_lambda, lock_alpha, k, temperature, top_n):
        """The comparison in state asked again now that its kNN-LM's store is ready (or cannot be built)."""
        resolved = pending.resolve_again(engine, nt, alpha, knn_lambda, lock_alpha, k, temperature)
        again = compare.next_token(engine, resolved, nt.prompt)
        return {state: again, **show_all(again, resolved.weights, top_n, views)}

    @shown
    def on_remix(nt, alpha, knn_lambda, lock_alpha, top_n):
        """Re-mixes the cached distributions; no model runs."""
        if nt is None:
            return gr.skip()  # nothing compared yet
        w = engine.weights(nt.base, nt.domain, alpha, knn_lambda, lock_alpha, current())
        return show_all(nt, w, top_n, [v for v in views if v.remixes])

    def exported(nt, alpha, knn_lambda, lock_alpha, top_n):
        w = engine.weights(nt.base, nt.domain, alpha, knn_lambda, lock_alpha, current())
        return compare.to_dict(nt, w, top_n), compare.rows(nt, w, top_n)

    comparing = gr.on([row.run.click, row.prompt.submit], on_compare, row.model_inputs + [row.top_n, views[0].precise],
                      outputs, api_name="compare_view", api_visibility="undocumented", concurrency_id="models",
                      concurrency_limit=MODEL_SLOTS)
    gr.on([row.alpha.release, row.knn_lambda.release, row.lock_alpha.input, row.top_n.release], on_remix,
          [state, *row.weight_inputs, row.top_n],
          [c for view in views if view.remixes for c in view.outputs],
          api_name="remix", api_visibility="undocumented", queue=False)
    filling = views[0].knn_pending.wire(engine, state, refill,
                                        [*row.weight_inputs, row.k, row.temperature, row.top_n], outputs)
    for view in views:  # a view with controls of its own over the cached comparison (Teach: T and k)
        if hasattr(view, "wire_state"):
            view.wire_state(state, [comparing, filling])
    wire_export(views[0].export, views[0].files, "comparison", state, "compare first, then export that comparison",
                exported, [*row.weight_inputs, row.top_n], api_name="compare_export")
    return comparing
