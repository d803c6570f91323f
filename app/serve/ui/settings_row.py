"""The settings every tab reads: prompt, base, memory, each mixture's weight (or one alpha for both), k, T and how
many tokens to show. The memory menu holds the served memories and the visitor's own uploads (app.serve.memories),
with a line under it saying what the chosen one knows."""
from dataclasses import dataclass

import gradio as gr

from .. import contract, memories
from ..engine import LIMITS, Engine
from ..presets import NARROW
from .common import shown

PAGE_TOP_N = 12  # the page has room for a few more tokens than the API returns by default


@dataclass
class SettingsRow:
    prompt: gr.Textbox
    family: gr.Dropdown
    base: gr.Dropdown
    domain: gr.Dropdown
    about: gr.Markdown
    alpha: gr.Slider
    knn_lambda: gr.Slider
    lock_alpha: gr.Checkbox
    k: gr.Slider
    temperature: gr.Number
    top_n: gr.Slider
    run: gr.Button

    @property
    def model_inputs(self) -> list:
        """What a model call needs, in the order the handlers take it: text, base, domain, alpha, lambda, lock, k, T."""
        return [self.prompt, self.base, self.domain, *self.weight_inputs, self.k, self.temperature]

    @property
    def weight_inputs(self) -> list:
        """What Engine.weights reads: alpha, lambda and the lock."""
        return [self.alpha, self.knn_lambda, self.lock_alpha]


def about_text(engine: Engine, base: str, domain: str) -> str:
    """What the memory knows and its defaults for this base, under the memory menu."""
    name, memory = engine.memory(domain)
    d = engine.defaults(base, name)
    knows = f"knows {memory.knows}" if memory.knows else f"is `{memory.decoder}`"
    extent = engine.corpus_extent(base, name)
    return (f"**{name}** {knows}. Tuned for {engine.base_name(base)}: α = {d.alpha:g} (Memory Decoder), "
            f"λ = {d.knn_lambda:g}, T = {d.temperature:g}, k = {d.k} (kNN-LM). "
            f"{extent + ' ' if extent else ''}{NARROW}")


def checked_family(engine: Engine, family) -> str | None:
    """The family a request names, one of those served (None: no family chosen)."""
    families = dict.fromkeys(engine.family.values())
    return None if family is None or not families else contract.choice("model family", family, families)


def family_choices(engine: Engine, family: str | None, visitor: str | None = None) -> tuple[list, list]:
    """The bases and memories of one preset (all of them when the engine serves a single family), memories as
    (label, name) with this visitor's own."""
    family = checked_family(engine, family)
    bases = [n for n in engine.bases if family is None or engine.family.get(n) == family]
    return bases, memories.of(engine).choices(visitor, family)


def memory_menu(engine: Engine, visitor: str, family: str | None, chosen: str | None):
    """The memory menu for this visitor, keeping the chosen memory when it is in it."""
    choices = family_choices(engine, family, visitor)[1]
    names = [name for _, name in choices]
    return gr.update(choices=choices, value=chosen if chosen in names else names[0])


def build(engine: Engine) -> SettingsRow:
    memories.of(engine)  # its registry serves the memories on disk that every visitor sees
    tuned = engine.defaults(engine.default_base, engine.default_domain)
    families = list(dict.fromkeys(engine.family.values()))
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=3, scale=3, elem_id="prompt",
                            value="The protein binds to the receptor and")
        with gr.Column(scale=1, min_width=220):
            family = gr.Dropdown(families, value=engine.family.get(engine.default_base), label="Model family",
                                 visible=len(families) > 1)
            bases, menu = family_choices(engine, engine.family.get(engine.default_base) if len(families) > 1 else None)
            base = gr.Dropdown(bases, value=engine.default_base, label="Base model")
            domain = gr.Dropdown(menu, value=engine.default_domain, label="Memory (domain)", elem_id="domain")
    about = gr.Markdown(about_text(engine, engine.default_base, engine.default_domain), elem_id="memory-knows")
    with gr.Row():
        alpha = gr.Slider(0, 1, value=tuned.alpha, step=0.01, label="α: weight of the Memory Decoder",
                          elem_id="alpha")
        knn_lambda = gr.Slider(0, 1, value=tuned.knn_lambda, step=0.01, label="λ: weight of the kNN-LM",
                               elem_id="knn-lambda")
        lock_alpha = gr.Checkbox(label="lock both to one alpha (teaching: equal weight; λ is not read)",
                                 elem_id="lock-alpha")
    with gr.Row():
        k = gr.Slider(1, LIMITS["k"][1], value=tuned.k, step=1, label="kNN k (neighbours)")
        temperature = gr.Number(value=tuned.temperature, label="kNN temperature T", minimum=0.01)
        top_n = gr.Slider(3, 30, value=PAGE_TOP_N, step=1, label="tokens shown")
    run = gr.Button("Compare next token", variant="primary", elem_id="compare-button")
    row = SettingsRow(prompt, family, base, domain, about, alpha, knn_lambda, lock_alpha, k, temperature, top_n, run)

    @shown
    def memory_defaults(chosen_base, chosen_domain):
        """The memory's own weights, k and T for this base (tuned per base), and what it knows."""
        d = engine.defaults(chosen_base, chosen_domain)
        return d.alpha, d.knn_lambda, d.k, d.temperature, about_text(engine, chosen_base, chosen_domain)

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

    gr.on([base.change, domain.change], memory_defaults, [base, domain], [alpha, knn_lambda, k, temperature, about],
          api_name="memory_defaults", api_visibility="private", queue=False)
    lock_alpha.change(lambda locked: gr.update(interactive=not locked), lock_alpha, knn_lambda,
                      api_visibility="private", queue=False)
    family.change(switch_family, family, [base, domain], api_visibility="private", queue=False)
    gr.on(None, on_load, None, domain, api_visibility="private", queue=False)
    return row
