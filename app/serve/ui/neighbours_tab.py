"""The Neighbours tab: the retriever's nearest datastore entries and the total weight per next token (p_kNN), and
their export."""
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .. import compare
from ..engine import InputError
from ..plots import label
from .exports import wire_export


def neighbours_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"rank": r["rank"], "distance": round(r["distance"], 3), "weight": round(r["weight"], 4),
                          "text before": r["context"].replace("\n", "⏎"), "next token": label(r["next"]),
                          "text after": r["after"].replace("\n", "⏎")} for r in rows])


def totals_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"next token": label(r["token"]), "neighbours": r["neighbours"],
                          "p kNN (summed weight)": round(r["p_knn"], 4)} for r in rows])


def export_json(nt: compare.NextToken) -> dict:
    """What the export's JSON holds: the request, the neighbours and the total weight per next token."""
    return {"prompt": nt.prompt, "base": nt.base, "domain": nt.domain, "k": nt.k, "temperature": nt.temperature,
            "neighbours": nt.neighbours, "knn_by_token": compare.per_token(nt)}


@dataclass
class NeighboursTab:
    neighbours: gr.Dataframe
    totals: gr.Dataframe
    export: gr.Button
    files: gr.File
    remixes = False

    @property
    def outputs(self) -> list:
        return [self.neighbours, self.totals, self.files]  # files: emptied by each new comparison

    def show(self, nt: compare.NextToken, alpha: float, top_n: int) -> dict:
        return {self.neighbours: neighbours_frame(nt.neighbours), self.totals: totals_frame(compare.per_token(nt)),
                self.files: None}

    def wire_state(self, state: gr.State, answered: list):
        """The export reads the comparison that compare_tab.wire keeps in state (whichever event answered it)."""
        def exported(nt):
            if not nt.neighbours:
                raise InputError(nt.knn_missing or "this comparison has no neighbours to export")
            return export_json(nt), nt.neighbours

        wire_export(self.export, self.files, "neighbours", state, "compare first, then export its neighbours", exported)


def build() -> NeighboursTab:
    with gr.Tab("Neighbours"):
        gr.Markdown("The kNN-LM's nearest datastore entries: the text the key saw, the token that followed it "
                    "(its value), the squared L2 distance and the weight softmax(−d/T).")
        neighbours = gr.Dataframe(label="neighbours, nearest first", wrap=True)
        totals = gr.Dataframe(label="total weight per next token = p_kNN")
        export = gr.Button("Export the neighbours (JSON, CSV)", elem_id="neighbours-export")
        files = gr.File(label="exported neighbours", file_count="multiple", interactive=False)
    return NeighboursTab(neighbours, totals, export, files)
