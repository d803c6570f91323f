"""Hub ids (the real GPT-2 / Qwen / Llama path) resolve through the local hub cache, offline, to the same code."""
import pytest
import torch

from app.core import datastore
from app.core.documents import write_documents
from app.core.models import load_lm, load_tokenizer, model_fingerprint, resolve, save_model
from app.make.tokenizer import train_tokenizer

REPO = "tiny-org/tiny-gpt2"


@pytest.fixture()
def hub_model(hub_cache, tiny_lm):
    """One tiny model in the offline hub cache, as huggingface_hub leaves it after a download."""
    tokenizer = train_tokenizer(["the licensee may copy the software and the notice"] * 5, vocab_size=280)
    return hub_cache.add(REPO, lambda folder: save_model(tiny_lm(tokenizer, width=16, positions=32), tokenizer, folder))


def test_hub_id_loads_fingerprints_and_keys_a_datastore(hub_model, tmp_path):
    folder = resolve(REPO)
    assert folder == hub_model
    model, tokenizer = load_lm(REPO, torch.device("cpu")), load_tokenizer(REPO)
    assert model_fingerprint(REPO) == model_fingerprint(folder)
    corpus = tmp_path / "corpus.txt.gz"
    write_documents(corpus, ["the licensee may copy the software", "the notice and the software"] * 4)
    store = datastore.load_or_build(model, tokenizer, REPO, corpus, tmp_path / "store", block=8)
    assert store.keys.shape[1] == 16 and len(store) % 8 == 0
    assert store.recipe["model"] == model_fingerprint(folder)


def test_unknown_hub_id_gets_a_clear_message(hub_cache):
    with pytest.raises(FileNotFoundError, match="neither a local folder nor reachable on the hub"):
        resolve("nobody/no-such-model")
