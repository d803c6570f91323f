"""The settings every tab reads: prompt, base, memory, each mixture's weight (or one alpha for both), k, T and how
many tokens to show. The memory menu holds the served memories and the visitor's own uploads (app.serve.memories),
with a line under it saying what the chosen one knows, and example prompts of the chosen memory under the prompt
(app.serve.examples): a click fills the prompt and compares. A link can open the page on given settings (ui.links)."""
from dataclasses import dataclass

import gradio as gr

from .. import contract, examples, memories, shown_paths
from ..engine import LIMITS, Engine
from ..presets import NARROW
from . import links
from .common import shown
from .visitors import visitor

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
    examples: gr.Dataset  # the chosen memory's example prompts
    links: links.Links
    pinned: gr.State  # the weights, k and T a link gave for its base and memory (kept over the memory's defaults)

    @property
    def model_inputs(self) -> list:
        """What a model call needs, in the order the handlers take it: text, base, domain, alpha, lambda, lock, k, T."""
        return [self.prompt, self.base, self.domain, *self.weight_inputs, self.k, self.temperature]

    @property
    def weight_inputs(self) -> list:
        """What Engine.weights reads: alpha, lambda and the lock."""
        return [self.alpha, self.knn_lambda, self.lock_alpha]


def about_text(engine: Engine, base: str, domain: str, owner: str | None = None) -> str:
    """What the memory knows and its defaults for this base, under the memory menu. A memory made here speaks of its
    own text only."""
    name, memory = engine.memory(domain, owner)
    d = memory.defaults(engine.base_name(base))
    tuned = (f"α = {d.alpha:g} (Memory Decoder), λ = {d.knn_lambda:g}, T = {d.temperature:g}, k = {d.k} (kNN-LM)"
             if memory.decoder else f"λ = {d.knn_lambda:g}, T = {d.temperature:g}, k = {d.k} (kNN-LM)")
    if memory.store_root is not None:  # a memory made here: its label names it, what it knows says the rest
        return f"{memory.knows[0].upper()}{memory.knows[1:]}. Its defaults for {engine.base_name(base)}: {tuned}."
    knows = f"knows {memory.knows}" if memory.knows else f"is `{shown_paths.shown(memory.decoder)}`"
    extent = engine.corpus_extent(base, name)
    return (f"**{name}** {knows}. Tuned for {engine.base_name(base)}: {tuned}. "
            f"{extent + ' ' if extent else ''}{NARROW}")


def memory_view(engine: Engine, row: SettingsRow, base: str, domain: str, owner: str | None = None) -> dict:
    """The row's weights, k and T at the memory's defaults for this base, and the line on what it knows."""
    d = engine.defaults(base, domain, owner)
    return {row.alpha: d.alpha, row.knn_lambda: d.knn_lambda, row.k: d.k, row.temperature: d.temperature,
            row.about: about_text(engine, base, domain, owner)}


def example_prompts(engine: Engine, domain: str, owner: str | None = None):
    """The example prompts of the chosen memory (hidden when it has none)."""
    name, memory = engine.memory(domain, owner)
    found = examples.for_memory(name, memory)
    return gr.Dataset(samples=[[text] for text in found], visible=bool(found))


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
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt",
                                value="The protein binds to the receptor and")
            shown_first = examples.for_memory(*engine.memory(engine.default_domain))
            sample = gr.Dataset(components=[prompt], samples=[[text] for text in shown_first],
                                label="Examples (a click compares)", elem_id="examples", visible=bool(shown_first))
        with gr.Column(scale=1, min_width=220):
            family = gr.Dropdown(families, value=engine.family.get(engine.default_base), label="Model family",
                                 visible=len(families) > 1, elem_id="family")
            bases, menu = family_choices(engine, engine.family.get(engine.default_base) if len(families) > 1 else None)
            base = gr.Dropdown(bases, value=engine.default_base, label="Base model", elem_id="base")
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
        k = gr.Slider(1, LIMITS["k"][1], value=tuned.k, step=1, label="kNN k (neighbours)", elem_id="k")
        temperature = gr.Number(value=tuned.temperature, label="kNN temperature T", minimum=0.01,
                                elem_id="temperature")
        top_n = gr.Slider(3, 30, value=PAGE_TOP_N, step=1, label="tokens shown")
    run = gr.Button("Compare next token", variant="primary", elem_id="compare-button")
    view_links = links.Links.build()
    pinned = gr.State()
    row = SettingsRow(prompt, family, base, domain, about, alpha, knn_lambda, lock_alpha, k, temperature, top_n, run,
                      sample, view_links, pinned)

    @shown
    def memory_defaults(chosen_base, chosen_domain, link, request: gr.Request):
        """The memory's own weights, k and T for this base (tuned per base), or those a link gave for them; what it
        knows and its examples."""
        who = visitor(request)
        out = memory_view(engine, row, chosen_base, chosen_domain, who)
        if link and (link["base"], link["domain"]) == (chosen_base, chosen_domain):
            out.update({getattr(row, name): value for name, value in link["values"].items()})
        return {**out, sample: example_prompts(engine, chosen_domain, who)}

    @shown
    def switch_family(chosen_family, chosen_base, chosen_domain, request: gr.Request):
        """The family's bases and memories, keeping those chosen when they are of it (a link names all three)."""
        bases = family_choices(engine, chosen_family)[0]
        return (gr.update(choices=bases, value=chosen_base if chosen_base in bases else bases[0]),
                memory_menu(engine, visitor(request), chosen_family, chosen_domain))

    gr.on([base.change, domain.change], memory_defaults, [base, domain, pinned],
          [alpha, knn_lambda, k, temperature, about, sample], api_name="memory_defaults", api_visibility="private",
          queue=False)
    # a link's weights hold until the visitor picks another base, memory or family
    gr.on([base.input, domain.input, family.input], lambda: None, None, pinned, api_visibility="private", queue=False)
    lock_alpha.change(lambda locked: gr.update(interactive=not locked), lock_alpha, knn_lambda,
                      api_visibility="private", queue=False)
    family.change(switch_family, [family, base, domain], [base, domain], api_visibility="private", queue=False)
    # an example fills the prompt, then compares as the button does
    sample.click(lambda chosen: chosen[0], sample, prompt, api_visibility="private", queue=False).then(
        None, js="() => document.getElementById('compare-button').click()")
    return row


def open_link(engine: Engine, row: SettingsRow, tabs: gr.Tabs):
    """When the page opens: the visitor's memories in the menu, then the settings and the tab its link names
    (ui.links); and the button that writes the link of the view."""
    for tab in tabs.children:  # a tab is chosen by its id: its name
        tab.id = tab.label
    families = list(dict.fromkeys(engine.family.values()))
    default_family = row.family.value if len(families) > 1 else None

    def on_load(request: gr.Request):
        who = visitor(request)
        memories.of(engine).visible(who)  # memories made since the page was built, and this visitor's own

        def of_family(family) -> dict:
            bases, menu = family_choices(engine, family, who)
            return {"base": bases, "memory": [name for _, name in menu]}

        choices = {"tab": [tab.label for tab in tabs.children], "of_family": of_family, **of_family(default_family)}
        values, notes = links.read(dict(request.query_params), {**choices, "family": families} if families else choices)
        family = values.get("family", default_family)
        bases, menu = family_choices(engine, family, who)
        names = [name for _, name in menu]
        base = values.get("base", engine.default_base if engine.default_base in bases else bases[0])
        domain = values.get("memory", engine.default_domain if engine.default_domain in names else names[0])
        d = engine.defaults(base, domain, who)
        given = {links.WEIGHTS[key]: values[key] for key in links.WEIGHTS if key in values}
        weights = {"alpha": d.alpha, "knn_lambda": d.knn_lambda, "k": d.k, "temperature": d.temperature, **given}
        keep = gr.update()
        return (gr.update(value=family) if family else keep, gr.update(choices=bases, value=base),
                gr.update(choices=menu, value=domain), values.get("prompt", keep), *weights.values(),
                values.get("lock", keep), about_text(engine, base, domain, who), example_prompts(engine, domain, who),
                {"base": base, "domain": domain, "values": given} if given else None,
                gr.Tabs(selected=values["tab"]) if "tab" in values else keep,
                f"Left out of this link: {'; '.join(notes)}." if notes else "")

    gr.on(None, on_load, None,
          [row.family, row.base, row.domain, row.prompt, row.alpha, row.knn_lambda, row.k, row.temperature,
           row.lock_alpha, row.about, row.examples, row.pinned, tabs, row.links.note],
          api_visibility="private", queue=False)
    row.links.copy.click(None, [row.family, row.base, row.domain, row.prompt, row.alpha, row.knn_lambda,
                                row.lock_alpha, row.k, row.temperature], row.links.link, js=links.COPY_JS)
