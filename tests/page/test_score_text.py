"""The Score tab's perplexity table states each mixture against the base alone: on text outside a memory's domain,
what plugging it in costs there."""
from app.serve import plots
from app.serve.ui.score_tab import perplexity_text


def test_each_mixture_is_stated_against_the_base_alone():
    summary = {"perplexity": {"base": 100.0, "memdec": 250.0, "mix_memdec": 110.0, "mix_knn": 80.0},
               "domain": "law", "knows": "", "alpha": 0.5, "lock_alpha": True, "knn_lambda": 0.5,
               "tokens": [{}] * 12, "knn_coverage": 0.4}
    text = perplexity_text(summary)
    assert f"| {plots.NAMES['mix_memdec']} | 110.00 | +10.0% |" in text  # costs 10% here
    assert f"| {plots.NAMES['mix_knn']} | 80.00 | -20.0% |" in text
    assert f"| {plots.NAMES['memdec']} | 250.00 |  |" in text  # the decoder alone is not a mixture
    summary["perplexity"]["base"] = None  # an infinite base perplexity: no ratio to state
    assert f"| {plots.NAMES['mix_memdec']} | 110.00 | — |" in perplexity_text(summary)
