"""The settings every tab reads: prompt, base, memory, alpha, k, T and how many tokens to show. The memory menu
holds the served memories and the visitor's own uploads (app.serve.memories)."""
from dataclasses import dataclass

import gradio as gr

from .. import contract, memories
from ..engine import LIMITS, Engine
from .common import shown

PAGE_TOP_N = 12  # the page has room for a few more tokens than the API returns by default


@dataclass
class SettingsRow:
    prompt: gr.Textbox
    family: gr.Dropdown
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


def checked_family(engine: Engine, family) -> str | None:
    """The family a request names, one of those served (None: no family chosen)."""
    families = dict.fromkeys(engine.family.values())
    return None if family is None or not families else contract.choice("model family", family, families)


def family_choices(engine: Engine, family: str | None, visitor: str | None = None) -> tuple[list, list]:
    """The bases and memories of one preset (all of them when the engine serves a single family), memories as
    (label, name) with this visitor's own."""
    family = checked_family(engine, family)
    return [n for n in engine.bases if family is None or engine.family.get(n) == family], engine.memory_choices(visitor, family)


def memory_menu(engine: Engine, visitor: str, family: str | None, chosen: str | None):
    """The memory menu for this visitor, keeping the chosen memory when it is in it."""
    choices = family_choices(engine, family, visitor)[1]
    names = [name for _, name in choices]
    return gr.update(choices=choices, value=chosen if chosen in names else names[0])


def build(engine: Engine) -> SettingsRow:
    memories.of(engine)  # its registry serves the memories on disk that every visitor sees
    alpha0, k0, t0 = engine.memories[engine.default_domain].defaults(engine.default_base)
    families = list(dict.fromkeys(engine.family.values()))
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=3, scale=3, elem_id="prompt", value="The protein binds to the receptor and")
        with gr.Column(scale=1, min_width=220):
            family = gr.Dropdown(families, value=engine.family.get(engine.default_base), label="Model family",
                                 visible=len(families) > 1)
            bases, menu = family_choices(engine, engine.family.get(engine.default_base) if len(families) > 1 else None)
            base = gr.Dropdown(bases, value=engine.default_base, label="Base model")
            domain = gr.Dropdown(menu, value=engine.default_domain, label="Memory (domain)", elem_id="domain")
    with gr.Row():
        alpha = gr.Slider(0, 1, value=alpha0, step=0.01, label="alpha (weight of the memory)", elem_id="alpha")
        k = gr.Slider(1, LIMITS["k"][1], value=k0, step=1, label="kNN k (neighbours)")
        temperature = gr.Number(value=t0, label="kNN temperature T", minimum=0.01)
        top_n = gr.Slider(3, 30, value=PAGE_TOP_N, step=1, label="tokens shown")
    run = gr.Button("Compare next token", variant="primary", elem_id="compare-button")
    row = SettingsRow(prompt, family, base, domain, alpha, k, temperature, top_n, run)

    @shown
    def memory_defaults(chosen_base, chosen_domain):
        """The memory's own alpha, k and T for this base (they differ per base in the GPT-2 family)."""
        return engine.memory(chosen_domain)[1].defaults(engine.base_name(chosen_base))

    @shown
    def switch_family(chosen_family, request: gr.Request):
        bases = family_choices(engine, chosen_family)[0]
        return gr.update(choices=bases, value=bases[0]), memory_menu(engine, memories.owner(request.session_hash),
                                                                     chosen_family, None)

    def on_load(request: gr.Request):
        """Memories made since the page was built: on the command line, or shared by other visitors."""
        memories.of(engine).visible(memories.owner(request.session_hash))
        return memory_menu(engine, memories.owner(request.session_hash), family.value if len(families) > 1 else None,
                           engine.default_domain)

    gr.on([base.change, domain.change], memory_defaults, [base, domain], [alpha, k, temperature],
          api_name="memory_defaults", api_visibility="private", queue=False)
    family.change(switch_family, family, [base, domain], api_visibility="private", queue=False)
    gr.on(None, on_load, None, domain, api_visibility="private", queue=False)
    return row
