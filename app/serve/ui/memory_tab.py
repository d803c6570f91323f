"""The "Your memory" tab: a text of the visitor's own becomes a memory (a live kNN-LM over it for the base chosen in the
settings row, usable in every tab at once), then a Memory Decoder distilled from it by a background process, with its
training curve, cancel and resume. The work is in app.serve.memories, shared with the API and the command line."""
import tempfile
import time
from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from .. import memories, uploads
from ..engine import Engine, InputError
from ..plots import COLOURS
from .common import progress_bar, shown
from .launch_settings import SETTINGS
from .settings_row import SettingsRow, checked_family, memory_menu, memory_view
from .visitors import has_token, origin
from .visitors import visitor as asking

POLL_S = 2.0  # how often the page reads a running distillation's status and loss log

INTRO = """### Bring your own memory
Give a text of your own: it is split into train and validation, and the base chosen above turns the train part into
a **kNN-LM datastore** (a progress bar shows it). That memory appears in the **Memory** menu at once, as
*kNN-LM only*: its retriever is live in every tab, but there is no Memory Decoder yet, so the Memory Decoder views
show **the base itself** (p_mem = p_base, and base + MemDec equals the base). **Distil a Memory Decoder** trains one
on the store with the pipeline's recipe in the background; when it ends, alpha is tuned on the validation part and the
same memory in the menu has its decoder too. **Download** keeps a memory (its decoder, card and text, as a .zip) and
**restore** brings it back, here or on another server.

{limits}

{privacy} Each visitor keeps at most {count} memories and {mb:,} MB on disk."""


@dataclass
class MemoryTab:
    intro: gr.Markdown
    upload: gr.File
    pasted: gr.Textbox
    name: gr.Textbox
    build: gr.Button
    mine: gr.Dropdown  # the memories this visitor may use
    steps: gr.Slider
    about: gr.Markdown
    distil: gr.Button
    cancel: gr.Button
    delete: gr.Button
    job: gr.Markdown
    curve: gr.Plot
    details: gr.JSON
    timer: gr.Timer
    download: gr.Button
    saved: gr.File  # the chosen memory as a .zip
    bundle: gr.File  # a .zip to restore
    restore: gr.Button

    @property
    def views(self) -> list:
        """What describes the chosen memory (see wire's show)."""
        return [self.steps, self.about, self.job, self.curve, self.details, self.timer]


def build() -> MemoryTab:
    with gr.Tab("Your memory"):
        intro = gr.Markdown()
        with gr.Row():
            upload = gr.File(label="text file", file_types=[".txt", ".gz", ".jsonl"], type="filepath",
                             elem_id="memory-file")
            pasted = gr.Textbox(label="or paste text", lines=6, elem_id="memory-text")
        with gr.Row():
            name = gr.Textbox(label="name (default: the file's)", max_lines=1, elem_id="memory-name")
            build_button = gr.Button("Build the memory with the chosen base", variant="primary", elem_id="memory-build")
        with gr.Row():
            # custom values pass, so that an id that is not this visitor's gets the registry's message
            mine = gr.Dropdown([], label="your memories", allow_custom_value=True, elem_id="memory-mine")
            steps = gr.Slider(1, memories.MAX_STEPS, value=memories.MIN_STEPS, step=1, elem_id="memory-steps",
                              label="training steps (set from the token count)")
        about = gr.Markdown(elem_id="memory-about")
        with gr.Row():
            distil = gr.Button("Distil a Memory Decoder", variant="primary", elem_id="memory-distil")
            cancel = gr.Button("Cancel", elem_id="memory-cancel")
            delete = gr.Button("Delete this memory", variant="stop", elem_id="memory-delete")
        job = gr.Markdown(elem_id="memory-job")
        curve = gr.Plot(label="training curve", elem_id="memory-curve")
        with gr.Row():
            with gr.Column():
                download = gr.Button("Download this memory (.zip)", elem_id="memory-download")
                saved = gr.File(label="this memory: its decoder, card and text", interactive=False,
                                elem_id="memory-zip")
            with gr.Column():
                bundle = gr.File(label="a memory's .zip, downloaded here before", file_types=[".zip"],
                                 type="filepath", elem_id="memory-bundle")
                restore = gr.Button("Restore it (the name above, if given, renames it)", elem_id="memory-restore")
        with gr.Accordion("details (as the API returns them)", open=False):
            details = gr.JSON()
        timer = gr.Timer(POLL_S, active=False)
    return MemoryTab(intro, upload, pasted, name, build_button, mine, steps, about, distil, cancel, delete, job, curve,
                     details, timer, download, saved, bundle, restore)


def about_text(memory: memories.UserMemory, described: dict, steps: int) -> str:
    tokens, docs = memory.tokens, memory.documents
    head = (f"**{memory.name}**: {docs['train']:,} documents to train on ({tokens['train']:,} tokens) and "
            f"{docs['validation']:,} held out ({tokens['validation']:,} tokens); datastore of base **{memory.base}**.")
    if described["decoder_memory"]:
        return f"{head} Distilled: its Memory Decoder is served beside its kNN-LM in every tab."
    return (f"{head} Distilling trains a decoder from `{described['decoder_starts_from']}` for {steps} steps: about "
            f"**{memories.minutes(memories.estimate_s(memory, steps))}** on this machine (estimated from the token "
            "count; longer while others use the CPU).")


def job_text(state: dict, curve) -> str:
    phase, step = state["phase"], int(curve["step"].iloc[-1]) if curve is not None else 0
    at = f"step {step} of {state.get('steps')}"
    if phase == "not started":
        return "No Memory Decoder yet."
    if phase == "done":
        ppl = " · ".join(f"{name} {value:,.1f}" for name, value in state["validation_perplexity"].items())
        took = memories.minutes(state["updated"] - state["started"])
        return (f"**Distilled** in {took}: alpha = {state['alpha']}, kNN temperature {state['temperature']} (both "
                f"tuned on validation). Validation perplexity: {ppl}.")
    if phase in ("cancelled", "stopped"):
        return f"**Stopped** at {at} ({phase}); its last checkpoint is kept: distil again to resume from there."
    if phase == "failed":
        return f"**Failed**: {state.get('error')} (its log: making/job.log in the memory's folder)."
    detail = at if phase == "training" else f"{state.get('fraction', 0):.0%}"
    return f"**Distilling**: {phase}, {detail} ({memories.minutes(time.time() - state['started'])} so far)."


def curve_figure(curve) -> go.Figure:
    """KL and CE against the step: train at every step, validation at each checkpoint."""
    fig = go.Figure()
    if curve is not None:
        for term, colour in (("kl", COLOURS["knn"]), ("ce", COLOURS["base"])):
            fig.add_scatter(x=curve["step"], y=curve[term], mode="lines", name=f"train {term.upper()}",
                            line_color=colour)
            if f"val_{term}" in curve:
                held = curve.dropna(subset=[f"val_{term}"])
                fig.add_scatter(x=held["step"], y=held[f"val_{term}"], mode="lines+markers",
                                name=f"validation {term.upper()}", line=dict(color=colour, dash="dot"))
    fig.update_layout(height=360, margin=dict(l=50, r=20, t=50, b=40), xaxis_title="step", yaxis_title="nats",
                      title="KL(p_kNN ‖ p_mem) and cross-entropy while distilling",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def intro_text(engine: Engine) -> str:
    privacy = ("Uploads are shared on this server: every visitor sees them." if engine.share_memories else
               "Your uploads are yours: other visitors do not see them. This browser keeps them for you (a cookie "
               "holds a random token), over reloads, until they are a day unused; then they are deleted.")
    return INTRO.format(limits=uploads.limits_text(), privacy=privacy, count=memories.SESSION_MEMORIES,
                        mb=memories.SESSION_BYTES // 2**20)


def wire(engine: Engine, row: SettingsRow, tab: MemoryTab):
    """Returns the build event (it loads a model, so the Models panel may follow it)."""
    registry = memories.of(engine)
    # an API client's uploads go when its session ends; a browser's last (their owner is the token it keeps)
    session = gr.State(delete_callback=lambda visitor: visitor and registry.forget(visitor))

    def mine_menu(visitor: str, chosen=None):
        found = registry.visible(visitor)
        choices = [(m.name if m.owner == visitor else f"{m.name} (shared)", m.id) for m in found]
        return gr.update(choices=choices, value=chosen if chosen in [m.id for m in found] else None)

    def show(visitor: str, memory_id: str | None, steps=None) -> dict:
        """The chosen memory's numbers, estimate, job, curve and details; the timer runs while its job does."""
        if not memory_id:
            return {tab.about: "", tab.job: "", tab.curve: curve_figure(None), tab.details: None,
                    tab.timer: gr.Timer(active=False)}
        memory = registry.get(visitor, memory_id)
        described, curve = registry.describe(memory), registry.curve(memory)
        state = described["distillation"]
        steps = steps or state.get("steps") or described["automatic_steps"]
        return {tab.steps: steps, tab.about: about_text(memory, described, steps), tab.job: job_text(state, curve),
                tab.curve: curve_figure(curve), tab.details: described, tab.timer: gr.Timer(active=state["running"])}

    def chosen(memory_id):
        if not memory_id:
            raise InputError("build a memory first, or choose one of yours")
        return memory_id

    @shown
    def on_build(upload, pasted, name, base, family, request: gr.Request, progress=gr.Progress()):
        visitor, family = asking(request), checked_family(engine, family)
        made = registry.build(visitor, name, base, upload, pasted, progress_bar(progress), origin(request))
        return {session: None if has_token(request) else visitor, tab.mine: mine_menu(visitor, made.id),
                tab.upload: None, tab.pasted: "", row.domain: memory_menu(engine, visitor, family, made.id),
                **show(visitor, made.id)}

    @shown
    def on_download(memory_id, request: gr.Request):
        with tempfile.TemporaryDirectory(prefix="memory-") as folder:
            return tab.saved.move_resource_to_block_cache(registry.export(asking(request), chosen(memory_id), folder))

    @shown
    def on_restore(bundle, name, family, request: gr.Request, progress=gr.Progress()):
        if not bundle:
            raise InputError("choose a memory's .zip first (Download this memory makes one)")
        visitor, family = asking(request), checked_family(engine, family)
        made = registry.restore(visitor, bundle, name, progress_bar(progress), origin(request))
        return {session: None if has_token(request) else visitor, tab.mine: mine_menu(visitor, made.id),
                tab.bundle: None, row.domain: memory_menu(engine, visitor, family, made.id), **show(visitor, made.id)}

    @shown
    def on_show(memory_id, request: gr.Request):
        return show(asking(request), memory_id)

    @shown
    def on_steps(memory_id, steps, request: gr.Request):
        """The estimate for another number of steps."""
        return show(asking(request), memory_id, steps)

    @shown
    def on_distil(memory_id, steps, request: gr.Request):
        visitor = asking(request)
        registry.distil(visitor, chosen(memory_id), steps)
        return show(visitor, memory_id, steps)

    @shown
    def on_cancel(memory_id, request: gr.Request):
        visitor = asking(request)
        registry.cancel(visitor, chosen(memory_id))
        return show(visitor, memory_id)

    @shown
    def on_delete(memory_id, family, domain, request: gr.Request):
        visitor = asking(request)
        registry.remove(visitor, chosen(memory_id))
        return {tab.mine: mine_menu(visitor), row.domain: memory_menu(engine, visitor, family, domain),
                **show(visitor, None)}

    @shown
    def on_tick(memory_id, family, domain, base, request: gr.Request):
        """While a job runs; once it has ended, the memory (chosen) has its decoder, with the weights tuned for it."""
        visitor = asking(request)
        out = show(visitor, memory_id)
        described = out[tab.details]
        if described and not described["distillation"]["running"]:
            out[row.domain] = memory_menu(engine, visitor, family, described["decoder_memory"] or domain)
            if base is not None and described["decoder_memory"]:  # the same entry: no change event reads it again
                out.update(memory_view(engine, row, base, memory_id, visitor))
        return out

    def on_load(request: gr.Request):
        return {tab.intro: intro_text(engine), tab.mine: mine_menu(asking(request))}

    mine, views = [tab.mine], tab.views
    built = tab.build.click(on_build, [tab.upload, tab.pasted, tab.name, row.base, row.family],
                            [session, tab.mine, row.domain, tab.upload, tab.pasted] + views,
                            api_name="memory_build", api_visibility="undocumented", concurrency_id="memory_builds",
                            concurrency_limit=SETTINGS.build_slots)
    tab.restore.click(on_restore, [tab.bundle, tab.name, row.family],
                      [session, tab.mine, row.domain, tab.bundle] + views, api_name="memory_restore",
                      api_visibility="undocumented", concurrency_id="memory_builds",
                      concurrency_limit=SETTINGS.build_slots)
    tab.download.click(on_download, mine, tab.saved, api_name="memory_download", api_visibility="undocumented")
    tab.mine.input(on_show, mine, views, api_name="memory_show", api_visibility="undocumented", queue=False)
    tab.steps.release(on_steps, mine + [tab.steps], views, api_visibility="private", queue=False)
    tab.distil.click(on_distil, mine + [tab.steps], views, api_name="memory_distil", api_visibility="undocumented")
    tab.cancel.click(on_cancel, mine, views, api_name="memory_cancel", api_visibility="undocumented")
    tab.delete.click(on_delete, mine + [row.family, row.domain], [tab.mine, row.domain] + views,
                     api_name="memory_delete", api_visibility="undocumented")
    tab.timer.tick(on_tick, mine + [row.family, row.domain, row.base],
                   [row.about, row.alpha, row.knn_lambda, row.k, row.temperature] + views + [row.domain],
                   api_name="memory_status",
                   api_visibility="undocumented", queue=False, show_progress="hidden")
    gr.on(None, on_load, None, [tab.intro, tab.mine], api_name="memory_list", api_visibility="undocumented",
          queue=False)
    return built
