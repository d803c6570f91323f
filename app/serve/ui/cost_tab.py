"""The Cost tab: time per token of base + kNN-LM as its datastore grows, per index type, next to the Memory Decoder's
fixed cost, from the benchmark's results file; the store this page serves is measured on demand as one more point."""
from dataclasses import dataclass

import gradio as gr

from .. import cost, plots
from ..engine import Engine
from .common import MODEL_SLOTS, limited, on_gpu, progress_bar, shown
from .settings_row import SettingsRow
from .visitors import current

INTRO = """### What the memory costs per token as the corpus grows
The Memory Decoder costs one more small forward pass per token whatever its corpus; the kNN-LM searches a datastore
with one entry per corpus token. The curves come from `python tools/benchmark_cost.py` (the models and the searches
timed in one run; beyond the real keys, stores are grown with synthetic keys)."""
MISSING = ("**No cost results yet.** Run `python tools/benchmark_cost.py` (10-15 minutes on 2 CPU cores; "
           "`--sizes 1e4,1e5` for a quick look) to write `assets/results/cost.json`, then restart the app. "
           "*Measure this store* works without it.")


def summary_text(results: dict | None) -> str:
    """What a visitor needs from the results: where it was measured, the per-token costs, where each index crosses 2x
    and 10x the Memory Decoder's cost, and which sizes could not be measured here (the benchmark's own bookkeeping,
    its time budget and the version of its synthetic keys, stays in the file)."""
    if results is None:
        return MISSING
    s, steps, machine = results["settings"], results["steps"], results["machine"]
    lines = [f"Measured on a {machine['cores']}-core {machine['cpu']} CPU: base `{s['base']}` "
             f"{steps['base_ms']:.2f} ms per token, base + MemDec {steps['memdec_ms']:.2f} ms "
             f"({results['ratio_memdec']:.2f}x); k = {s['k']}. "
             f"The first {s['real_entries']:,} entries are real keys of the corpus, larger stores add synthetic ones "
             "near them.", "",
             "| index | base + kNN-LM at 2x base + MemDec | at 10x |", "|---|---|---|"]
    lines += [f"| {kind} | {by_factor['2']['text']} | {by_factor['10']['text']} |"
              for kind, by_factor in results["crossovers"].items()]
    # the reason up to its first clause: "its build would take ~65 min", "its index would take ~13.0 GB"
    skipped = [f"- {r['entries']:,} entries, {r['kind']}: too large to measure here ({r['skipped'].split(' (')[0]})"
               for r in results["rows"] if "skipped" in r]
    return "\n".join(lines + (["", "Not measured:"] + skipped if skipped else []))


def current_text(point: dict) -> str:
    return (f"**This store** ({point['base']} / {point['domain']}): {point['entries']:,} entries, {point['index']}, "
            f"search {point['search_ms']:.2f} ms per query at k = {point['k']}. Per token: base "
            f"{point['base_ms']:.2f} ms, base + MemDec {point['memdec_ms']:.2f} ms ({point['ratio_memdec']:.2f}x), "
            f"base + kNN-LM {point['knn_ms']:.2f} ms ({point['ratio_knn']:.2f}x).")


@dataclass
class CostTab:
    plot: gr.Plot
    summary: gr.Markdown
    measure: gr.Button
    current: gr.Markdown


def build() -> CostTab:
    results = cost.read_results()  # read once: the benchmark runs offline, a new file needs a restart
    with gr.Tab("Cost"):
        gr.Markdown(INTRO)
        plot = gr.Plot(plots.cost_curves(results) if results else None, label="time per token", elem_id="cost-plot")
        summary = gr.Markdown(summary_text(results))
        with gr.Row():
            measure = gr.Button("Measure this store", elem_id="cost-measure-button")
            current = gr.Markdown("Measures the chosen base and memory's own store now (a few seconds).")
    return CostTab(plot, summary, measure, current)


def wire(engine: Engine, row: SettingsRow, tab: CostTab):
    @shown
    @limited
    @on_gpu
    def on_measure(base, domain, progress=gr.Progress()):
        resolved = engine.resolve(base=base, domain=domain, owner=current())
        point = cost.measure_current(engine, resolved, progress_bar(progress))
        return {tab.plot: plots.cost_curves(cost.read_results(), point), tab.current: current_text(point)}

    return tab.measure.click(on_measure, [row.base, row.domain], [tab.plot, tab.current], api_name="cost_view",
                             api_visibility="undocumented", concurrency_id="models", concurrency_limit=MODEL_SLOTS)
