"""Draws the training curves of the budget runs (assets/results/budget_curves.csv, written by the pipeline): each
model's own perplexity on the first validation blocks at every checkpoint, one line per system and budget, and
writes assets/results/budget_curves.png for the README.

    python tools/budget_curves.py
"""
import math
import sys
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.core import paths  # noqa: E402
from tools.png import write_png  # noqa: E402

COLOURS = {"memdec": "#4c78a8", "distil": "#f58518", "ce": "#54a24b", "dapt": "#e45756"}
NAMES = {"memdec": "Memory Decoder", "distil": "distilled from the key model", "ce": "CE only", "dapt": "DAPT"}
DASHES = ("dot", "dash", "solid")  # shortest budget dotted, longest solid


def figure(curves: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    budgets = sorted(curves.budget.unique())
    for system in (s for s in COLOURS if s in set(curves.system)):
        for budget, dash in zip(budgets, DASHES[-len(budgets):]):
            run = curves[(curves.system == system) & (curves.budget == budget)]
            if len(run):
                fig.add_scatter(x=run.step, y=[math.exp(ce) for ce in run.validation_ce], mode="lines+markers",
                                line=dict(color=COLOURS[system], dash=dash), marker_size=4,
                                name=f"{NAMES[system]}, {budget:,} steps")
    domains = ", ".join(sorted(curves.domain.unique()))
    fig.update_layout(title=f"{domains}: each model alone on the first 64 validation blocks, seed 0",
                      xaxis_title="step (2,048 tokens each)", yaxis_title="validation perplexity (model alone)",
                      width=960, height=560, template="plotly_white")
    fig.update_xaxes(type="log")
    return fig


def main():
    curves = pd.read_csv(paths.RESULTS / "budget_curves.csv")
    write_png(figure(curves), paths.RESULTS / "budget_curves.png", 1000, 700)


if __name__ == "__main__":
    main()
