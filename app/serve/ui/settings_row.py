"""The settings every tab reads: prompt, base, memory, alpha, k, T and how many tokens to show."""
from dataclasses import dataclass

import gradio as gr

from ..engine import LIMITS, Engine
from .common import shown

PAGE_TOP_N = 12  # the page has room for a few more tokens than the API returns by default


@dataclass
class SettingsRow:
    prompt: gr.Textbox
    base: gr.Dropdown
    domain: gr.Dropdown
    alpha: gr.Slider
    k: gr.Slider
    temperature: gr.Number
    top_n: gr.Slider
    run: gr.Button

    @property
    def model_inputs(self) -> list:
        """What a model call needs, in the order the handlers take it: text, base, domain, alpha, k, T."""
        return [self.prompt, self.base, self.domain, self.alpha, self.k, self.temperature]


def build(engine: Engine) -> SettingsRow:
    memory = engine.memories[engine.default_domain]
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=3, scale=3, elem_id="prompt", value="The protein binds to the receptor and")
        with gr.Column(scale=1, min_width=220):
            base = gr.Dropdown(list(engine.bases), value=engine.default_base, label="Base model")
            domain = gr.Dropdown(list(engine.memories), value=engine.default_domain, label="Memory (domain)")
    with gr.Row():
        alpha = gr.Slider(0, 1, value=memory.alpha, step=0.01, label="alpha (weight of the memory)", elem_id="alpha")
        k = gr.Slider(1, LIMITS["k"][1], value=memory.knn_k, step=1, label="kNN k (neighbours)")
        temperature = gr.Number(value=memory.knn_temperature, label="kNN temperature T", minimum=0.01)
        top_n = gr.Slider(3, 30, value=PAGE_TOP_N, step=1, label="tokens shown")
    run = gr.Button("Compare next token", variant="primary", elem_id="compare-button")
    row = SettingsRow(prompt, base, domain, alpha, k, temperature, top_n, run)

    @shown
    def memory_defaults(chosen_domain):
        memory = engine.memory(chosen_domain)[1]
        return memory.alpha, memory.knn_k, memory.knn_temperature

    domain.change(memory_defaults, domain, [alpha, k, temperature], api_name="memory_defaults",
                  api_visibility="private", queue=False)
    return row
