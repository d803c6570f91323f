"""The Imitation tab: how close the decoder is to the retriever for this context, next to the base."""
from dataclasses import dataclass

import gradio as gr

from .. import compare


def imitation_text(m: dict | None, missing: str | None = None) -> str:
    if m is None:
        return f"### How closely the decoder imitates the retriever\n{missing or compare.NO_CORPUS}"
    return f"""### How closely the decoder imitates the retriever, for this context
| | Memory Decoder | base (for reference) |
|---|---|---|
| KL(p_kNN ‖ p) in nats | **{m['kl_knn_mem']:.3f}** | {m['kl_knn_base']:.3f} |
| top-{m['top_k']} overlap with p_kNN | **{m['overlap_mem']:.0%}** | {m['overlap_base']:.0%} |

The decoder was trained on `β·KL(p_kNN ‖ p_mem) + (1−β)·CE`; a lower KL than the base's means it carries the
retriever's knowledge without the datastore. Overlap: the share of p_kNN's top tokens (those with any mass, at most
{m['top_k']}) that are also in the model's top {m['top_k']}."""


@dataclass
class ImitationTab:
    text: gr.Markdown
    remixes = False

    @property
    def outputs(self) -> list:
        return [self.text]

    def show(self, nt: compare.NextToken, alpha: float, top_n: int) -> dict:
        return {self.text: imitation_text(compare.imitation(nt), nt.knn_missing)}


def build() -> ImitationTab:
    with gr.Tab("Imitation"):
        return ImitationTab(gr.Markdown("Run a comparison first."))
