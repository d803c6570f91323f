"""The Teach tab: the two formulas with this comparison's numbers substituted (from compare.teach)."""
from dataclasses import dataclass

import gradio as gr

from .. import compare
from ..plots import label


def teach_text(t: dict, missing: str | None = None) -> str:
    return memdec_text(t["alpha"], t["memdec"]) + "\n\n" + (knn_text(t["knn_lambda"], t["knn"]) if t["knn"] else
                                                               f"### kNN-LM\n{missing or compare.NO_CORPUS}")


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
Mixing logits instead would give a different (and wrong) model."""


def knn_text(a: float, n: dict) -> str:
    """a: the kNN-LM's weight, lambda (alpha itself when both are locked to one alpha)."""
    weights_formula = (r"w_i = \frac{\exp(-d_i/T)}{\sum_{j=1}^{k} \exp(-d_j/T)}, \qquad "
                       r"p_{\mathrm{kNN}}(v) = \sum_{i:\,v_i = v} w_i")
    mix_formula = (rf"p_{{\mathrm{{kNN}}}}(z) = {n['p_knn']:.4g}, \qquad p(z) = \lambda\,p_{{\mathrm{{kNN}}}}(z) "
                   rf"+ (1-\lambda)\,p_{{\mathrm{{base}}}}(z) = {a:.2f} \times {n['p_knn']:.4g} "
                   rf"+ {1 - a:.2f} \times {n['p_base']:.4g} = \mathbf{{{n['p_mix']:.4g}}}")
    return rf"""### kNN-LM
$${weights_formula}$$
Here k = {n['k']}, T = {n['temperature']:g}; the nearest key is at squared distance d₁ = {n['nearest_distance']:.4g},
weight w₁ = {n['nearest_weight']:.4g}, and was followed by `{label(n['nearest_next'])}`. For z = `{label(n['token'])}`,
{n['neighbours']} of the {n['k']} neighbours continue with it; the kNN-LM is mixed at its own weight λ:
$${mix_formula}$$

### The difference
The kNN-LM searches {n['k']} neighbours in a datastore at every token; the Memory Decoder reads only tokens, one small
forward pass, and was trained so that p_mem imitates p_kNN. The latency chart on the Compare tab shows the cost
of each."""


@dataclass
class TeachTab:
    text: gr.Markdown
    remixes = True

    @property
    def outputs(self) -> list:
        return [self.text]

    def show(self, nt: compare.NextToken, weights, top_n: int) -> dict:
        return {self.text: teach_text(compare.teach(nt, weights), nt.knn_missing)}


def build() -> TeachTab:
    with gr.Tab("Teach"):
        return TeachTab(gr.Markdown("Run a comparison first."))
