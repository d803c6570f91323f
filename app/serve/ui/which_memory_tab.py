"""The "Which memory knows this?" tab: one passage scored against every memory of the chosen family with the chosen
base, each memory at its own tuned weights: a table of perplexities and gains, best first, a heatmap of each token's
gain per memory, and an export. The numbers are app.serve.which_memory's, shared with the API and the CLI."""
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .. import plots, which_memory
from ..engine import Engine
from .common import MODEL_SLOTS, limited, on_gpu, progress_bar, shown
from .exports import wire_export
from .settings_row import SettingsRow
from .visitors import visitor


def table_frame(result: dict) -> pd.DataFrame:
    return pd.DataFrame(which_memory.rows(result)).round(3)


@dataclass
class WhichMemoryTab:
    passage: gr.Textbox
    run: gr.Button
    table: gr.Dataframe
    gains: gr.Plot
    export: gr.Button
    files: gr.File

    @property
    def outputs(self) -> list:
        return [self.table, self.gains, self.files]  # files: emptied by each new survey

    def show(self, result: dict) -> dict:
        return {self.table: table_frame(result), self.gains: plots.memory_gains(result), self.files: None}


def build() -> WhichMemoryTab:
    with gr.Tab("Which memory knows this?"):
        gr.Markdown("One passage, the base chosen above, and **every memory of its family**, each at its own tuned "
                    "weights. Perplexity change: negative where the memory helps; bits/token: the mean gain of the "
                    "mixture over the base on each actual token. Best memory (base + MemDec) first.")
        passage = gr.Textbox(label="Passage", lines=4, elem_id="survey-passage",
                             value="The enzyme catalyses the transfer of a phosphate group to the protein.")
        run = gr.Button("Ask every memory", variant="primary", elem_id="survey-button")
        table = gr.Dataframe(label="perplexity per memory, best first", wrap=True, elem_id="survey-table")
        gains = gr.Plot(label="gain per token", elem_id="survey-plot")
        export = gr.Button("Export (JSON, CSV)", elem_id="survey-export")
        files = gr.File(label="exported survey", file_count="multiple", interactive=False)
    return WhichMemoryTab(passage, run, table, gains, export, files)


def wire(engine: Engine, row: SettingsRow, tab: WhichMemoryTab):
    state = gr.State()

    @shown
    @limited
    @on_gpu
    def on_survey(text, family, base, request: gr.Request, progress=gr.Progress()):
        result = which_memory.survey(engine, text, base, family, visitor(request),
                                     progress_bar(progress))
        return {state: result, **tab.show(result)}

    wire_export(tab.export, tab.files, "which-memory", state, "ask every memory first, then export that answer",
                lambda result: (result, which_memory.rows(result)), api_name="which_memory_export")
    return tab.run.click(on_survey, [tab.passage, row.family, row.base], [state] + tab.outputs,
                         api_name="which_memory_view", api_visibility="undocumented", concurrency_id="models",
                         concurrency_limit=MODEL_SLOTS)
