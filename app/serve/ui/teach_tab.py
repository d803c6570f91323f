"""The Teach tab: a guided walk through the page for a lecture; the two formulas with this comparison's numbers
substituted (from compare.teach); the same mixture taken the wrong way, in logit space; and T and k re-weighting the
cached neighbours, so p_kNN sharpens or flattens at once without a new search."""
import math
from dataclasses import dataclass

import gradio as gr

from .. import compare
from ..contract import check
from ..plots import knn_reweighted, label, logit_mixture
from .common import shown
from .settings_row import PAGE_TOP_N

GUIDE = """1. **Compare**: run the prompt. Top: the three predictors on one token axis (base, Memory Decoder, kNN-LM);
   bottom: the two mixtures, each bar split into its two parts.
2. **Teach** (here): the interpolation with this token's numbers, then the same two models mixed in logit space, the
   common mistake: compare the two bars and the distance between them.
3. **Teach**, below: move T and k. The kNN-LM's p_kNN is a softmax over the neighbours' distances; a low T gives
   nearly all the weight to the nearest, a high T spreads it.
4. **Neighbours**: where p_kNN comes from, the retrieved corpus text, each neighbour's next token and its weight.
5. **Imitation**: how close the Memory Decoder is to the kNN-LM it was trained to imitate (KL, top-token overlap),
   next to the base.
6. **Score**: a passage token by token: where the memory raises p(actual token), and the perplexity against α.
7. **Cost**: what each costs per token as the datastore grows; the Memory Decoder's cost does not grow."""

LOG_T = (-2.0, 4.0)  # the T slider reads log10 T: T from 0.01 to 10000, the contract's range


def teach_text(t: dict, missing: str | None = None) -> str:
    return memdec_text(t["alpha"], t["memdec"]) + "\n\n" + (
        knn_text(t["knn_lambda"], t["knn"], t["locked"]) if t["knn"] else f"### kNN-LM\n{missing or compare.NO_CORPUS}")


def memdec_text(a: float, m: dict) -> str:
    log_formula = (rf"\log p(y) = \mathrm{{logaddexp}}\big(\log p_{{\mathrm{{base}}}}(y) + \log(1-\alpha),\ "
                   rf"\log p_{{\mathrm{{mem}}}}(y) + \log\alpha\big) = {m['log_p_mix']:.4f} = "
                   rf"\ln {m['exp_log_p_mix']:.4g}")
    return rf"""### Base + Memory Decoder
$$p(y) = \alpha\,p_{{\mathrm{{mem}}}}(y) + (1-\alpha)\,p_{{\mathrm{{base}}}}(y)$$
For the mixture's most likely next token, y = `{label(m['token'])}`:
$$p(y) = {a:.2f} \times {m['p_mem']:.4g} + {1 - a:.2f} \times {m['p_base']:.4g} = \mathbf{{{m['p_mix']:.4g}}}$$
The same number in log space, as a stable implementation computes it:
$${log_formula}$$
Mixing logits instead gives a different (and wrong) model: see below."""


def knn_text(a: float, n: dict, locked: bool = False) -> str:
    """a: the kNN-LM's weight, lambda, or alpha itself when both are locked to one alpha (then written α)."""
    w = r"\alpha" if locked else r"\lambda"
    weights_formula = (r"w_i = \frac{\exp(-d_i/T)}{\sum_{j=1}^{k} \exp(-d_j/T)}, \qquad "
                       r"p_{\mathrm{kNN}}(v) = \sum_{i:\,v_i = v} w_i")
    mix_formula = (rf"p_{{\mathrm{{kNN}}}}(z) = {n['p_knn']:.4g}, \qquad p(z) = {w}\,p_{{\mathrm{{kNN}}}}(z) "
                   rf"+ (1-{w})\,p_{{\mathrm{{base}}}}(z) = {a:.2f} \times {n['p_knn']:.4g} "
                   rf"+ {1 - a:.2f} \times {n['p_base']:.4g} = \mathbf{{{n['p_mix']:.4g}}}")
    weighting = (f"both mixtures are at one α here (the lock), so the kNN-LM is mixed at α = {a:.2f} as well"
                 if locked else f"the kNN-LM is mixed at its own weight λ = {a:.2f}")
    return rf"""### kNN-LM
$${weights_formula}$$
Here k = {n['k']}, T = {n['temperature']:g}; the nearest key is at squared distance d₁ = {n['nearest_distance']:.4g},
weight w₁ = {n['nearest_weight']:.4g}, and was followed by `{label(n['nearest_next'])}`. For z = `{label(n['token'])}`,
{n['neighbours']} of the {n['k']} neighbours continue with it; {weighting}:
$${mix_formula}$$

### The difference
The kNN-LM searches {n['k']} neighbours in a datastore at every token; the Memory Decoder reads only tokens, one small
forward pass, and was trained so that p_mem imitates p_kNN. The latency chart on the Compare tab shows the cost
of each."""


def logit_text(t: dict) -> str:
    m, k = t["logit"]["memdec"], t["logit"]["knn"]
    formula = (r"p_{\mathrm{logit}} = \mathrm{softmax}\big(\alpha\,z_{\mathrm{mem}} "
               r"+ (1-\alpha)\,z_{\mathrm{base}}\big)"
               r"\ \propto\ p_{\mathrm{mem}}^{\,\alpha}\; p_{\mathrm{base}}^{\,1-\alpha}")
    out = rf"""### The mistake: mixing logits
$${formula}$$
(z: the log-probabilities; a model's logits differ from them by a constant that the softmax cancels.) At
α = {t['alpha']:.2f}, for y = `{label(m['token'])}`: the interpolation gives p(y) = **{m['p_prob']:.4g}**, the logit
mixture **{m['p_logit']:.4g}**, and its own top token is `{label(m['logit_token'])}` ({m['logit_p']:.4g}). The
total-variation distance between the two mixtures is **{m['tv']:.4f}** (0: the same model). The logit mixture is a
product of experts: a token that either model rules out stays ruled out, whatever the other says, where the
interpolation keeps (1−α)·p_base of it. The paper interpolates probabilities."""
    if k is None:
        return out
    w = "α" if t["locked"] else "λ"
    return out + f"""

With the kNN-LM ({w} = {t['knn_lambda']:.2f}) the mistake is starker: p_kNN is 0 on the {k['ruled_out']} tokens no
neighbour predicts. The interpolation gives them {k['ruled_out_prob']:.1%} of its mass, the logit mixture
{k['ruled_out_logit']:.2g}: it can only predict what a neighbour predicted. For y = `{label(k['token'])}`:
{k['p_prob']:.4g} interpolated, {k['p_logit']:.4g} in logit space; total-variation distance **{k['tv']:.4f}**."""


def temperature(nt: compare.NextToken, log_t) -> float:
    """T from the slider; its mark of the comparison's T (log10 T rounded to the slider's step) is that T exactly."""
    log_t = check("log10 T", log_t, float, LOG_T)
    return nt.temperature if log_t == round(math.log10(nt.temperature), 2) else 10 ** log_t


@dataclass
class TeachTab:
    text: gr.Markdown
    logit: gr.Markdown
    logit_plot: gr.Plot
    k: gr.Slider
    log_t: gr.Slider
    knn_note: gr.Markdown
    knn_plot: gr.Plot
    remixes = True

    @property
    def outputs(self) -> list:
        return [self.text, self.logit, self.logit_plot]

    def show(self, nt: compare.NextToken, weights, top_n: int) -> dict:
        t = compare.teach(nt, weights, top_n)
        return {self.text: teach_text(t, nt.knn_missing), self.logit: logit_text(t),
                self.logit_plot: logit_mixture(t["logit"]["rows"], t["alpha"])}

    def wire_state(self, state: gr.State, answered: list):
        """T and k re-weight the comparison's cached neighbours (state: its NextToken); each event that answers a
        comparison (answered: a click, or the kNN-LM filling in) sets them back to its own T and k."""
        controls = [self.k, self.log_t, self.knn_note, self.knn_plot]

        @shown
        def on_compared(nt):
            if nt.p_knn is None:
                off = gr.update(interactive=False)
                return off, off, f"T and k re-weight the kNN-LM's neighbours, and there is none: {nt.knn_missing}", None
            return (gr.update(maximum=nt.k, value=nt.k, interactive=True),
                    gr.update(value=round(math.log10(nt.temperature), 2), interactive=True),
                    f"The comparison retrieved {nt.k} neighbours at T = {nt.temperature:g}: any k up to {nt.k} and "
                    "any T re-weight them here, without a new search (log₁₀ T: 0 is T = 1, 1 is T = 10).",
                    knn_reweighted(compare.reweighting(nt, nt.k, nt.temperature, PAGE_TOP_N)))

        @shown
        def on_move(nt, k, log_t):
            if nt is None or nt.p_knn is None:
                return gr.skip()  # nothing to re-weight; the note says why
            return knn_reweighted(compare.reweighting(nt, k, temperature(nt, log_t), PAGE_TOP_N))

        for event in answered:
            event.success(on_compared, state, controls, api_visibility="private", queue=False)
        gr.on([self.k.release, self.log_t.release], on_move, [state, self.k, self.log_t], self.knn_plot,
              api_name="teach_reweight", api_visibility="private", queue=False, trigger_mode="always_last")


def build() -> TeachTab:
    with gr.Tab("Teach"):
        with gr.Accordion("A guided walk for a lecture: which tab, in what order, and what to look at", open=True):
            gr.Markdown(GUIDE)
        text = gr.Markdown("Run a comparison first.", elem_id="teach-text")
        logit = gr.Markdown(elem_id="teach-logit")
        logit_plot = gr.Plot(label="probability mixture against logit mixture", elem_id="teach-logit-plot")
        gr.Markdown("### T and k: how p_kNN is made")
        with gr.Row():
            k = gr.Slider(1, 16, value=16, step=1, label="k: neighbours used (the nearest first)", interactive=False,
                          elem_id="teach-k")
            log_t = gr.Slider(*LOG_T, value=0.0, step=0.01, label="log₁₀ T: lower sharpens p_kNN, higher flattens it",
                              interactive=False, elem_id="teach-log-t")
        knn_note = gr.Markdown("Run a comparison first.", elem_id="teach-knn-note")
        knn_plot = gr.Plot(label="p_kNN re-weighted", elem_id="teach-knn-plot")
    return TeachTab(text, logit, logit_plot, k, log_t, knn_note, knn_plot)
