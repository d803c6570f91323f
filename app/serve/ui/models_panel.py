"""Which models this page serves and which are in memory now: their ids, sizes and where they run, the datastores
and what each memory knows. Refreshed when the page opens and after every request that loads models. No server path is
shown (shown_paths: models/base-small, cache/datastores/...), and on a public server nothing of a visitor's, not even
how many of their models are loaded."""
import gradio as gr
import psutil

from ..engine import PRIVATE, Engine
from ..shown_paths import shown


def panel_text(engine: Engine) -> str:
    families = sorted(set(engine.family.values())) or ["custom"]
    lines = [f"**Serving** {', '.join(families)} · bases: {', '.join(engine.bases)} · memories: "
             + ", ".join(f"{name} ({memory.knows or shown(memory.decoder)})"
                         for name, memory in list(engine.memories.items())), ""]
    loaded = [item for item in engine.loaded() if not (engine.public and item["id"] == PRIVATE)]
    if loaded:
        lines += ["| loaded | id | size | runs on |", "|---|---|---|---|"]
        for item in loaded:
            size = (f"{item['parameters'] / 1e6:,.1f}M parameters, {item['bytes'] / 2**30:.2f} GiB {item['dtype']}"
                    if "parameters" in item
                    else f"{item['entries']:,} entries ({item['index']}), {item['bytes'] / 2**30:.2f} GiB")
            lines.append(f"| {item['role']} | `{shown(item['id'])}` | {size} | {item.get('device', 'CPU (FAISS)')} |")
    else:
        lines.append("No model is loaded yet: the first request loads the chosen base and memory.")
    lines.append(f"\nProcess memory: {psutil.Process().memory_info().rss / 2**30:.2f} GiB resident.")
    return "\n".join(lines)


def build() -> gr.Markdown:
    with gr.Accordion("Models", open=False):
        return gr.Markdown(elem_id="models-panel")


def wire(engine: Engine, panel: gr.Markdown, demo: gr.Blocks, after: list):
    """after: the events that may load a model; the panel is refreshed when each has run."""
    def refresh():
        return panel_text(engine)

    demo.load(refresh, None, panel, api_visibility="private", queue=False)
    for event in after:
        event.then(refresh, None, panel, api_visibility="private", queue=False)
