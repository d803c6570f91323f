"""The Neighbours tab: the retriever's nearest datastore entries and the total weight per next token (p_kNN)."""
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .. import compare
from ..plots import label


def neighbours_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"rank": r["rank"], "distance": round(r["distance"], 3), "weight": round(r["weight"], 4),
                          "text before": r["context"].replace("\n", "⏎"), "next token": label(r["next"]),
                          "text after": r["after"].replace("\n", "⏎")} for r in rows])


def totals_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"next token": label(r["token"]), "neighbours": r["neighbours"],
                          "p kNN (summed weight)": round(r["p_knn"], 4)} for r in rows])


@dataclass
class NeighboursTab:
    neighbours: gr.Dataframe
    totals: gr.Dataframe
    remixes = False

    @property
    def outputs(self) -> list:
        return [self.neighbours, self.totals]

    def show(self, nt: compare.NextToken, alpha: float, top_n: int) -> dict:
        return {self.neighbours: neighbours_frame(nt.neighbours), self.totals: totals_frame(compare.per_token(nt))}


def build() -> NeighboursTab:
    with gr.Tab("Neighbours"):
        gr.Markdown("The kNN-LM's nearest datastore entries: the text the key saw, the token that followed it "
                    "(its value), the squared L2 distance and the weight softmax(−d/T).")
        neighbours = gr.Dataframe(label="neighbours, nearest first", wrap=True)
        totals = gr.Dataframe(label="total weight per next token = p_kNN")
    return NeighboursTab(neighbours, totals)
