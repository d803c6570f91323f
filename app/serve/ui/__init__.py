"""The Gradio 6 page and API: one settings row that every tab reads, one module per tab (layout, handlers and
wiring together), and the plain-JSON endpoints. All numbers come from the engine."""
import gradio as gr  # noqa: I001 (the hand-wrapped import below)
from starlette.middleware import Middleware

from ..engine import Engine
from . import (api, compare_tab, cost_tab, generate_tab, imitation_tab, memory_tab, models_panel, neighbours_tab,
               score_tab, settings_row, teach_tab, visitors)
from . import batch_tab, which_memory_tab
from .admission import Admission
from .common import Page
from .launch_settings import SETTINGS

INTRO = """# Memory Decoder Explorer
Pick a **memory** (a domain such as law, finance or biomedicine), click one of its example prompts or write your own,
and press **Compare next token**: the base model, its Memory Decoder and the live kNN-LM it imitates each predict the
next word, side by side. Then move **α** and **λ** to mix each memory into the base, or open another tab to see the
neighbours the retriever found, score a passage or generate text."""
CSS = """.tok { border-radius: 3px; padding: 0 1px; white-space: pre-wrap; } .gain p { line-height: 1.9; }
.continuation { white-space: pre-wrap; } .continuation .prompt { color: #888; }
.pending progress { width: 12em; vertical-align: middle; }
#domain input { text-overflow: ellipsis; padding-right: 2.2em; }"""  # a long memory name ends in "..." before the arrow
# Gradio's Plot calls Plotly.Plots.resize after every update, and Plotly refuses (an uncaught "Resize must be passed a
# displayed plot div element") for a plot in a tab not shown: a resize is skipped there, and done when the tab opens.
HEAD = """<script>
(() => {
  let plotly;
  Object.defineProperty(window, "Plotly", {configurable: true, get: () => plotly, set(value) {
    plotly = value;
    const resize = value && value.Plots && value.Plots.resize;
    if (!resize || resize.guarded) return;
    value.Plots.resize = function (gd) {
      const div = typeof gd === "string" ? document.getElementById(gd) : gd;
      const display = div && div.isConnected ? getComputedStyle(div).display : "";
      if (!display || display === "none" || !div.offsetParent) return Promise.resolve(div);
      return resize.apply(this, arguments);
    };
    value.Plots.resize.guarded = true;
  }});
})();
</script>"""
THEME = gr.themes.Soft()


def build(engine: Engine) -> gr.Blocks:
    with Page(title="Memory Decoder Explorer", **SETTINGS.blocks()) as demo:
        gr.Markdown(INTRO)
        panel = models_panel.build()
        row = settings_row.build(engine)
        with gr.Tabs() as tabs:
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
        settings_row.open_link(engine, row, tabs)
        api.add(engine)
    return demo.queue(**SETTINGS.queue())


def launch_options() -> dict:
    """What Blocks.launch takes from the app: theme, style, and the settings for a public Space."""
    return {"theme": THEME, "css": CSS, "head": HEAD + visitors.VISITOR_JS, **SETTINGS.launch(),
            "app_kwargs": {"middleware": [Middleware(Admission)]}}


def launch(engine: Engine, **options):
    """Serves the page; options go to Blocks.launch (port, threading, ...)."""
    demo = build(engine)
    demo.launch(**launch_options(), **options)
    return demo
