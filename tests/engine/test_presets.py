"""The published families through the real download code, offline: tiny stand-ins with the exact vocabularies and
the REAL tokenizers sit in a hub cache under the real ids (tests/support/standins.py)."""
import os
import time

import pytest
import torch
from gradio_client import Client

from app.core import models
from app.core.paths import ROOT
from app.serve import compare, endpoints, generate, presets, score
from app.serve.engine import Engine, InputError, Memory, Weights
from tests.support.serving import app_process, serve_in_background
from tests.support.standins import STANDINS

PROMPT = "The history of the city"


@pytest.fixture(scope="module")
def engines(standin_hub):
    """One engine per preset, on the stand-ins; module-scoped, so models load once."""
    import huggingface_hub.constants as hub

    saved = hub.HF_HUB_CACHE, hub.HF_HUB_OFFLINE
    hub.HF_HUB_CACHE, hub.HF_HUB_OFFLINE = str(standin_hub), True
    yield {name: Engine.from_presets([name], corpus_tokens=3000) for name in STANDINS}
    hub.HF_HUB_CACHE, hub.HF_HUB_OFFLINE = saved


@pytest.mark.parametrize("preset, vocab, logits, start", [
    ("gpt2-wikitext", 50257, 50257, [50256]),  # GPT-2's documents start after <|endoftext|>
    ("qwen2.5-law", 151665, 151936, []),  # no BOS; the output layer is wider than the tokenizer
    ("llama3-finance", 128256, 128256, [128000]),  # <|begin_of_text|>; the decoder's own files add <|endoftext|>
])
def test_each_preset_compares_with_its_family_conventions(engines, preset, vocab, logits, start):
    engine = engines[preset]
    pair = engine.pair(None, None)
    assert len(pair.tokenizer) == vocab and models.logits_width(pair.decoder) == logits
    ids, _ = engine.resolve().encode(PROMPT, truncate=True)
    assert ids[0].tolist() == start + pair.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    nt = compare.next_token(engine, engine.resolve(), PROMPT)
    for name, p in compare.mixtures(nt, 0.5).items():
        assert p.shape == (vocab,) and float(p.double().sum()) == pytest.approx(1.0, abs=1e-5), name
    # the decoder reads the base's ids: its distribution is the softmax of its logits over those ids only
    with torch.no_grad():
        logits_mem = pair.decoder(input_ids=ids).logits[0, -1].float()
    assert torch.allclose(nt.p_mem, torch.softmax(logits_mem[:vocab], -1), atol=1e-6)
    memory = engine.memories[engine.default_domain]
    # the published alpha
    assert engine.weights(None, None) == Weights(*[memory.defaults(engine.default_base).alpha] * 2)


def test_gpt2_preset_has_the_paper_defaults_and_a_live_knn_lm(engines):
    engine = engines["gpt2-wikitext"]
    assert list(engine.bases) == ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]
    memory = engine.memories["wikitext"]
    assert [memory.defaults(b).alpha for b in engine.bases] == [0.8, 0.6, 0.55, 0.55]
    assert [memory.defaults(b).knn_lambda for b in engine.bases] == [0.8, 0.6, 0.55, 0.55]
    assert [memory.defaults(b).temperature for b in engine.bases] == [1.0, 1.0, 13.0, 13.0]
    out = endpoints.compare_json(engine, engine.resolve(k=16), PROMPT)
    assert out["knn_unavailable"] is None and out["k"] == 16 and len(out["neighbours"]) == 16
    store = engine.datastore("gpt2", "wikitext")
    assert 3000 <= len(store) + 128 and len(store) < 3000 + 2048  # the corpus cap, in whole articles and blocks
    assert store.keys.shape[1] == 64 and store.recipe["index"]["type"] == "IndexFlatL2"
    gen = generate.generate(engine, engine.resolve(), PROMPT, max_new_tokens=4)
    assert set(gen["continuations"]) == {"base", "mix_memdec", "mix_knn"}


@pytest.mark.parametrize("preset", ["qwen2.5-law", "llama3-finance"])
def test_a_memory_without_a_corpus_serves_base_and_decoder_and_says_why(engines, preset):
    engine = engines[preset]
    out = endpoints.compare_json(engine, engine.resolve(), PROMPT)
    assert "no corpus" in out["knn_unavailable"] and set(out["top"]) == {"base", "memdec", "mix_memdec"}
    assert out["imitation"] is None and out["neighbours"] == [] and out["teach"]["knn"] is None
    assert "kNN search" not in out["latency_ms"]
    gen = generate.generate(engine, engine.resolve(), PROMPT, max_new_tokens=3)
    assert set(gen["continuations"]) == {"base", "mix_memdec"}
    scored = score.summary(score.score(engine, engine.resolve(), PROMPT), 0.6)
    assert set(scored["perplexity"]) == {"base", "memdec", "mix_memdec"} and scored["knn_coverage"] is None


def test_a_decoder_of_another_tokenizer_is_refused_with_its_differences(offline_hub):
    engine = Engine({"gpt2": "openai-community/gpt2"}, {"qwen": Memory("Clover-Hill/MemoryDecoder-Qwen-law", None)})
    with pytest.raises(InputError, match=r"cannot read the token ids of base 'gpt2': the tokenizers differ on \d+ "
                                         r"of the base's 50257 ids \(base id \d+ is"):
        engine.resolve()
    narrow = Engine({"qwen": "Qwen/Qwen2.5-0.5B"}, {"gpt2": Memory("Clover-Hill/MemoryDecoder-gpt2-small", None)})
    with pytest.raises(InputError, match="predicts 50257 token ids, fewer than the base's 151665"):
        narrow.resolve()


def test_bin_weights_load_through_the_safe_path(offline_hub):
    folder = models.resolve("Clover-Hill/MemoryDecoder-Qwen-law")
    assert [f.name for f in models.weight_files(folder)] == ["pytorch_model.bin"]
    assert models.model_fingerprint("Clover-Hill/MemoryDecoder-Qwen-law")
    assert models.load_lm("Clover-Hill/MemoryDecoder-Qwen-law", torch.device("cpu"), "bf16").dtype == torch.bfloat16


def test_unknown_presets_and_gated_models_get_clear_messages(offline_hub, monkeypatch):
    with pytest.raises(InputError, match="unknown preset .gpt5.; choose one of smollm2, embedded, gpt2-wikitext"):
        Engine.from_presets(["gpt5"])
    import httpx
    from huggingface_hub.errors import GatedRepoError

    def gated(*args, **kwargs):
        raise GatedRepoError("403 gated",
                             response=httpx.Response(403, request=httpx.Request("GET", "https://huggingface.co")))

    monkeypatch.setattr(models, "snapshot_download", gated)
    with pytest.raises(FileNotFoundError, match="is gated: accept its licence .* set HF_TOKEN"):
        models.resolve("meta-llama/Llama-3.1-8B")
    assert presets.PRESETS["llama3-finance"].gated


def test_several_presets_share_one_page(standin_hub, offline_hub):
    engine = Engine.from_presets(["gpt2-wikitext", "qwen2.5-law"], corpus_tokens=3000)
    assert "gpt2-wikitext/gpt2" in engine.bases and "qwen2.5-law/law" in engine.memories
    url, demo = serve_in_background(engine)
    try:
        client = Client(url, verbose=False)
        out = client.predict(PROMPT, base="qwen2.5-law/Qwen2.5-0.5B", domain="qwen2.5-law/law", api_name="/compare")
        assert out["knn_unavailable"] and len(out["top"]["mix_memdec"]) == 10
        with pytest.raises(Exception, match="cannot read the token ids"):
            client.predict(PROMPT, base="gpt2-wikitext/gpt2", domain="qwen2.5-law/law", api_name="/compare")
    finally:
        demo.close()


@pytest.mark.parametrize("preset, base, domain", [("gpt2-wikitext", "gpt2", "wikitext"),
                                                 ("qwen2.5-law", "Qwen2.5-0.5B", "law"),
                                                 ("llama3-finance", "Llama-3.2-1B", "finance")])
def test_python_app_py_serves_a_hub_preset_offline(standin_hub, tmp_path, preset, base, domain):
    """As a Space would start it: `HF_HUB_OFFLINE=1 python app.py --preset NAME`, every endpoint answered."""
    env = {**os.environ, "HF_HUB_CACHE": str(standin_hub), "HF_HUB_OFFLINE": "1", "MEMDEC_CACHE": str(tmp_path),
           "MEMDEC_CORPUS_TOKENS": "3000"}
    start = time.perf_counter()
    with app_process(["--preset", preset], ROOT, env, tmp_path / "app.log") as url:
        client = Client(url, verbose=False)
        # the datastore is built in the background; until then, base and Memory Decoder answer and the kNN-LM's part
        # says how far it is (or, but for WikiText, that there is no corpus)
        while (out := client.predict(PROMPT, api_name="/compare"))["knn_building"]:
            assert "is being built in the background" in out["knn_unavailable"] and time.perf_counter() - start < 600
            time.sleep(1)
        assert (out["base"], out["domain"]) == (base, domain)
        assert (out["knn_unavailable"] is None) == (preset == "gpt2-wikitext")
        assert client.predict(PROMPT, max_new_tokens=3, api_name="/generate")["continuations"]["mix_memdec"]["tokens"]
        assert client.predict(PROMPT, api_name="/score")["perplexity"]["mix_memdec"] > 0


def test_served_together_each_memory_keeps_its_weights_for_each_base():
    """Several presets qualify their names ("gpt2-wikitext/gpt2"); a memory's tuned weights per base still apply."""
    engine = Engine.from_presets(["embedded", "gpt2-wikitext"])
    base, memory = "gpt2-wikitext/gpt2-large", "gpt2-wikitext/wikitext"
    assert engine.weights(base, memory).alpha == 0.55
    tuned = engine.defaults(base, memory)  # what a request resolves to, without loading a model
    assert (tuned.k, tuned.temperature, tuned.knn_lambda) == (1024, 13.0, 0.55)
    assert engine.weights("gpt2-wikitext/gpt2", memory).alpha == 0.8
