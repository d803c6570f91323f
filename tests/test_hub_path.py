"""Hub ids (the real GPT-2 / Qwen / Llama path) resolve through the local hub cache, offline, to the same code."""
import huggingface_hub.constants as hub
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from app import datastore
from app.corpora import write_text
from app.models import load_lm, load_tokenizer, model_fingerprint, resolve, save_model
from app.tokenizer import train_tokenizer

REPO, COMMIT = "tiny-org/tiny-gpt2", "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    """A hub cache holding one tiny model, laid out as huggingface_hub writes it after a download."""
    tokenizer = train_tokenizer(["the licensee may copy the software and the notice"] * 5, vocab_size=280)
    entry = tmp_path / ("models--" + REPO.replace("/", "--"))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=16, n_head=2, n_positions=32))
    save_model(model, tokenizer, entry / "snapshots" / COMMIT)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    return tmp_path


def test_hub_id_loads_fingerprints_and_keys_a_datastore(hub_cache, tmp_path):
    folder = resolve(REPO)
    assert folder == hub_cache / ("models--" + REPO.replace("/", "--")) / "snapshots" / COMMIT
    model, tokenizer = load_lm(REPO, torch.device("cpu")), load_tokenizer(REPO)
    assert model_fingerprint(REPO) == model_fingerprint(folder)
    corpus = tmp_path / "corpus.txt.gz"
    write_text(corpus, ["the licensee may copy the software", "the notice and the software"] * 4)
    store = datastore.load_or_build(model, tokenizer, REPO, corpus, tmp_path / "store", block=8)
    assert store.keys.shape[1] == 16 and len(store) % 8 == 0
    assert store.meta["model"] == model_fingerprint(folder)


def test_unknown_hub_id_gets_a_clear_message(hub_cache):
    with pytest.raises(FileNotFoundError, match="neither a local folder nor reachable on the hub"):
        resolve("nobody/no-such-model")
