"""The Gradio 6 page and API: one settings row that every tab reads, one module per tab (layout, handlers and
wiring together), and the plain-JSON endpoints. All numbers come from the engine."""
import gradio as gr  # noqa: I001 (the hand-wrapped import below)

from ..engine import Engine
from . import (api, compare_tab, cost_tab, generate_tab, imitation_tab, memory_tab, models_panel, neighbours_tab,
               score_tab, settings_row, teach_tab)
from . import batch_tab, which_memory_tab
from .common import Page
from .launch_settings import SETTINGS

INTRO = """# Memory Decoder Explorer
A **base** language model, a **Memory Decoder** (a small LM trained to imitate a retriever over a domain corpus) and
the **live kNN-LM** retriever it imitates, side by side on the same next token. Mixtures are taken in probability
space, `p = α·p_other + (1−α)·p_base`. Timings are wall-clock on this machine, warm models, of the call that served
the request (concurrent requests share batched calls); tick *measure precisely* for each component alone, the median
of 3 runs."""
CSS = (".tok { border-radius: 3px; padding: 0 1px; white-space: pre-wrap; } .gain p { line-height: 1.9; } "
       ".continuation { white-space: pre-wrap; } .continuation .prompt { color: #888; } "
       ".pending progress { width: 12em; vertical-align: middle; }")
THEME = gr.themes.Soft()


def build(engine: Engine) -> gr.Blocks:
    with Page(title="Memory Decoder Explorer", **SETTINGS.blocks()) as demo:
        gr.Markdown(INTRO)
        panel = models_panel.build()
        row = settings_row.build(engine)
        with gr.Tabs():
            comparison_views = [compare_tab.build(), neighbours_tab.build(), imitation_tab.build(), teach_tab.build()]
            generation = generate_tab.build()
            scoring = score_tab.build()
            surveying = which_memory_tab.build()
            batching = batch_tab.build()
            costs = cost_tab.build()
            yours = memory_tab.build()
        model_events = [compare_tab.wire(engine, row, comparison_views), generate_tab.wire(engine, row, generation),
                        score_tab.wire(engine, row, scoring), which_memory_tab.wire(engine, row, surveying),
                        batch_tab.wire(engine, row, batching), cost_tab.wire(engine, row, costs),
                        memory_tab.wire(engine, row, yours)]
        models_panel.wire(engine, panel, demo, model_events)
        api.add(engine)
    return demo.queue(**SETTINGS.queue())


def launch_options() -> dict:
    """What Blocks.launch takes from the app: theme, style, and the settings for a public Space."""
    return {"theme": THEME, "css": CSS, **SETTINGS.launch()}


def launch(engine: Engine, **options):
    """Serves the page; options go to Blocks.launch (port, threading, ...)."""
    demo = build(engine)
    demo.launch(**launch_options(), **options)
    return demo
