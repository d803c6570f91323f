"""The page's exports, written once for every tab: a result as JSON (what the API returns) and its table as CSV, into
a folder removed at once, after Gradio has copied the files into its cache (which delete_cache empties,
app.serve.ui.launch_settings); and the export button that reads the answer a tab keeps in its state."""
import json
import tempfile
from pathlib import Path

import gradio as gr

from ..engine import InputError
from ..tables import to_csv
from .common import shown


def export_files(name: str, result: dict, table: list[dict], files: gr.File) -> list[str]:
    """name.json (result) and name.csv (table, one row a dict: app.serve.tables.to_csv)."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as folder:
        written = [Path(folder) / f"{name}.json", Path(folder) / f"{name}.csv"]
        written[0].write_text(json.dumps(result, indent=1))
        written[1].write_text(to_csv(table))
        return [files.move_resource_to_block_cache(path) for path in written]


def wire_export(button: gr.Button, files: gr.File, name: str, state: gr.State, missing: str, contents,
                inputs: list = (), api_name: str | None = None):
    """button writes name.json and name.csv of the answer in state: contents(answer, *values of inputs) -> (result,
    table); missing: the sentence when nothing has been answered yet."""
    @shown
    def on_export(answer, *values):
        if answer is None:
            raise InputError(missing)
        return export_files(name, *contents(answer, *values), files)

    button.click(on_export, [state, *inputs], files, api_name=api_name or f"{name}_export",
                 api_visibility="undocumented")
