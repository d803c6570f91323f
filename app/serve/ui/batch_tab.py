"""The Batch tab: prompts pasted (one a line) or a .txt / .csv file, each asked of every memory of the chosen family
with the chosen base, each memory at its own tuned weights: the top next tokens of every predictor as one table, and
an export. The numbers are app.serve.batch's, shared with the API and the CLI."""
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .. import batch
from ..engine import Engine
from ..plots import NAMES, label
from .common import MODEL_SLOTS, limited, on_gpu, progress_bar, shown
from .exports import wire_export
from .settings_row import SettingsRow
from .visitors import visitor


def table_frame(result: dict) -> pd.DataFrame:
    """batch.rows with visible token text and the predictors' names as the other tabs show them."""
    frame = pd.DataFrame(batch.rows(result))
    for name in [n for n in batch.PREDICTORS if n in frame]:
        frame[name] = frame[name].map(label, na_action="ignore")
    names = {n: NAMES[n] for n in batch.PREDICTORS} | {f"p {n}": f"p {NAMES[n]}" for n in batch.PREDICTORS}
    return frame.round(4).rename(columns=names)


@dataclass
class BatchTab:
    prompts: gr.Textbox
    upload: gr.File
    run: gr.Button
    table: gr.Dataframe
    export: gr.Button
    files: gr.File


def build() -> BatchTab:
    with gr.Tab("Batch"):
        gr.Markdown(f"Up to {batch.MAX_PROMPTS} prompts, each asked of **every memory of the family** with the base "
                    "chosen above, each memory at its own tuned weights: the top next tokens (as many as *tokens "
                    "shown*) of each predictor. A file, when given, is used instead of the pasted prompts: a .txt "
                    "holds one prompt a line, a .csv its column named *prompt*, else its first column.")
        with gr.Row():
            prompts = gr.Textbox(label="Prompts, one per line", lines=6, scale=2, elem_id="batch-prompts",
                                 value="The protein binds to the receptor and\nThe licence grants the")
            upload = gr.File(label="or a .txt / .csv file", file_types=[".txt", ".csv"], type="filepath", scale=1,
                             elem_id="batch-file")
        run = gr.Button("Run the batch", variant="primary", elem_id="batch-button")
        table = gr.Dataframe(label="top next tokens per prompt and memory", wrap=True, elem_id="batch-table")
        export = gr.Button("Export (JSON, CSV)", elem_id="batch-export")
        files = gr.File(label="exported batch", file_count="multiple", interactive=False)
    return BatchTab(prompts, upload, run, table, export, files)


def wire(engine: Engine, row: SettingsRow, tab: BatchTab):
    state = gr.State()

    @shown
    @limited
    @on_gpu
    def on_batch(prompts, upload, family, base, top_n, request: gr.Request, progress=gr.Progress()):
        result = batch.batch(engine, prompts, base, family, top_n, owner=visitor(request),
                             path=upload, progress=progress_bar(progress))
        return {state: result, tab.table: table_frame(result), tab.files: None}

    wire_export(tab.export, tab.files, "batch", state, "run the batch first, then export it",
                lambda result: (result, batch.rows(result)))
    return tab.run.click(on_batch, [tab.prompts, tab.upload, row.family, row.base, row.top_n],
                         [state, tab.table, tab.files], api_name="batch_view", api_visibility="undocumented",
                         concurrency_id="models", concurrency_limit=MODEL_SLOTS)
