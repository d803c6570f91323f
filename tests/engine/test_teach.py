"""The Teach tab's numbers against independent computations: the logit mixture is the softmax of the mixed
log-probabilities (a product of experts, zeros ruled out), re-weighting the cached neighbours gives what a fresh
search at that k and T gives, and the text names the weight the lock puts on the kNN-LM."""
import dataclasses
import json

import pytest
import torch

from app.core.distributions import mix_logits
from app.serve import compare
from app.serve.builds import Unavailable
from app.serve.engine import InputError, Weights
from app.serve.ui.teach_tab import logit_text, teach_text, temperature

PROMPT = "cell protein gene membrane"


@pytest.fixture(scope="module")
def nt(engine):
    return compare.next_token(engine, engine.resolve(), PROMPT)


def test_logit_mixture_is_the_softmax_of_mixed_log_probs(nt):
    for alpha in (0.2, 0.5, 0.8):
        base, mem = nt.p_base.double(), nt.p_mem.double()
        assert (base > 0).all() and (mem > 0).all()  # softmax outputs: no floor needed for these two
        expected = torch.softmax(alpha * mem.log() + (1 - alpha) * base.log(), -1)
        assert torch.allclose(mix_logits(base.log(), mem.log(), alpha), expected, rtol=1e-9, atol=1e-15)
        m = compare.logit_mixture(nt, alpha)["memdec"]
        prob = alpha * mem + (1 - alpha) * base
        y = int(prob.argmax())
        assert m["id"] == y and m["p_prob"] == pytest.approx(float(prob[y]), rel=1e-9)
        assert m["p_logit"] == pytest.approx(float(expected[y]), rel=1e-9)
        assert m["logit_id"] == int(expected.argmax())
        assert m["tv"] == pytest.approx(0.5 * float((prob - expected).abs().sum()), rel=1e-9)
        assert 1e-5 < m["tv"] < 1  # a different model (the tiny random models are near uniform: small)


def test_logit_mixture_rules_out_what_no_neighbour_predicts(nt):
    """With p_kNN's zeros: proportional to p_kNN^λ p_base^(1-λ) on the tokens some neighbour predicts, nothing
    elsewhere; the interpolation keeps (1-λ) of the base's mass there."""
    lam = 0.35
    base, knn = nt.p_base.double(), nt.p_knn.double()
    voted = knn > 0
    assert 0 < int(voted.sum()) <= nt.k
    logit = mix_logits(base.log(), knn.log(), lam)
    assert not torch.isnan(logit).any()
    part = knn[voted] ** lam * base[voted] ** (1 - lam)
    assert torch.allclose(logit[voted], part / part.sum(), rtol=1e-9)
    assert float(logit[~voted].sum()) < 1e-100
    k = compare.logit_mixture(nt, Weights(0.5, lam))["knn"]
    assert k["ruled_out"] == int((~voted).sum())
    assert k["ruled_out_prob"] == pytest.approx((1 - lam) * float(base[~voted].sum()), rel=1e-9)
    assert k["ruled_out_logit"] < 1e-100
    assert k["tv"] == pytest.approx(0.5 * float((lam * knn + (1 - lam) * base - logit).abs().sum()), rel=1e-9)


def test_reweighted_equals_a_fresh_search(engine, nt):
    assert nt.k == 16 and nt.temperature == 5.0  # the tiny memories' own k and T
    assert torch.equal(compare.reweighted(nt, nt.k, nt.temperature), nt.p_knn)
    for k, t in ((16, 0.7), (5, 1.5), (1, 5.0), (9, 80.0)):
        fresh = compare.next_token(engine, engine.resolve(k=k, temperature=t), PROMPT)
        again = compare.reweighted(nt, k, t)
        assert fresh.k == k and torch.equal(fresh.values, nt.values[:k])
        assert torch.allclose(again, fresh.p_knn, atol=1e-6), (k, t)
        shown = compare.reweighting(nt, k, t)
        assert sum(shown["weights"]) == pytest.approx(1.0, abs=1e-6) and shown["weights"][k:] == [0.0] * (16 - k)
        for row in shown["rows"]:
            assert row["p_knn"] == pytest.approx(float(fresh.p_knn[row["id"]]), abs=1e-6)
    sharp, flat = compare.reweighted(nt, 16, 0.01), compare.reweighted(nt, 16, 10000.0)
    assert float(sharp.max()) > float(nt.p_knn.max()) > float(flat.max())  # T sharpens or flattens p_kNN
    for k in (0, 17):
        with pytest.raises(InputError, match="k must be a whole number from 1 to 16"):
            compare.reweighted(nt, k, 1.0)
    missing = dataclasses.replace(nt, p_knn=None, unavailable=Unavailable("its store is still building (40%)", True))
    with pytest.raises(InputError, match="still building"):
        compare.reweighted(missing, 4, 1.0)
    assert temperature(nt, 0.7) == nt.temperature  # the slider's mark of log10 5 is T = 5 exactly
    assert temperature(nt, 1.0) == 10.0


def test_teach_text_follows_the_lock(nt):
    locked = compare.teach(nt, Weights(0.3, 0.3, True))
    text, logit = teach_text(locked), logit_text(locked)
    assert "both mixtures are at one α here (the lock), so the kNN-LM is mixed at α = 0.30" in text
    assert r"p(z) = \alpha\,p_{\mathrm{kNN}}(z)" in text and "λ" not in text and r"\lambda" not in text
    assert f"0.30 \\times {locked['knn']['p_knn']:.4g}" in text
    assert "With the kNN-LM (α = 0.30)" in logit and "λ" not in logit
    free = compare.teach(nt, Weights(0.3, 0.6))
    text = teach_text(free)
    assert "the kNN-LM is mixed at its own weight λ = 0.60" in text and r"p(z) = \lambda\,p_{\mathrm{kNN}}(z)" in text
    assert f"0.60 \\times {free['knn']['p_knn']:.4g}" in text and "With the kNN-LM (λ = 0.60)" in logit_text(free)
    m = free["logit"]["memdec"]
    assert f"**{m['p_prob']:.4g}**" in logit_text(free) and f"**{m['tv']:.4f}**" in logit_text(free)
    out = json.loads(json.dumps(compare.to_dict(nt, Weights(0.3, 0.6), 5)))
    assert out["teach"]["logit"]["memdec"]["tv"] == pytest.approx(m["tv"]) and len(out["teach"]["logit"]["rows"]) == 5
