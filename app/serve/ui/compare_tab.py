"""The Compare tab: the three predictors and the two mixtures on one token axis, the latency per component, the
same numbers as a table and an export. It also runs the comparison that the Neighbours, Imitation and Teach tabs
show, and re-mixes them all when alpha or the token count is released."""
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import compare, plots
from ..engine import Engine, Weights
from .common import on_gpu, progress_bar, shown
from .settings_row import SettingsRow, weights


def axis_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"token": plots.label(r["token"]), "id": r["id"], **{plots.NAMES[k]: round(r[k], 5) for k in plots.NAMES}}
                         for r in rows])


def export_files(nt: compare.NextToken, w: Weights, top_n: int) -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="comparison-"))
    (folder / "comparison.json").write_text(json.dumps(compare.to_dict(nt, w, top_n), indent=1))
    (folder / "comparison.csv").write_text(compare.to_csv(nt, w, top_n))
    return [str(folder / "comparison.json"), str(folder / "comparison.csv")]


@dataclass
class CompareTab:
    distributions: gr.Plot
    latency: gr.Plot
    axis: gr.Dataframe
    files: gr.File
    remixes = True  # what it shows depends on the weights and the token count

    @property
    def outputs(self) -> list:
        return [self.distributions, self.latency, self.axis, self.files]

    def show(self, nt: compare.NextToken, w: Weights, top_n: int) -> dict:
        rows = compare.rows(nt, w, top_n)
        return {self.distributions: plots.distributions(rows, w), self.latency: plots.latency(nt.latency_ms),
                self.axis: axis_frame(rows), self.files: export_files(nt, w, top_n)}


def build() -> CompareTab:
    with gr.Tab("Compare"):
        distributions = gr.Plot(label="distributions", elem_id="dist-plot")
        with gr.Row():
            latency = gr.Plot(label="latency", elem_id="latency-plot")
            with gr.Column():
                axis = gr.Dataframe(label="probabilities on the shared axis", wrap=True)
                files = gr.File(label="export this comparison (JSON, CSV)", file_count="multiple")
    return CompareTab(distributions, latency, axis, files)


def wire(engine: Engine, row: SettingsRow, views: list):
    """views: every tab that shows a comparison (this one first); each has outputs, show() and remixes. Returns the
    comparison event."""
    state = gr.State()
    outputs = [state] + [c for view in views for c in view.outputs]

    def show_all(nt, w, top_n, which) -> dict:
        out = {}
        for view in which:
            out.update(view.show(nt, w, top_n))
        return out

    @shown
    @on_gpu
    def on_compare(text, base, domain, alpha, knn_lambda, lock_alpha, k, temperature, top_n, progress=gr.Progress()):
        w = weights(engine, base, domain, alpha, knn_lambda, lock_alpha)
        nt = compare.next_token(engine, text, base, domain, k, temperature, progress_bar(progress))
        return {state: nt, **show_all(nt, w, top_n, views)}

    @shown
    def on_remix(nt, alpha, knn_lambda, lock_alpha, top_n):
        """Re-mixes the cached distributions; no model runs."""
        if nt is None:
            return {}
        w = weights(engine, nt.base, nt.domain, alpha, knn_lambda, lock_alpha)
        return show_all(nt, w, top_n, [v for v in views if v.remixes])

    comparing = gr.on([row.run.click, row.prompt.submit], on_compare, row.model_inputs + [row.top_n], outputs,
                      api_name="compare_view", api_visibility="undocumented", concurrency_id="models")
    gr.on([row.alpha.release, row.knn_lambda.release, row.lock_alpha.input, row.top_n.release], on_remix,
          [state, *row.weight_inputs, row.top_n],
          [c for view in views if view.remixes for c in view.outputs],
          api_name="remix", api_visibility="undocumented", queue=False)
    return comparing
