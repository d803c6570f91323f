"""Plotly figures for the app. Each has an explicit height (an autosized gr.Plot can render at zero height)."""
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..core import datastore

COLOURS = {"base": "#7f7f7f", "memdec": "#1f77b4", "knn": "#ff7f0e"}
NAMES = {"base": "base", "memdec": "Memory Decoder", "knn": "kNN-LM", "mix_memdec": "base + MemDec",
         "mix_knn": "base + kNN-LM"}


def label(token: str) -> str:
    """Visible token text: spaces and newlines shown, so that ' the' and 'the' differ on the axis."""
    return token.replace(" ", "␣").replace("\n", "⏎") or "∅"


def weights_text(w) -> str:
    """How the mixtures are weighted, for titles (w: engine.Weights)."""
    return (f"alpha = {w.alpha:.2f} for both" if w.locked
            else f"MemDec at alpha = {w.alpha:.2f}, kNN-LM at lambda = {w.knn_lambda:.2f}")


def distributions(rows: list[dict], w) -> go.Figure:
    """Top: the three predictors. Bottom: each mixture as a stack of its two parts, (1-w) p_base below and w p_other
    above, w its own weight (w: engine.Weights), so the height is the mixture and the split shows where it comes
    from."""
    x = [f"{label(r['token'])}<br><sub>{r['id']}</sub>" for r in rows]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("the three predictors", f"the two mixtures, {weights_text(w)}"))
    for name in [n for n in ("base", "memdec", "knn") if n in rows[0]]:  # no kNN-LM without a corpus
        fig.add_bar(x=x, y=[r[name] for r in rows], name=f"p {NAMES[name]}", marker_color=COLOURS[name],
                    offsetgroup=name, row=1, col=1)
    for mixture, other in [(m, o) for m, o in (("mix_memdec", "memdec"), ("mix_knn", "knn")) if m in rows[0]]:
        alpha, symbol = w.of_mixture(mixture), "λ" if mixture == "mix_knn" and not w.locked else "α"
        low = [(1 - alpha) * r["base"] for r in rows]
        fig.add_bar(x=x, y=low, name=f"{NAMES[mixture]}: (1-{symbol})·p base", marker_color=COLOURS["base"],
                    opacity=0.55, offsetgroup=mixture, legendgroup=mixture, row=2, col=1)
        fig.add_bar(x=x, y=[alpha * r[other] for r in rows], base=low,
                    name=f"{NAMES[mixture]}: {symbol}·p {NAMES[other]}", marker_color=COLOURS[other],
                    offsetgroup=mixture, legendgroup=mixture, row=2, col=1, customdata=[r[mixture] for r in rows],
                    hovertemplate="%{x}: part %{y:.4f}, mixture %{customdata:.4f}")
    fig.update_layout(height=620, barmode="group", margin=dict(l=50, r=20, t=60, b=40),
                      legend=dict(orientation="h", y=-0.15), title="next-token probabilities on one shared token axis")
    fig.update_yaxes(title_text="probability")
    return fig


def latency(latency_ms: dict, repeats: int = 1, batch: int = 1) -> go.Figure:
    """Each component's time: of the call that served the request (batch: the most requests that shared one of its
    calls), or the median of `repeats` runs alone when measured precisely."""
    names = list(latency_ms)
    how = (f"alone, median of {repeats}" if repeats > 1
           else ("this call" if batch <= 1 else f"this call, shared by {batch} requests"))
    fig = go.Figure(go.Bar(x=[latency_ms[n] for n in names], y=names, orientation="h",
                           marker_color=["#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c"][: len(names)],
                           text=[f"{latency_ms[n]:.2f} ms" for n in names], textposition="auto"))
    fig.update_layout(height=280, margin=dict(l=120, r=20, t=50, b=40), yaxis=dict(autorange="reversed"),
                      title=f"latency per component ({how}, wall-clock, this machine)", xaxis_title="milliseconds")
    return fig


def token_probabilities(summary: dict) -> go.Figure:
    """p(actual next token) along the passage for the base and the two mixtures, the tokens on the x axis."""
    tokens = summary["tokens"]
    x = list(range(len(tokens)))
    fig = go.Figure()
    for name, colour in [(n, c) for n, c in (("base", COLOURS["base"]), ("mix_memdec", COLOURS["memdec"]),
                                             ("mix_knn", COLOURS["knn"])) if n in tokens[0]]:
        fig.add_scatter(x=x, y=[t[name] for t in tokens], mode="lines+markers", name=NAMES[name], line_color=colour,
                        text=[label(t["token"]) for t in tokens], hovertemplate="%{x}: %{text}: %{y:.4f}")
    fig.update_layout(height=380, margin=dict(l=50, r=20, t=50, b=40), yaxis_type="log", xaxis_title="actual token",
                      yaxis_title="p(actual token)", title="probability of each actual token",
                      legend=dict(orientation="h", y=-0.45), xaxis=token_axis([t["token"] for t in tokens]))
    return fig


def perplexity_vs_alpha(summary: dict) -> go.Figure:
    """Each mixture's perplexity against its weight, its tuned weight for this base marked with a star, and the
    weights in use as dotted lines."""
    curve = summary["perplexity_vs_alpha"]
    fig = go.Figure()
    fig.add_scatter(x=curve["alpha"], y=[summary["perplexity"]["base"]] * len(curve["alpha"]), mode="lines",
                    name="base alone", line=dict(color=COLOURS["base"], dash="dash"))
    for name, colour in [(n, c) for n, c in (("mix_memdec", COLOURS["memdec"]), ("mix_knn", COLOURS["knn"]))
                         if n in curve]:
        fig.add_scatter(x=curve["alpha"], y=curve[name], mode="lines+markers", name=NAMES[name], line_color=colour)
        tuned, symbol = summary["tuned"][name], "λ" if name == "mix_knn" else "α"
        fig.add_scatter(x=[tuned["weight"]], y=[tuned["perplexity"]], mode="markers",
                        name=f"tuned {symbol} = {tuned['weight']:g}",
                        marker=dict(symbol="star", size=15, color=colour, line=dict(color="black", width=1)),
                        hovertemplate=f"{NAMES[name]}, tuned on validation for {summary['base']}: {symbol} = %{{x}}, "
                                      "perplexity %{y:.2f}<extra></extra>")
    used = [("α", summary["alpha"])] + ([("λ", summary["knn_lambda"])]
                                        if "mix_knn" in curve and not summary["lock_alpha"] else [])
    for i, (symbol, weight) in enumerate(used):
        fig.add_vline(x=weight, line_dash="dot", annotation_text=f"{symbol} = {weight:.2f}", annotation_yshift=-14 * i)
    fig.update_layout(height=340, margin=dict(l=50, r=20, t=50, b=40), yaxis_type="log",
                      xaxis_title="weight of the memory (α for MemDec, λ for kNN-LM)",
                      yaxis_title="perplexity", title="perplexity of the passage against alpha",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def generation_speed(result: dict) -> go.Figure:
    names = list(result["continuations"])
    ms = [result["continuations"][n]["ms_per_token"] for n in names]
    fig = go.Figure(go.Bar(x=[NAMES[n] for n in names], y=ms,
                           marker_color=[COLOURS["base"], COLOURS["memdec"], COLOURS["knn"]][: len(names)],
                           text=[f"{m:.1f} ms" for m in ms], textposition="auto"))
    fig.update_layout(height=280, margin=dict(l=50, r=20, t=50, b=40), yaxis_title="ms per token",
                      title="median time per generated token (wall-clock, this machine)")
    return fig


KIND_COLOURS = ("#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")  # by the kind's place in KINDS


def kind_style(kind: str) -> tuple[str, str]:
    """An index kind's name and colour on the Cost tab: each kind of datastore.KINDS has its own, so a kind added there
    is drawn without another change; a kind the results file holds that this code does not know keeps its id."""
    known = list(datastore.KINDS)
    place = known.index(kind) if kind in known else len(known)
    return datastore.KINDS.get(kind, kind), KIND_COLOURS[place % len(KIND_COLOURS)]


def cost_curves(results: dict | None, current: dict | None = None) -> go.Figure:
    """Per-token latency against datastore entries as ratios to the base, both axes log: base + kNN-LM per index kind
    (measured points only), base + MemDec flat (its cost does not grow with the corpus), guides at 2x and 10x of it,
    and this store measured now. One of the two may be missing: no results file yet, or nothing measured yet."""
    rows = [r for r in (results or {}).get("rows", []) if "knn_ms" in r]
    source = results["steps"] if results else current
    memdec = source["memdec_ms"] / source["base_ms"]
    entries = [r["entries"] for r in rows] + ([current["entries"]] if current else [])
    span = [min(entries), max(entries)] if len(set(entries)) > 1 else [entries[0] / 10, entries[0] * 10]
    fig = go.Figure()
    fig.add_scatter(x=span, y=[1, 1], mode="lines", name="base", line=dict(color=COLOURS["base"], dash="dot"))
    fig.add_scatter(x=span, y=[memdec] * 2, mode="lines", name=f"base + MemDec ({memdec:.2f}x)",
                    line_color=COLOURS["memdec"])
    for factor in (2, 10):
        fig.add_scatter(x=span, y=[factor * memdec] * 2, mode="lines", name=f"{factor}x base + MemDec",
                        line=dict(color=COLOURS["memdec"], dash="dash", width=1))
    for kind in dict.fromkeys(r["kind"] for r in rows):  # every kind measured, in the order of the results
        name, colour = kind_style(kind)
        points = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["entries"])
        fig.add_scatter(x=[r["entries"] for r in points], y=[r["ratio_knn"] for r in points], mode="lines+markers",
                        name=f"base + kNN-LM, {name}", line_color=colour,
                        text=[f"search {r['search_ms']:.2f} ms, recall@k {r['recall_at_k']:.2f}, "
                              f"{r['memory_bytes'] / 1e9:.2f} GB" for r in points],
                        hovertemplate="%{x:,} entries: %{y:.2f}x the base<br>%{text}")
    if current:
        fig.add_scatter(x=[current["entries"]], y=[current["ratio_knn"]], mode="markers",
                        name="this store (measured now)", marker=dict(symbol="star", size=16, color="#2ca02c"),
                        text=[f"{current['index']}, search {current['search_ms']:.2f} ms"],
                        hovertemplate="%{x:,} entries: %{y:.2f}x the base<br>%{text}")
    # labels at powers of ten only (entries: 10k, 100k, 1M), and at 1, 2, 5 per decade of the ratio: plotly's own
    # log ticks label every minor tick of a short axis, which crowds them
    fig.update_layout(height=480, margin=dict(l=60, r=20, t=50, b=40), xaxis_type="log", yaxis_type="log",
                      xaxis=dict(dtick=1, tickformat="~s"), yaxis=dict(dtick="D2"),
                      xaxis_title="datastore entries", yaxis_title="time per token / base's",
                      title="time per generated token as the datastore grows (wall-clock, this machine)",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def logit_mixture(rows: list[dict], alpha: float) -> go.Figure:
    """base + MemDec mixed both ways on its top tokens (compare.logit_mixture's rows), beside the two models."""
    x = [f"{label(r['token'])}<br><sub>{r['id']}</sub>" for r in rows]
    fig = go.Figure()
    for name, title, colour in (("base", "p base", COLOURS["base"]), ("memdec", "p Memory Decoder", COLOURS["memdec"]),
                                ("mix_memdec", "probability mixture (the paper's)", "#2ca02c"),
                                ("logit_memdec", "logit mixture (wrong)", "#d62728")):
        fig.add_bar(x=x, y=[r[name] for r in rows], name=title, marker_color=colour,
                    hovertemplate="%{x}: %{y:.4f}<extra>" + title + "</extra>")
    fig.update_layout(height=400, barmode="group", margin=dict(l=50, r=20, t=50, b=40), yaxis_title="probability",
                      title=f"base + MemDec at α = {alpha:.2f}: mixed in probability space and in logit space",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def knn_reweighted(r: dict) -> go.Figure:
    """p_kNN at the chosen k and T beside the comparison's (compare.reweighting), and each neighbour's weight w_i."""
    chosen = f"k = {r['k']}, T = {r['temperature']:.4g}"
    compared = f"k = {r['compared_k']}, T = {r['compared_temperature']:.4g}"
    top = max(r["rows"], key=lambda row: row["p_knn"])
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
                        subplot_titles=("p_kNN by next token", "weight w_i of each neighbour, nearest first"))
    x = [f"{label(row['token'])}<br><sub>{row['id']}</sub>" for row in r["rows"]]
    fig.add_bar(x=x, y=[row["p_knn_compared"] for row in r["rows"]], name=f"the comparison's {compared}",
                marker_color=COLOURS["knn"], opacity=0.45, row=1, col=1)
    fig.add_bar(x=x, y=[row["p_knn"] for row in r["rows"]], name=f"chosen {chosen}", marker_color=COLOURS["knn"],
                row=1, col=1)
    ranks = [f"{i + 1}: {label(t)}" for i, t in enumerate(r["next"])]
    fig.add_bar(x=ranks, y=r["weights_compared"], marker_color=COLOURS["knn"], opacity=0.45, showlegend=False,
                row=1, col=2)
    fig.add_bar(x=ranks, y=r["weights"], marker_color=COLOURS["knn"], showlegend=False, row=1, col=2)
    fig.update_layout(height=420, barmode="group", margin=dict(l=50, r=20, t=80, b=40),
                      legend=dict(orientation="h", y=-0.25), yaxis_title="probability",
                      title=f"p_kNN at {chosen}: top {label(top['token'])} {top['p_knn']:.4f}")
    return fig


def token_axis(tokens: list[str]) -> dict:
    """An x axis whose ticks at positions 0, 1, ... are the tokens' text (a repeated token keeps its own tick),
    slanted so that neighbours do not overlap."""
    return dict(tickmode="array", tickvals=list(range(len(tokens))), ticktext=[label(t) for t in tokens],
                tickangle=-60, tickfont=dict(size=11), automargin=True)


def memory_gains(result: dict) -> go.Figure:
    """Which memory knows this passage: one row per memory (best on top), one column per token, coloured by the gain
    in bits of base + MemDec over the base on that token (blue: the memory helps, red: it hurts)."""
    memories, tokens = result["memories"], result["tokens"]
    names = [m["memory"] for m in memories]
    z = [m["token_gain_bits"] for m in memories]
    # the colours span the largest gain seen, within 0.5 to 10 bits (a token the base gave no chance saturates)
    bound = min(10.0, max([0.5] + [abs(g) for row in z for g in row]))
    fig = go.Figure(go.Heatmap(z=z, x=list(range(len(tokens))), y=names, zmin=-bound, zmax=bound,
                               colorscale="RdBu", colorbar=dict(title="bits"),
                               customdata=[[label(t) for t in tokens] for _ in names],
                               hovertemplate="%{y}, token %{x} %{customdata}: %{z:+.2f} bits<extra></extra>"))
    fig.update_layout(height=200 + 36 * len(names), margin=dict(l=50, r=20, t=50, b=40),
                      xaxis=token_axis(tokens), yaxis=dict(autorange="reversed", automargin=True),
                      title=f"gain of base + MemDec over {result['base']} per token (bits), each memory at its "
                            "tuned alpha")
    return fig
