"""The Generate tab: greedy or seeded sampled continuations of base, base + MemDec and base + kNN-LM, side by side,
each after its prompt and with why it stopped, the time per token of each, and an export."""
import html
from dataclasses import dataclass

import gradio as gr

from .. import generate, plots
from ..builds import Unavailable
from ..engine import DEFAULTS, LIMITS, Engine
from . import pending
from .common import MODEL_SLOTS, limited, on_gpu, progress_bar, shown
from .exports import wire_export
from .settings_row import SettingsRow
from .visitors import current

PREDICTORS = ("base", "mix_memdec", "mix_knn")


@dataclass
class Generated:
    """A generation as the tab keeps it: generate.generate's answer, which holds its request, so that it can be
    asked again when the kNN-LM is ready."""
    result: dict

    @property
    def unavailable(self) -> Unavailable | None:
        missing = self.result["knn_unavailable"]
        return Unavailable(missing, self.result["knn_building"]) if missing else None

    @property
    def base(self) -> str:
        return self.result["base"]

    @property
    def domain(self) -> str:
        return self.result["domain"]


def continuation_html(result: dict, name: str) -> str:
    """The prompt in grey, the continuation after it, and a line saying why it stopped and what a token cost."""
    prompt = html.escape(result["prompt"])
    if name not in result["continuations"]:
        why = result["knn_unavailable"] or "no live kNN-LM"
        return (f"<div class='continuation'><span class='prompt'>{prompt}</span>"
                f"<p><small>{html.escape(why)}</small></p></div>")
    run = result["continuations"][name]
    return (f"<div class='continuation'><span class='prompt'>{prompt}</span><b>{html.escape(run['text'])}</b>"
            f"<p><small>{len(run['tokens'])} tokens: {html.escape(run['stopped'])}; "
            f"{run['ms_per_token']:.1f} ms per token</small></p></div>")


def table(result: dict) -> list[dict]:
    """One row per continuation, for the CSV export."""
    return [{"predictor": name, "prompt": result["prompt"], "text": run["text"], "tokens": len(run["tokens"]),
             "stopped": run["stopped"], "ms_per_token": run["ms_per_token"]}
            for name, run in result["continuations"].items()]


@dataclass
class GenerateTab:
    max_new_tokens: gr.Slider
    sample: gr.Checkbox
    seed: gr.Number
    run: gr.Button
    knn_pending: pending.PendingBar
    texts: dict  # predictor -> gr.HTML
    speed: gr.Plot
    export: gr.Button
    files: gr.File

    @property
    def outputs(self) -> list:
        return [self.knn_pending.html, self.knn_pending.timer, *self.texts.values(), self.speed, self.files]

    def show(self, generated: Generated) -> dict:
        result = generated.result
        return {**self.knn_pending.shows(generated.unavailable), self.files: None,
                **{self.texts[name]: continuation_html(result, name) for name in PREDICTORS},
                self.speed: plots.generation_speed(result)}


def build() -> GenerateTab:
    with gr.Tab("Generate"):
        with gr.Row():
            max_new_tokens = gr.Slider(1, LIMITS["max_new_tokens"][1], value=DEFAULTS["max_new_tokens"], step=1,
                                       label="new tokens")
            sample = gr.Checkbox(label="sample (instead of greedy)")
            seed = gr.Number(value=0, precision=0, label="seed")
            run = gr.Button("Generate", variant="primary", elem_id="generate-button")
        knn_pending = pending.build("generate-pending")
        with gr.Row():
            texts = {name: gr.HTML(label=plots.NAMES[name], show_label=True, container=True,
                                   elem_id=f"generate-{name}")
                     for name in PREDICTORS}
        speed = gr.Plot(label="time per token")
        with gr.Row():
            export = gr.Button("Export these continuations (JSON, CSV)", elem_id="generate-export-button")
            files = gr.File(label="exported continuations", file_count="multiple", interactive=False)
    return GenerateTab(max_new_tokens, sample, seed, run, knn_pending, texts, speed, export, files)


def wire(engine: Engine, row: SettingsRow, tab: GenerateTab):
    state = gr.State()

    def generated(resolved, text, max_new_tokens, sample, seed, progress=None) -> dict:
        result = generate.generate(engine, resolved, text, max_new_tokens, sample, seed, progress)
        kept = Generated(result)
        return {state: kept, **tab.show(kept)}

    @shown
    @limited
    @on_gpu
    def on_generate(text, base, domain, alpha, knn_lambda, lock_alpha, k, temperature, max_new_tokens, sample, seed,
                    progress=gr.Progress()):
        resolved = engine.resolve(base=base, domain=domain, alpha=alpha, knn_lambda=knn_lambda, lock_alpha=lock_alpha,
                                  k=k, temperature=temperature, owner=current())
        return generated(resolved, text, max_new_tokens, sample, seed, progress_bar(progress))

    @shown
    @limited
    @on_gpu
    def refill(kept, *settings):
        """The generation in state asked again now that its kNN-LM's store is ready (or cannot be built)."""
        resolved = pending.resolve_again(engine, kept, *settings)
        asked = kept.result
        return generated(resolved, asked["prompt"], asked["max_new_tokens"], asked["sample"], asked["seed"])

    tab.knn_pending.wire(engine, state, refill, [*row.weight_inputs, row.k, row.temperature], [state] + tab.outputs)
    wire_export(tab.export, tab.files, "continuations", state, "generate first, then export those continuations",
                lambda kept: (kept.result, table(kept.result)), api_name="generate_export")
    return tab.run.click(on_generate, row.model_inputs + [tab.max_new_tokens, tab.sample, tab.seed],
                         [state] + tab.outputs, api_name="generate_view", api_visibility="undocumented",
                         concurrency_id="models", concurrency_limit=MODEL_SLOTS)
