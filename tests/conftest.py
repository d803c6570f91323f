"""Shared fixtures: tiny GPT-2 models, a tokenizer and two tiny domain corpora, built once per session in a
temporary folder, so the suite is fast and never needs the embedded models or the network."""
import gzip
import json
import os
import random
import socket
import tempfile

os.environ.setdefault("MEMDEC_CACHE", tempfile.mkdtemp(prefix="memdec-cache-"))  # before app.paths is imported
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from app.engine import Engine, Memory  # noqa: E402
from app.models import save_model  # noqa: E402
from app.tokenizer import train_tokenizer  # noqa: E402

WORDS = {
    "bio": "cell protein gene membrane enzyme binding receptor kinase tissue neuron signal pathway".split(),
    "law": "licence software copyright warranty party agreement notice permission liability terms".split(),
}


def corpus(words, seed, documents=60):
    rng = random.Random(seed)
    return ["\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) + "." for _ in range(4))
            for _ in range(documents)]


def tiny_lm(tokenizer, seed, layers=2, width=32):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_layer=layers, n_embd=width, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(config)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{"bases": {name: folder}, "memories": {domain: Memory}, "tokenizer": ...} on disk."""
    root = tmp_path_factory.mktemp("tiny")
    docs = {domain: corpus(words, seed) for seed, (domain, words) in enumerate(WORDS.items())}
    tokenizer = train_tokenizer([d for ds in docs.values() for d in ds] + ["The quick brown fox."], vocab_size=400)
    bases = {}
    for name, layers in (("tiny-a", 2), ("tiny-b", 3)):
        bases[name] = root / f"base-{name}"
        save_model(tiny_lm(tokenizer, seed=len(bases), layers=layers), tokenizer, bases[name])
    memories = {}
    for domain, texts in docs.items():
        path = root / f"{domain}.txt.gz"
        with gzip.open(path, "wt") as f:
            f.write("\n\n\n".join(texts))
        folder = root / f"memdec-{domain}"
        save_model(tiny_lm(tokenizer, seed=10 + len(memories)), tokenizer, folder)
        (folder / "memdec.json").write_text(json.dumps({"alpha": 0.5, "knn_temperature": 5.0, "knn_k": 16, "domain": domain}))
        memories[domain] = Memory.from_folder(folder, path)
    return {"bases": bases, "memories": memories, "tokenizer": tokenizer}


@pytest.fixture(scope="session")
def engine(tiny_models):
    return Engine(tiny_models["bases"], tiny_models["memories"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(engine):
    """The real app on a free port, shared by the API and browser tests."""
    from app.ui import build

    demo = build(engine)
    port = free_port()
    demo.queue(max_size=16).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def pytest_configure(config):
    # gradio's queue still calls pandas options that pandas 3 deprecates; not ours to fix
    config.addinivalue_line("filterwarnings", "ignore:.*(no_silent_downcasting|copy keyword).*")
