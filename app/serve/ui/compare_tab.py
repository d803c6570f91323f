"""The Compare tab: the three predictors and the two mixtures on one token axis, the latency per component, the
same numbers as a table and an export. It also runs the comparison that the Neighbours, Imitation and Teach tabs
show, and re-mixes them all when a weight, the lock or the token count changes."""
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .. import compare, plots
from ..engine import Engine, InputError, Weights
from .common import MODEL_SLOTS, limited, on_gpu, progress_bar, shown
from .exports import export_files
from .settings_row import SettingsRow


def axis_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"token": plots.label(r["token"]), "id": r["id"],
                          **{plots.NAMES[k]: round(r[k], 5) for k in plots.NAMES}} for r in rows])


@dataclass
class CompareTab:
    distributions: gr.Plot
    latency: gr.Plot
    precise: gr.Checkbox
    axis: gr.Dataframe
    export: gr.Button
    files: gr.File
    remixes = True  # what it shows depends on the weights and the token count

    @property
    def outputs(self) -> list:
        return [self.distributions, self.latency, self.axis, self.files]  # files: emptied by each new comparison

    def show(self, nt: compare.NextToken, w: Weights, top_n: int) -> dict:
        rows = compare.rows(nt, w, top_n)
        return {self.distributions: plots.distributions(rows, w),
                self.latency: plots.latency(nt.latency_ms, nt.repeats, max(nt.batch.values(), default=1)),
                self.axis: axis_frame(rows), self.files: None}


def build() -> CompareTab:
    with gr.Tab("Compare"):
        distributions = gr.Plot(label="distributions", elem_id="dist-plot")
        with gr.Row():
            with gr.Column():
                latency = gr.Plot(label="latency", elem_id="latency-plot")
                precise = gr.Checkbox(label="measure precisely (each component alone, the median of 3 runs)")
            with gr.Column():
                axis = gr.Dataframe(label="probabilities on the shared axis", wrap=True)
                export = gr.Button("Export this comparison (JSON, CSV)", elem_id="export-button")
                files = gr.File(label="exported comparison", file_count="multiple", interactive=False)
    return CompareTab(distributions, latency, precise, axis, export, files)


def wire(engine: Engine, row: SettingsRow, views: list):
    """views: every tab that shows a comparison (this one first); each has outputs, show() and remixes. Returns the
    comparison event."""
    state = gr.State()
    outputs = [state] + [c for view in views for c in view.outputs]
    for view in [v for v in views if hasattr(v, "wire_state")]:  # events of its own that read the comparison
        view.wire_state(state)

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
                                  k=k, temperature=temperature)
        nt = compare.next_token(engine, resolved, text, progress_bar(progress), precise)
        return {state: nt, **show_all(nt, resolved.weights, top_n, views)}

    @shown
    def on_remix(nt, alpha, knn_lambda, lock_alpha, top_n):
        """Re-mixes the cached distributions; no model runs."""
        if nt is None:
            return gr.skip()  # nothing compared yet
        w = engine.weights(nt.base, nt.domain, alpha, knn_lambda, lock_alpha)
        return show_all(nt, w, top_n, [v for v in views if v.remixes])

    @shown
    def on_export(nt, alpha, knn_lambda, lock_alpha, top_n):
        if nt is None:
            raise InputError("compare first, then export that comparison")
        w = engine.weights(nt.base, nt.domain, alpha, knn_lambda, lock_alpha)
        return export_files("comparison", compare.to_dict(nt, w, top_n), compare.rows(nt, w, top_n), views[0].files)

    comparing = gr.on([row.run.click, row.prompt.submit], on_compare, row.model_inputs + [row.top_n, views[0].precise],
                      outputs, api_name="compare_view", api_visibility="undocumented", concurrency_id="models",
                      concurrency_limit=MODEL_SLOTS)
    gr.on([row.alpha.release, row.knn_lambda.release, row.lock_alpha.input, row.top_n.release], on_remix,
          [state, *row.weight_inputs, row.top_n],
          [c for view in views if view.remixes for c in view.outputs],
          api_name="remix", api_visibility="undocumented", queue=False)
    views[0].export.click(on_export, [state, *row.weight_inputs, row.top_n], views[0].files, api_name="compare_export",
                          api_visibility="undocumented")
    return comparing
