"""The Gradio 6 page and API: one shared settings row, tabs for Compare, Neighbours, Imitation, Teach, Generate
and Score, and the plain-JSON endpoints /compare, /generate and /score. All numbers come from the engine."""
import functools
import html
import json
import math
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd
import torch

from . import compare, generate, plots, score
from .distributions import knn_weights, mix_log
from .engine import LIMITS, Engine, InputError
from .plots import label

INTRO = """# Memory Decoder Explorer
A **base** language model, a **Memory Decoder** (a small LM trained to imitate a retriever over a domain corpus) and
the **live kNN-LM** retriever it imitates, side by side on the same next token. Mixtures are taken in probability
space, `p = α·p_other + (1−α)·p_base`. Timings are wall-clock on this machine: warm models, the median of 3 runs per component (the CPU may be shared)."""


def shown(fn):
    """InputError -> gr.Error, so a bad request gets its message in the page or the API and the app keeps serving."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as error:
            raise gr.Error(str(error)) from None
    return wrapper


def progress_bar(progress: gr.Progress):
    return lambda fraction, desc: progress(fraction, desc=f"building the {desc} (once; cached on disk)")


def neighbours_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"rank": r["rank"], "distance": round(r["distance"], 3), "weight": round(r["weight"], 4),
                          "text before": r["context"].replace("\n", "⏎"), "next token": label(r["next"]),
                          "text after": r["after"].replace("\n", "⏎")} for r in rows])


def totals_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"next token": label(r["token"]), "neighbours": r["neighbours"], "p kNN (summed weight)": round(r["p_knn"], 4)}
                         for r in rows])


def axis_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"token": label(r["token"]), "id": r["id"], **{plots.NAMES[k]: round(r[k], 5) for k in plots.NAMES}}
                         for r in rows])


def imitation_text(nt: compare.NextToken) -> str:
    m = compare.imitation(nt)
    return f"""### How closely the decoder imitates the retriever, for this context
| | Memory Decoder | base (for reference) |
|---|---|---|
| KL(p_kNN ‖ p) in nats | **{m['kl_knn_mem']:.3f}** | {m['kl_knn_base']:.3f} |
| top-{m['top_k']} overlap with p_kNN | **{m['overlap_mem']:.0%}** | {m['overlap_base']:.0%} |

The decoder was trained on `β·KL(p_kNN ‖ p_mem) + (1−β)·CE`; a lower KL than the base's means it carries the
retriever's knowledge without the datastore. Overlap: the share of p_kNN's top tokens (those with any mass, at most
{m['top_k']}) that are also in the model's top {m['top_k']}."""


def teach_text(nt: compare.NextToken, alpha: float) -> str:
    """The two formulas with this comparison's numbers substituted, for each mixture's most likely token."""
    dists = compare.mixtures(nt, alpha)
    y, z = int(dists["mix_memdec"].argmax()), int(dists["mix_knn"].argmax())
    pb, pm = float(dists["base"][y]), float(dists["memdec"][y])
    log_form = float(mix_log(torch.tensor(pb).log(), torch.tensor(pm).log(), alpha))
    w1 = float(knn_weights(nt.distances, nt.temperature)[0])
    kz = next(t for t in compare.per_token(nt) if t["id"] == z) if float(dists["knn"][z]) > 0 else {"p_knn": 0.0, "neighbours": 0}
    return rf"""### Base + Memory Decoder
$$p(y) = \alpha\,p_{{\mathrm{{mem}}}}(y) + (1-\alpha)\,p_{{\mathrm{{base}}}}(y)$$
For the mixture's most likely next token, y = `{label(nt.tokens[y])}`:
$$p(y) = {alpha:.2f} \times {pm:.4g} + {1 - alpha:.2f} \times {pb:.4g} = \mathbf{{{float(dists['mix_memdec'][y]):.4g}}}$$
The same number in log space, as a stable implementation computes it:
$$\log p(y) = \mathrm{{logaddexp}}\big(\log p_{{\mathrm{{base}}}}(y) + \log(1-\alpha),\ \log p_{{\mathrm{{mem}}}}(y) + \log\alpha\big) = {log_form:.4f} = \ln {math.exp(log_form):.4g}$$
Mixing logits instead would give a different (and wrong) model.

### kNN-LM
$$w_i = \frac{{\exp(-d_i/T)}}{{\sum_{{j=1}}^{{k}} \exp(-d_j/T)}}, \qquad p_{{\mathrm{{kNN}}}}(v) = \sum_{{i:\,v_i = v}} w_i$$
Here k = {nt.k}, T = {nt.temperature:g}; the nearest key is at squared distance d₁ = {float(nt.distances[0]):.4g}, weight
w₁ = {w1:.4g}, and was followed by `{label(nt.tokens[int(nt.values[0])])}`. For z = `{label(nt.tokens[z])}`,
{kz['neighbours']} of the {nt.k} neighbours continue with it:
$$p_{{\mathrm{{kNN}}}}(z) = {kz['p_knn']:.4g}, \qquad p(z) = {alpha:.2f} \times {float(dists['knn'][z]):.4g} + {1 - alpha:.2f} \times {float(dists['base'][z]):.4g} = \mathbf{{{float(dists['mix_knn'][z]):.4g}}}$$

### The difference
The kNN-LM searches {nt.k} neighbours in a datastore at every token; the Memory Decoder reads only tokens, one small
forward pass, and was trained so that p_mem imitates p_kNN. The latency chart on the Compare tab shows the cost of each."""


def gain_html(summary: dict) -> str:
    """Tokens coloured by log2 p_mix / p_base: green where the mixture helps, red where it hurts."""
    lines = []
    for name in ("mix_memdec", "mix_knn"):
        spans = []
        for t in summary["tokens"]:
            gain = math.log2(max(t[name], 1e-300) / max(t["base"], 1e-300))
            colour = f"rgba(44,160,44,{min(1, gain / 3):.2f})" if gain >= 0 else f"rgba(214,39,40,{min(1, -gain / 3):.2f})"
            tip = f"p base {t['base']:.4f} → {t[name]:.4f} ({gain:+.2f} bits)"
            spans.append(f'<span class="tok" style="background:{colour}" title="{html.escape(tip)}">'
                         f"{html.escape(t['token']).replace(chr(10), '⏎')}</span>")
        lines.append(f"<p><b>{plots.NAMES[name]}</b> vs base: {''.join(spans)}</p>")
    return "<div class='gain'>" + "".join(lines) + "<p><small>green: the mixture gives the actual token more probability than the base; red: less (up to ±3 bits). Hover a token for its numbers.</small></p></div>"


def perplexity_text(summary: dict) -> str:
    p = summary["perplexity"]
    rows = "".join(f"| {plots.NAMES[n]} | {'∞' if p[n] is None else f'{p[n]:.2f}'} |\n" for n in ("base", "memdec", "mix_memdec", "mix_knn"))
    return (f"| predictor | perplexity |\n|---|---|\n{rows}\n{len(summary['tokens'])} tokens, α = {summary['alpha']:.2f}; "
            f"some neighbour predicts the actual token for {summary['knn_coverage']:.0%} of them. A passage taken from the "
            "domain's training text is in the datastore itself, so the kNN-LM will look better on it than on new text.")


def export_files(nt: compare.NextToken, alpha: float, top_n: int) -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="comparison-"))
    (folder / "comparison.json").write_text(json.dumps(compare.to_dict(nt, alpha, top_n), indent=1))
    (folder / "comparison.csv").write_text(compare.to_csv(nt, alpha, top_n))
    return [str(folder / "comparison.json"), str(folder / "comparison.csv")]


def build(engine: Engine) -> gr.Blocks:
    memory = engine.memories[engine.default_domain]
    with gr.Blocks(title="Memory Decoder Explorer") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", lines=3, scale=3, elem_id="prompt",
                                value="The protein binds to the receptor and")
            with gr.Column(scale=1, min_width=220):
                base = gr.Dropdown(list(engine.bases), value=engine.default_base, label="Base model")
                domain = gr.Dropdown(list(engine.memories), value=engine.default_domain, label="Memory (domain)")
        with gr.Row():
            alpha = gr.Slider(0, 1, value=memory.alpha, step=0.01, label="alpha (weight of the memory)", elem_id="alpha")
            k = gr.Slider(1, LIMITS["k"][1], value=memory.knn_k, step=1, label="kNN k (neighbours)")
            temperature = gr.Number(value=memory.knn_temperature, label="kNN temperature T", minimum=0.01)
            top_n = gr.Slider(3, 30, value=12, step=1, label="tokens shown")
        run = gr.Button("Compare next token", variant="primary", elem_id="compare-button")
        cmp_state, score_state = gr.State(), gr.State()
        with gr.Tabs():
            with gr.Tab("Compare"):
                dist_plot = gr.Plot(label="distributions", elem_id="dist-plot")
                with gr.Row():
                    latency_plot = gr.Plot(label="latency", elem_id="latency-plot")
                    with gr.Column():
                        axis_table = gr.Dataframe(label="probabilities on the shared axis", wrap=True)
                        files = gr.File(label="export this comparison (JSON, CSV)", file_count="multiple")
            with gr.Tab("Neighbours"):
                gr.Markdown("The kNN-LM's nearest datastore entries: the text the key saw, the token that followed it "
                            "(its value), the squared L2 distance and the weight softmax(−d/T).")
                neighbour_table = gr.Dataframe(label="neighbours, nearest first", wrap=True)
                totals_table = gr.Dataframe(label="total weight per next token = p_kNN")
            with gr.Tab("Imitation"):
                imitation_md = gr.Markdown("Run a comparison first.")
            with gr.Tab("Teach"):
                teach_md = gr.Markdown("Run a comparison first.")
            with gr.Tab("Generate"):
                with gr.Row():
                    max_new = gr.Slider(1, LIMITS["max_new_tokens"][1], value=24, step=1, label="new tokens")
                    sample = gr.Checkbox(label="sample (instead of greedy)")
                    seed = gr.Number(value=0, precision=0, label="seed")
                    gen_run = gr.Button("Generate", variant="primary", elem_id="generate-button")
                with gr.Row():
                    outs = {n: gr.Textbox(label=plots.NAMES[n], lines=5) for n in ("base", "mix_memdec", "mix_knn")}
                speed_plot = gr.Plot(label="time per token")
            with gr.Tab("Score"):
                passage = gr.Textbox(label="Passage", lines=4, elem_id="passage",
                                     value="The enzyme catalyses the transfer of a phosphate group to the protein.")
                score_run = gr.Button("Score passage", variant="primary", elem_id="score-button")
                ppl_md = gr.Markdown()
                gain = gr.HTML()
                with gr.Row():
                    tok_plot = gr.Plot(label="per token")
                    alpha_plot = gr.Plot(label="perplexity against alpha")

        def compare_view(nt, a, n):
            rows = compare.rows(nt, a, n)
            return plots.distributions(rows, a), axis_frame(rows), teach_text(nt, a), export_files(nt, a, n)

        @shown
        def on_compare(text, b, d, a, kk, t, n, progress=gr.Progress()):
            nt = compare.next_token(engine, text, b, d, kk, t, progress_bar(progress))
            fig, table, teach, exported = compare_view(nt, a, n)
            return (nt, fig, plots.latency(nt.latency_ms), table, neighbours_frame(compare.neighbours(engine, nt)),
                    totals_frame(compare.per_token(nt)), imitation_text(nt), teach, exported)

        @shown
        def on_alpha(nt, s, a, n):
            """Re-mixes the cached distributions; no model runs."""
            out = list(compare_view(nt, a, n)) if nt is not None else [gr.skip()] * 4
            return out + (list(score_view(s, a)) if s is not None else [gr.skip()] * 4)

        def score_view(s, a):
            summary = score.summary(s, a)
            return perplexity_text(summary), gain_html(summary), plots.token_probabilities(summary), plots.perplexity_vs_alpha(summary)

        @shown
        def on_score(text, b, d, a, kk, t, progress=gr.Progress()):
            s = score.score(engine, text, b, d, kk, t, progress_bar(progress))
            return (s, *score_view(s, a))

        @shown
        def on_generate(text, b, d, a, kk, t, steps, smp, sd, progress=gr.Progress()):
            result = generate.generate(engine, text, b, d, steps, smp, sd, a, kk, t, progress_bar(progress))
            return (*(result["continuations"][n]["text"] for n in outs), plots.generation_speed(result))

        def memory_defaults(d):
            m = engine.memories[d]
            return m.alpha, m.knn_k, m.knn_temperature

        settings = [prompt, base, domain, alpha, k, temperature]
        compare_outputs = [cmp_state, dist_plot, latency_plot, axis_table, neighbour_table, totals_table, imitation_md, teach_md, files]
        gr.on([run.click, prompt.submit], on_compare, settings + [top_n], compare_outputs, api_name="compare_view",
              api_visibility="undocumented", concurrency_id="models")
        remix_outputs = [dist_plot, axis_table, teach_md, files, ppl_md, gain, tok_plot, alpha_plot]
        gr.on([alpha.release, top_n.release], on_alpha, [cmp_state, score_state, alpha, top_n], remix_outputs,
              api_name="remix", api_visibility="undocumented", queue=False)
        domain.change(memory_defaults, domain, [alpha, k, temperature], api_name="memory_defaults",
                      api_visibility="private", queue=False)
        score_run.click(on_score, [passage, base, domain, alpha, k, temperature], [score_state, ppl_md, gain, tok_plot, alpha_plot],
                        api_name="score_view", api_visibility="undocumented", concurrency_id="models")
        gen_run.click(on_generate, settings + [max_new, sample, seed], [*outs.values(), speed_plot],
                      api_name="generate_view", api_visibility="undocumented", concurrency_id="models")
        add_api(engine)
    # one request at a time on the models: the CPU is small and the key hooks are shared
    return demo.queue(default_concurrency_limit=1, max_size=32)


def add_api(engine: Engine):
    """Plain-JSON endpoints: the text first, everything else defaulted (None = the memory's own setting)."""
    default_base, default_domain = engine.default_base, engine.default_domain

    @shown
    def api_compare(text: str, base: str = default_base, domain: str = default_domain, alpha: float | None = None,
                    k: int | None = None, temperature: float | None = None, top_n: int = 10) -> dict:
        """Next-token distributions of base, memdec, knn and the two mixtures; latency_ms per component."""
        alpha = engine.alpha(domain, alpha)  # checked before any model runs
        return compare.to_dict(compare.next_token(engine, text, base, domain, k, temperature), alpha, top_n)

    @shown
    def api_generate(text: str, base: str = default_base, domain: str = default_domain, max_new_tokens: int = 24,
                     sample: bool = False, seed: int = 0, alpha: float | None = None, k: int | None = None,
                     temperature: float | None = None) -> dict:
        """Continuations of base, base + MemDec and base + kNN-LM, each with its own KV cache, and ms per token."""
        return generate.generate(engine, text, base, domain, max_new_tokens, sample, seed, alpha, k, temperature)

    @shown
    def api_score(text: str, base: str = default_base, domain: str = default_domain, alpha: float | None = None,
                  k: int | None = None, temperature: float | None = None) -> dict:
        """Per-token probabilities, perplexities and perplexity against alpha for a passage."""
        alpha = engine.alpha(domain, alpha)
        return score.summary(score.score(engine, text, base, domain, k, temperature), alpha)

    gr.api(api_compare, api_name="compare", concurrency_id="models")
    gr.api(api_generate, api_name="generate", concurrency_id="models")
    gr.api(api_score, api_name="score", concurrency_id="models")


CSS = ".tok { border-radius: 3px; padding: 0 1px; white-space: pre-wrap; } .gain p { line-height: 1.9; }"
THEME = gr.themes.Soft()
