"""The page's exports, written once for every tab: a result as JSON (what the API returns) and its table as CSV, into
a folder removed at once, after Gradio has copied the files into its cache (which delete_cache empties,
app.serve.ui.launch_settings)."""
import json
import tempfile
from pathlib import Path

import gradio as gr

from ..tables import to_csv


def export_files(name: str, result: dict, table: list[dict], files: gr.File) -> list[str]:
    """name.json (result) and name.csv (table, one row a dict: app.serve.tables.to_csv)."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as folder:
        written = [Path(folder) / f"{name}.json", Path(folder) / f"{name}.csv"]
        written[0].write_text(json.dumps(result, indent=1))
        written[1].write_text(to_csv(table))
        return [files.move_resource_to_block_cache(path) for path in written]
