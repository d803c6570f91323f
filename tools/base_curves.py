"""Draws the embedded bases' general validation loss against training steps (models/base-*/loss.csv) and writes
assets/results/base_curves.png through headless Chromium, for the README.

    python tools/base_curves.py
"""
import sys
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.core import paths  # noqa: E402
from app.core.settings import BASE_SIZES  # noqa: E402
from tools.png import write_png  # noqa: E402


def figure() -> go.Figure:
    fig = go.Figure()
    for size, colour in zip(BASE_SIZES, ("#e45756", "#9467bd", "#17becf")):
        log = pd.read_csv(paths.model_folder("base", size) / "loss.csv")
        val = log.dropna(subset=["val_loss"])
        fig.add_scatter(x=log["step"], y=log["loss"].rolling(50, min_periods=1).mean(), mode="lines", opacity=0.35,
                        line_color=colour, name=f"{size}: train (mean of 50 steps)")
        fig.add_scatter(x=val["step"], y=val["val_loss"], mode="lines+markers", line_color=colour,
                        name=f"{size}: general validation")
    fig.update_layout(title="Embedded base family: loss on held-out general text",
                      xaxis_title="step (4,096 tokens each)", yaxis_title="cross-entropy (nats per token)", width=900,
                      height=500, template="plotly_white")
    fig.update_yaxes(range=[4.2, 7.0])
    return fig


def main():
    write_png(figure(), paths.RESULTS / "base_curves.png", 940, 640)


if __name__ == "__main__":
    main()
