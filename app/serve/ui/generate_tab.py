"""The Generate tab: greedy or seeded sampled continuations of base, base + MemDec and base + kNN-LM, side by side,
with the time per token of each."""
from dataclasses import dataclass

import gradio as gr

from .. import generate, plots
from ..engine import DEFAULTS, LIMITS, Engine
from .common import MODEL_SLOTS, limited, on_gpu, progress_bar, shown
from .settings_row import SettingsRow

PREDICTORS = ("base", "mix_memdec", "mix_knn")
NO_KNN = "(no live kNN-LM: this memory has no corpus here)"


@dataclass
class GenerateTab:
    max_new_tokens: gr.Slider
    sample: gr.Checkbox
    seed: gr.Number
    run: gr.Button
    texts: dict  # predictor -> gr.Textbox
    speed: gr.Plot


def build() -> GenerateTab:
    with gr.Tab("Generate"):
        with gr.Row():
            max_new_tokens = gr.Slider(1, LIMITS["max_new_tokens"][1], value=DEFAULTS["max_new_tokens"], step=1,
                                       label="new tokens")
            sample = gr.Checkbox(label="sample (instead of greedy)")
            seed = gr.Number(value=0, precision=0, label="seed")
            run = gr.Button("Generate", variant="primary", elem_id="generate-button")
        with gr.Row():
            texts = {name: gr.Textbox(label=plots.NAMES[name], lines=5) for name in PREDICTORS}
        speed = gr.Plot(label="time per token")
    return GenerateTab(max_new_tokens, sample, seed, run, texts, speed)


def wire(engine: Engine, row: SettingsRow, tab: GenerateTab):
    @shown
    @limited
    @on_gpu
    def on_generate(text, base, domain, alpha, knn_lambda, lock_alpha, k, temperature, max_new_tokens, sample, seed,
                    progress=gr.Progress()):
        resolved = engine.resolve(base=base, domain=domain, alpha=alpha, knn_lambda=knn_lambda, lock_alpha=lock_alpha,
                                  k=k, temperature=temperature)
        result = generate.generate(engine, resolved, text, max_new_tokens, sample, seed, progress_bar(progress))
        texts = {name: result["continuations"][name]["text"] if name in result["continuations"] else NO_KNN
                 for name in PREDICTORS}
        return {**{tab.texts[name]: text for name, text in texts.items()}, tab.speed: plots.generation_speed(result)}

    return tab.run.click(on_generate, row.model_inputs + [tab.max_new_tokens, tab.sample, tab.seed],
                         [*tab.texts.values(), tab.speed], api_name="generate_view", api_visibility="undocumented",
                         concurrency_id="models", concurrency_limit=MODEL_SLOTS)
