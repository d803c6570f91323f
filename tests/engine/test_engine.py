"""The engine's numbers against independent computations: sums, the log-space mixture, a direct FAISS search,
re-mixing, scoring, cached generation, the datastore cache and input checks."""
import json
import math
import os
import subprocess
import sys

import faiss
import numpy as np
import pytest
import torch

from app.core.distributions import mix, mix_log, model_probs
from app.core.paths import store_folder
from app.core.settings import Settings
from app.serve import compare, endpoints, generate, score
from app.serve.engine import Engine, InputError, Memory
from tests.support.reference import knn_lm_continuation

PROMPT = "cell protein gene membrane"


@pytest.fixture(scope="module")
def nt(engine):
    return compare.next_token(engine, engine.resolve(), PROMPT)


def test_distributions_sum_to_one(nt):
    for alpha in (0.0, 0.3, 0.5, 1.0):
        for name, p in compare.mixtures(nt, alpha).items():
            assert p.shape == (len(nt.tokens),), name
            assert (p >= 0).all(), name
            assert float(p.double().sum()) == pytest.approx(1.0, abs=1e-5), (name, alpha)


def test_mixture_equals_logaddexp_form(nt):
    for alpha in (0.0, 0.25, 0.6, 0.9, 1.0):
        dists = compare.mixtures(nt, alpha)
        for other in ("memdec", "knn"):
            direct = dists[f"mix_{other}"].double()
            logged = mix_log(nt.p_base.double().log(), dists[other].double().log(), alpha).exp()
            assert torch.allclose(direct, logged, rtol=1e-6, atol=1e-12), (other, alpha)


def test_mixture_is_not_a_logit_mix(nt):
    """The trap the public demo falls into: mixing logits gives another distribution."""
    logit_mix = torch.softmax(0.5 * nt.p_mem.log() + 0.5 * nt.p_base.log(), -1)
    assert not torch.allclose(logit_mix, compare.mixtures(nt, 0.5)["mix_memdec"], atol=1e-6)


def test_knn_path_equals_direct_faiss(engine, nt):
    """Same query key (read with our own hook), exact search on the stored keys, weights by hand."""
    lm = engine.model(engine.bases[nt.base])
    tokenizer = engine.tokenizer(engine.bases[nt.base])
    seen = {}
    handle = lm.transformer.h[-1].mlp.register_forward_pre_hook(lambda _m, args: seen.update(key=args[0]))
    with torch.no_grad():
        lm(input_ids=torch.tensor([[tokenizer.eos_token_id] + tokenizer(PROMPT)["input_ids"]]))
    handle.remove()
    query = seen["key"][0, -1:].numpy().astype(np.float32)
    store = engine.datastore(nt.base, nt.domain)
    keys = np.asarray(store.keys, dtype=np.float32)
    index = faiss.IndexFlatL2(keys.shape[1])
    index.add(keys)
    distances, ids = index.search(query, nt.k)
    np.testing.assert_allclose(nt.distances.numpy(), distances[0], rtol=1e-4, atol=1e-4)
    assert set(nt.ids.tolist()) == set(ids[0].tolist())
    # distances are the squared L2 of the stored fp16 keys, nearest first
    brute = ((keys[nt.ids.numpy()] - query) ** 2).sum(1)
    np.testing.assert_allclose(nt.distances.numpy(), brute, rtol=1e-4, atol=1e-4)
    assert (np.diff(nt.distances.numpy()) >= 0).all()
    w = np.exp(-(distances[0] - distances[0].min()) / nt.temperature)
    w /= w.sum()
    expected = np.zeros(len(nt.tokens))
    np.add.at(expected, store.values[ids[0]], w)
    np.testing.assert_allclose(nt.p_knn.numpy(), expected, atol=1e-5)


def test_remix_equals_full_recompute(engine, nt):
    """Moving alpha only re-mixes the cached distributions; a fresh run at the new alpha gives the same numbers."""
    for alpha in (0.1, 0.75):
        fresh = compare.mixtures(compare.next_token(engine, engine.resolve(), PROMPT), alpha)
        remixed = compare.mixtures(nt, alpha)
        for name in fresh:
            assert torch.allclose(fresh[name], remixed[name], atol=1e-6), name
    s = score.score(engine, engine.resolve(), PROMPT)
    for alpha in (0.2, 0.9):
        again = score.summary(score.score(engine, engine.resolve(), PROMPT), alpha)
        assert score.summary(s, alpha)["perplexity"] == pytest.approx(again["perplexity"], rel=1e-6)


def test_rows_and_json_are_consistent(nt):
    table = compare.rows(nt, 0.4, 8)
    assert len(table) == 8
    for r in table:
        assert r["mix_memdec"] == pytest.approx(0.4 * r["memdec"] + 0.6 * r["base"], abs=1e-7)
        assert r["mix_knn"] == pytest.approx(0.4 * r["knn"] + 0.6 * r["base"], abs=1e-7)
    out = json.loads(json.dumps(compare.to_dict(nt, 0.4, 5)))
    assert set(out["top"]) == {"base", "memdec", "knn", "mix_memdec", "mix_knn"}
    assert out["top"]["knn"][0]["p"] == pytest.approx(float(nt.p_knn.max()))
    assert set(out["latency_ms"]) == {"base forward", "decoder forward", "kNN search", "mixing"}
    assert all(v >= 0 for v in out["latency_ms"].values())


def test_neighbours_show_their_corpus_text(engine, nt):
    stream = engine.stream(nt.base, nt.domain)
    found = nt.neighbours
    assert len(found) == nt.k
    assert sum(n["weight"] for n in found) == pytest.approx(1.0, abs=1e-5)
    for n, value in zip(found, nt.values.tolist()):
        assert stream[n["entry"] + 1] == value  # entry p's value is the next token of the stream
        assert n["next"] == nt.tokens[value]
        assert n["context"].endswith(nt.tokens[stream[n["entry"]]])
    totals = compare.per_token(nt)
    assert sum(t["neighbours"] for t in totals) == nt.k
    for t in totals:
        assert t["p_knn"] == pytest.approx(float(nt.p_knn[t["id"]]), abs=1e-6)


def test_teach_numbers_are_the_formulas(nt):
    """The Teach tab's numbers come from the engine: each is the formula applied to the comparison's distributions."""
    for alpha in (0.2, 0.7):
        t = compare.teach(nt, alpha)
        dists = compare.mixtures(nt, alpha)
        m, k = t["memdec"], t["knn"]
        assert m["id"] == int(dists["mix_memdec"].argmax()) and k["id"] == int(dists["mix_knn"].argmax())
        assert m["p_mix"] == pytest.approx(alpha * m["p_mem"] + (1 - alpha) * m["p_base"], rel=1e-6)
        assert math.exp(m["log_p_mix"]) == pytest.approx(m["p_mix"], rel=1e-5)
        assert k["p_mix"] == pytest.approx(alpha * k["p_knn"] + (1 - alpha) * k["p_base"], rel=1e-6)
        weights = torch.softmax(-nt.distances.double() / nt.temperature, -1)
        assert k["nearest_weight"] == pytest.approx(float(weights[0]), rel=1e-5)
        assert k["neighbours"] == int((nt.values == k["id"]).sum())


def test_endpoint_json_carries_every_number_the_tabs_show(engine, nt):
    out = endpoints.compare_json(engine, engine.resolve(alpha=0.3, lock_alpha=True), PROMPT, top_n=5)
    direct = compare.teach(nt, 0.3)
    for part in ("memdec", "knn"):
        for key, value in direct[part].items():
            assert out["teach"][part][key] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-5)), key
    assert [n["entry"] for n in out["neighbours"]] == nt.ids.tolist()
    assert sum(t["neighbours"] for t in out["knn_by_token"]) == nt.k
    assert out["imitation"]["kl_knn_mem"] == pytest.approx(compare.imitation(nt)["kl_knn_mem"], rel=1e-5)
    scored = endpoints.score_json(engine, engine.resolve(alpha=0.4), "licence software copyright")
    for t in scored["tokens"]:
        assert 2 ** t["gain_bits"]["mix_memdec"] == pytest.approx(t["mix_memdec"] / t["base"], rel=1e-6)
        assert 2 ** t["gain_bits"]["mix_knn"] == pytest.approx(t["mix_knn"] / t["base"], rel=1e-6)


def test_imitation_numbers(nt):
    m = compare.imitation(nt)
    support = nt.p_knn > 0
    expected = float((nt.p_knn[support] * (nt.p_knn[support].log() - nt.p_mem[support].log())).sum())
    assert m["kl_knn_mem"] == pytest.approx(expected, rel=1e-5)
    assert compare.kl(nt.p_mem, nt.p_mem) == pytest.approx(0.0, abs=1e-6)
    assert 0.0 <= m["overlap_mem"] <= 1.0 and 0.0 <= m["overlap_base"] <= 1.0


def test_score_matches_next_token_on_each_prefix(engine):
    text = "licence software copyright"
    s = score.score(engine, engine.resolve(), text)
    tokenizer = engine.tokenizer(engine.bases[s.base])
    ids = tokenizer(text)["input_ids"]
    assert len(s.tokens) == len(ids)
    for i in range(1, len(ids)):
        nt = compare.next_token(engine, engine.resolve(), tokenizer.decode(ids[:i]))
        assert float(s.p_base[i]) == pytest.approx(float(nt.p_base[ids[i]]), rel=1e-4)
        assert float(s.p_mem[i]) == pytest.approx(float(nt.p_mem[ids[i]]), rel=1e-4)
        assert float(s.p_knn[i]) == pytest.approx(float(nt.p_knn[ids[i]]), abs=1e-5)
    summary = score.summary(s, 0.5)
    mixed = 0.5 * s.p_base.double() + 0.5 * s.p_mem.double()
    assert summary["perplexity"]["mix_memdec"] == pytest.approx(float(torch.exp(-mixed.log().mean())), rel=1e-5)
    curve = summary["perplexity_vs_alpha"]
    assert curve["mix_memdec"][0] == pytest.approx(summary["perplexity"]["base"], rel=1e-6)  # alpha 0 is the base


def test_generation_with_kv_caches_equals_full_recompute(engine):
    result = generate.generate(engine, engine.resolve(), PROMPT, max_new_tokens=6)
    pair = engine.pair(None, None)
    lm, decoder, tokenizer, memory = pair.lm, pair.decoder, pair.tokenizer, pair.memory
    ids = [tokenizer.eos_token_id] + tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        reference = lm.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                                pad_token_id=tokenizer.eos_token_id)
    assert result["continuations"]["base"]["text"] == tokenizer.decode(reference[0, len(ids):])
    seq = list(ids)
    for _ in range(6):  # base + MemDec without any cache
        with torch.no_grad():
            p = mix(model_probs(lm(input_ids=torch.tensor([seq])).logits[0, -1], len(tokenizer)),
                    model_probs(decoder(input_ids=torch.tensor([seq])).logits[0, -1], len(tokenizer)), memory.alpha)
        seq.append(int(p.argmax()))
    assert result["continuations"]["mix_memdec"]["text"] == tokenizer.decode(seq[len(ids):])
    knn_ids = knn_lm_continuation(engine, ids, 6)
    assert result["continuations"]["mix_knn"]["text"] == tokenizer.decode(knn_ids[len(ids):])
    for c in result["continuations"].values():
        assert c["ms_per_token"] > 0


def test_sampling_is_seeded(engine):
    a = generate.generate(engine, engine.resolve(), PROMPT, max_new_tokens=8, sample=True, seed=3)
    b = generate.generate(engine, engine.resolve(), PROMPT, max_new_tokens=8, sample=True, seed=3)
    c = generate.generate(engine, engine.resolve(), PROMPT, max_new_tokens=8, sample=True, seed=4)
    texts = [{n: x["tokens"] for n, x in r["continuations"].items()} for r in (a, b, c)]
    assert texts[0] == texts[1] and texts[0] != texts[2]


def test_long_prompt_keeps_the_latest_tokens(engine):
    nt = compare.next_token(engine, engine.resolve(), "cell " * 300)
    assert nt.cut > 0
    with pytest.raises(InputError, match="at most"):
        score.score(engine, engine.resolve(), "cell " * 300)


@pytest.mark.parametrize("call, message", [
    (lambda e: compare.next_token(e, e.resolve(), ""), "empty"),
    (lambda e: compare.next_token(e, e.resolve(), "   \n"), "empty"),
    (lambda e: compare.next_token(e, e.resolve(), "x" * 100_000), "at most"),
    (lambda e: e.resolve(k=0), "k must be"),
    (lambda e: e.resolve(k="many"), "k must be a whole number"),
    (lambda e: e.resolve(k=2.5), "whole number"),
    (lambda e: e.resolve(temperature=0), "temperature"),
    (lambda e: e.resolve(base="gpt-17"), "unknown base"),
    (lambda e: e.resolve(domain="astrology"), "unknown memory"),
    (lambda e: compare.mixtures(compare.next_token(e, e.resolve(), "cell"), 1.5), "alpha"),
    (lambda e: generate.generate(e, e.resolve(), "cell", max_new_tokens=10_000), "max_new_tokens"),
    (lambda e: generate.generate(e, e.resolve(), "cell", seed=-1), "seed"),
])
def test_bad_input_is_refused_clearly(engine, call, message):
    with pytest.raises(InputError, match=message):
        call(engine)


def test_garbage_text_still_works(engine):
    nt = compare.next_token(engine, engine.resolve(), "\x00\x07 ☃ \ufffd }{ ;;")
    assert float(nt.p_base.sum()) == pytest.approx(1.0, abs=1e-5)


def test_datastore_is_cached_on_disk_and_reused(engine, tiny_models):
    engine.datastore(engine.default_base, engine.default_domain)
    folder = store_folder(tiny_models["bases"][engine.default_base], engine.default_domain)
    stamp = (folder / "keys.npy").stat().st_mtime_ns
    fresh = Engine(tiny_models["bases"], tiny_models["memories"])  # as on the next start
    store = fresh.datastore(fresh.default_base, fresh.default_domain)
    assert (folder / "keys.npy").stat().st_mtime_ns == stamp
    stream = fresh.stream(fresh.default_base, fresh.default_domain)
    assert len(store) == (len(stream) - 1) // Settings.block * Settings.block


def test_models_by_path_string_and_memory_defaults(tiny_models):
    """Bases and decoders are any Auto-class path (a hub id goes the same way); defaults come from memdec.json."""
    bases = {name: str(folder) for name, folder in tiny_models["bases"].items()}
    memory = tiny_models["memories"]["law"]
    assert (memory.alpha, memory.knn_temperature, memory.knn_k) == (0.5, 5.0, 16)
    plain = Memory.from_folder(tiny_models["bases"]["tiny-a"], memory.corpus)  # no memdec.json
    assert (plain.alpha, plain.knn_temperature, plain.knn_k) == (0.6, 10.0, 64)
    engine = Engine({"b": bases["tiny-b"]}, {"law": memory})
    nt = compare.next_token(engine, engine.resolve(), "software licence")
    assert nt.base == "b" and nt.domain == "law" and nt.k == 16


def test_cli_prints_the_api_json(tiny_models):
    memory = tiny_models["memories"]["bio"]
    model = f"a={tiny_models['bases']['tiny-a']}"
    out = subprocess.run([sys.executable, "-m", "app.serve.cli", "compare", PROMPT, "--model", model,
                          "--memory", f"bio={memory.decoder},{memory.corpus}", "--alpha", "0.3"],
                         capture_output=True, text=True, env=os.environ, check=True, timeout=120)
    data = json.loads(out.stdout)
    assert data["alpha"] == 0.3 and len(data["top"]["mix_knn"]) == 10
    bad = subprocess.run([sys.executable, "-m", "app.serve.cli", "compare", "", "--model", model,
                          "--memory", f"bio={memory.decoder},{memory.corpus}"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "empty" in bad.stderr

