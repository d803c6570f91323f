"""The Score tab: the probability each predictor gives to every actual token of a passage, the perplexities, the
tokens coloured by the gain from base to mixture, and the perplexity against alpha for both mixtures."""
import html
from dataclasses import dataclass

import gradio as gr

from .. import plots, presets, score
from ..engine import Engine, Weights
from . import pending
from .common import MODEL_SLOTS, limited, on_gpu, progress_bar, shown
from .exports import wire_export
from .settings_row import SettingsRow
from .visitors import current


def gain_html(summary: dict) -> str:
    """Tokens coloured by their gain in bits: green where the mixture helps, red where it hurts (up to ±3 bits)."""
    lines = []
    for name in [n for n in ("mix_memdec", "mix_knn") if n in summary["perplexity"]]:
        spans = []
        for t in summary["tokens"]:
            gain = t["gain_bits"][name]
            colour = (f"rgba(44,160,44,{min(1, gain / 3):.2f})" if gain >= 0
                      else f"rgba(214,39,40,{min(1, -gain / 3):.2f})")
            tip = f"p base {t['base']:.4f} → {t[name]:.4f} ({gain:+.2f} bits)"
            spans.append(f'<span class="tok" style="background:{colour}" title="{html.escape(tip)}">'
                         f"{html.escape(t['token']).replace(chr(10), '⏎')}</span>")
        lines.append(f"<p><b>{plots.NAMES[name]}</b> vs base: {''.join(spans)}</p>")
    return ("<div class='gain'>" + "".join(lines) + "<p><small>green: the mixture gives the actual token more "
            "probability than the base; red: less (up to ±3 bits). Hover a token for its numbers.</small></p></div>")


def change(ppl: float | None, base: float | None) -> str:
    """A mixture's perplexity against the base's: negative helps; on text outside the memory's domain a positive
    change is what plugging the memory in costs there."""
    if ppl is None or base is None:
        return "—"
    return f"{100 * (ppl / base - 1):+.1f}%"


def perplexity_text(summary: dict) -> str:
    p = summary["perplexity"]
    rows = "".join(f"| {plots.NAMES[n]} | {'∞' if p[n] is None else f'{p[n]:.2f}'} "
                   f"| {change(p[n], p['base']) if n.startswith('mix_') else ''} |\n" for n in p)
    knows = f"The {summary['domain']} memory knows {summary['knows']}. " if summary["knows"] else ""
    weights_used = (f"both at α = {summary['alpha']:.2f}" if summary["lock_alpha"] else
                    f"MemDec at α = {summary['alpha']:.2f}, kNN-LM at λ = {summary['knn_lambda']:.2f}")
    text = (f"{knows}{presets.NARROW}\n\n| predictor | perplexity | vs base alone |\n|---|---|---|\n{rows}\n"
            "Score text outside the memory's domain to see what it costs there: a mixture above the base alone is "
            f"worse than no memory.\n\n{len(summary['tokens'])} tokens, {weights_used}")
    if summary["knn_coverage"] is None:
        return f"{text}. No kNN-LM in this answer: {summary['knn_unavailable']}"
    return (f"{text}; some neighbour predicts the actual token for {summary['knn_coverage']:.0%} of them. A passage "
            "taken from the domain's training text is in the datastore itself, so the kNN-LM will look better on it "
            "than on new text.")


@dataclass
class ScoreTab:
    passage: gr.Textbox
    run: gr.Button
    perplexities: gr.Markdown
    gain: gr.HTML
    per_token: gr.Plot
    against_alpha: gr.Plot
    knn_pending: pending.PendingBar
    export: gr.Button
    files: gr.File

    @property
    def outputs(self) -> list:
        return [self.knn_pending.html, self.knn_pending.timer, self.perplexities, self.gain, self.per_token,
                self.against_alpha, self.files]

    def show(self, scored: score.Scored, w: Weights) -> dict:
        summary = score.summary(scored, w)
        return {**self.knn_pending.shows(scored.unavailable), self.files: None,
                self.perplexities: perplexity_text(summary), self.gain: gain_html(summary),
                self.per_token: plots.token_probabilities(summary),
                self.against_alpha: plots.perplexity_vs_alpha(summary)}


def build() -> ScoreTab:
    with gr.Tab("Score"):
        passage = gr.Textbox(label="Passage", lines=4, elem_id="passage",
                             value="The enzyme catalyses the transfer of a phosphate group to the protein.")
        run = gr.Button("Score passage", variant="primary", elem_id="score-button")
        knn_pending = pending.build("score-pending")
        perplexities = gr.Markdown()
        gain = gr.HTML()
        with gr.Row():
            per_token = gr.Plot(label="per token")
            against_alpha = gr.Plot(label="perplexity against alpha")
        with gr.Row():
            export = gr.Button("Export this scoring (JSON, CSV)", elem_id="score-export-button")
            files = gr.File(label="exported scoring", file_count="multiple", interactive=False)
    return ScoreTab(passage, run, perplexities, gain, per_token, against_alpha, knn_pending, export, files)


def wire(engine: Engine, row: SettingsRow, tab: ScoreTab):
    state = gr.State()

    @shown
    @limited
    @on_gpu
    def on_score(text, base, domain, alpha, knn_lambda, lock_alpha, k, temperature, progress=gr.Progress()):
        resolved = engine.resolve(base=base, domain=domain, alpha=alpha, knn_lambda=knn_lambda, lock_alpha=lock_alpha,
                                  k=k, temperature=temperature, owner=current())
        scored = score.score(engine, resolved, text, progress_bar(progress))
        return {state: scored, **tab.show(scored, resolved.weights)}

    @shown
    @limited
    @on_gpu
    def refill(scored, *settings):
        """The passage in state scored again now that its kNN-LM's store is ready (or cannot be built)."""
        resolved = pending.resolve_again(engine, scored, *settings)
        again = score.score(engine, resolved, scored.text)
        return {state: again, **tab.show(again, resolved.weights)}

    def exported(scored, alpha, knn_lambda, lock_alpha):
        weights = engine.weights(scored.base, scored.domain, alpha, knn_lambda, lock_alpha, current())
        summary = score.summary(scored, weights)
        return summary, summary["tokens"]

    @shown
    def on_remix(scored, alpha, knn_lambda, lock_alpha):
        """Re-mixes the cached target probabilities; no model runs."""
        if scored is None:
            return gr.skip()  # nothing scored yet
        return tab.show(scored, engine.weights(scored.base, scored.domain, alpha, knn_lambda, lock_alpha, current()))

    gr.on([row.alpha.release, row.knn_lambda.release, row.lock_alpha.input], on_remix, [state, *row.weight_inputs],
          tab.outputs, api_name="score_remix", api_visibility="undocumented", queue=False)
    tab.knn_pending.wire(engine, state, refill, [*row.weight_inputs, row.k, row.temperature], [state] + tab.outputs)
    wire_export(tab.export, tab.files, "scoring", state, "score a passage first, then export it", exported,
                row.weight_inputs, api_name="score_export")
    return tab.run.click(on_score, [tab.passage] + row.model_inputs[1:], [state] + tab.outputs,
                         api_name="score_view", api_visibility="undocumented", concurrency_id="models",
                         concurrency_limit=MODEL_SLOTS)
