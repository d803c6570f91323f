"""The offline stand-ins load as the published checkpoints would: real tokenizers with their lengths and special ids,
the published vocabulary and logits widths, and WikiText rows as the dataset stores them."""
import re
import subprocess

import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.support import standins
from tests.support.standins import (
    PUBLISHED,
    random_weights,
    standin_config,
    tokenizer_folder,
    write_model,
    write_wikitext,
)

LLAMA, LLAMA_DECODER = "meta-llama/Llama-3.2-1B", "Clover-Hill/MemoryDecoder-Llama-finance"


@pytest.mark.parametrize("family, length, bos, eos, hello", [
    ("gpt2", 50257, 50256, 50256, [15496, 995]),
    ("llama3", 128256, 128000, 128001, [128000, 9906, 1917]),
    ("qwen2.5", 151665, None, 151643, [9707, 1879]),
])
def test_real_tokenizers_load_with_their_special_tokens(family, length, bos, eos, hello):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(family))
    assert (len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id) == (length, bos, eos)
    assert tokenizer("Hello world").input_ids == hello


def test_tokenizers_are_cached_offline(monkeypatch):
    """The second call finds the unpacked folder and returns it: no npm, nothing unpacked, nothing written."""
    folder = tokenizer_folder("gpt2")

    def files():  # in it, and the work folders unpacking it would make next to it
        return {p.relative_to(folder.parent): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in [*folder.iterdir(), *folder.parent.glob(".gpt2-*")]}

    def no_unpacking(*args, **kwargs):
        raise AssertionError("npm called or a package unpacked for a cached tokenizer")

    before = files()
    monkeypatch.setattr(subprocess, "run", no_unpacking)
    monkeypatch.setattr(standins.tarfile, "open", no_unpacking)
    monkeypatch.setattr(standins.tempfile, "mkdtemp", no_unpacking)
    assert tokenizer_folder("gpt2") == folder and (folder / "vocab.json").stat().st_size == 1_042_301
    assert files() == before


@pytest.mark.parametrize("repo_id", list(PUBLISHED))
def test_tiny_standin_loads_offline_with_published_widths(hub_cache, repo_id):
    published = PUBLISHED[repo_id].config
    write_model(hub_cache.root, repo_id)
    model = AutoModelForCausalLM.from_pretrained(repo_id)
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert model.config.model_type == published["model_type"]
    assert model.config.num_hidden_layers == 2
    assert logits.shape == (1, 3, published["vocab_size"])
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()  # tied, as published
    special = (published["bos_token_id"], published["eos_token_id"])
    assert (model.config.bos_token_id, model.config.eos_token_id) == special
    assert (model.generation_config.bos_token_id, model.generation_config.eos_token_id) == special
    loaded, written = model.state_dict(), random_weights(standin_config(repo_id, "tiny"), seed=0)
    assert all(torch.equal(loaded[name], tensor) for name, tensor in written.items())


def test_widths_as_published():
    expected = {"openai-community/gpt2": 50257, "openai-community/gpt2-xl": 50257, "Qwen/Qwen2.5-0.5B": 151936,
                LLAMA: 128256, LLAMA_DECODER: 128256, "Clover-Hill/MemoryDecoder-Qwen-law": 151936}
    assert {repo_id: PUBLISHED[repo_id].config["vocab_size"] for repo_id in expected} == expected
    shape = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")
    qwen, llama = PUBLISHED["Qwen/Qwen2.5-0.5B"].config, PUBLISHED[LLAMA].config
    assert [qwen[key] for key in shape] == [24, 896, 4864, 14, 2]
    assert (qwen["rope_theta"], qwen["max_position_embeddings"], qwen["tie_word_embeddings"]) == (1e6, 32768, True)
    assert [llama[key] for key in shape] == [16, 2048, 8192, 32, 8]
    assert llama["rope_scaling"]["rope_type"] == "llama3" and llama["tie_word_embeddings"]
    assert PUBLISHED[LLAMA_DECODER].config["model_type"] == "qwen2"


def test_bin_weights_load_like_safetensors(hub_cache):
    repo_id = "Clover-Hill/MemoryDecoder-Qwen-law"
    from_safetensors = write_model(hub_cache.root, repo_id)
    from_bin = write_model(hub_cache.root, repo_id, weights="bin")
    assert (from_bin / "pytorch_model.bin").is_file() and not (from_bin / "model.safetensors").exists()
    assert (from_bin.parent.parent / "refs" / "main").read_text() == from_bin.name
    model = AutoModelForCausalLM.from_pretrained(repo_id)
    reference = AutoModelForCausalLM.from_pretrained(from_safetensors)
    assert model.config.vocab_size == 151936 and model.dtype == torch.bfloat16
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_llama_decoder_tokenizer_reads_as_qwen2_with_one_more_token(hub_cache):
    write_model(hub_cache.root, LLAMA)
    write_model(hub_cache.root, LLAMA_DECODER)
    base, decoder = AutoTokenizer.from_pretrained(LLAMA), AutoTokenizer.from_pretrained(LLAMA_DECODER)
    assert (len(base), len(decoder)) == (128256, 128257)
    assert type(decoder).__name__ == "Qwen2Tokenizer"
    assert decoder.convert_ids_to_tokens(128256) == "<|endoftext|>"
    shared = list(range(128256))
    assert base.convert_ids_to_tokens(shared) == decoder.convert_ids_to_tokens(shared)
    assert base("Hello world").input_ids == decoder("Hello world").input_ids == [128000, 9906, 1917]
    # Qwen2's pre-tokenizer splits numbers digit by digit where Llama 3 groups three: encode with the base's tokenizer
    assert base("2025").input_ids == [128000, 2366, 20]
    assert decoder("2025").input_ids == [128000, 17, 15, 17, 20]


def test_wikitext_shard_reads_back_as_the_dataset_stores_it(hub_cache):
    shard = write_wikitext(hub_cache.root)
    entry = hub_cache.root / "datasets--Salesforce--wikitext"
    commit = (entry / "refs" / "main").read_text()
    assert shard == entry / "snapshots" / commit / "wikitext-103-raw-v1" / "train-00000-of-00002.parquet"
    table = pq.read_table(shard)
    rows = table.column("text").to_pylist()
    assert table.column_names == ["text"] and len(rows) > 1500
    assert sum(len(row.encode()) for row in rows) > 200_000
    assert rows[:3] == ["", " = The assert statement = \n", ""]
    assert any(row.startswith(" = = ") and row.endswith(" = = \n") for row in rows)


def test_wikitext_rows_from_given_documents(hub_cache):
    shard = write_wikitext(hub_cache.root, ["Alpha Beta\n\nA well-known fact, stated.\n\n= = Later = =\n\nMore."])
    assert pq.read_table(shard).column("text").to_pylist() == [
        "", " = Alpha Beta = \n", "", " A well @-@ known fact , stated . \n", "", " = = Later = = \n", "", " More . \n"]


def test_cli_writes_and_reports(tmp_path, capsys):
    standins.main(["--hub-cache", str(tmp_path), "--ids", "openai-community/gpt2", "--wikitext"])
    printed = capsys.readouterr().out
    assert re.search(r"^openai-community/gpt2 \(tiny, \d+ MiB\): "
                     r".*models--openai-community--gpt2/snapshots/[0-9a-f]{40}$", printed, re.M)
    assert re.search(r"^Salesforce/wikitext \(\d+ KiB\): .*train-00000-of-00002\.parquet$", printed, re.M)
    assert (tmp_path / "models--openai-community--gpt2" / "refs" / "main").is_file()
    with pytest.raises(SystemExit):
        standins.main(["--hub-cache", str(tmp_path), "--ids", "nobody/nothing"])
