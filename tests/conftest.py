"""Fixtures shared across the test folders: tiny GPT-2 models, tokenizers, corpora, the hub stand-ins and a served
app, built in temporary folders, so the suite is fast and never needs the embedded models or the network. Builders
are fixtures that return functions, so each test file makes the small world it needs the same way."""
import json
import os
import tempfile

os.environ.setdefault("MEMDEC_CACHE", tempfile.mkdtemp(prefix="memdec-cache-"))  # before app.core.paths is imported
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEMDEC_PRESET", "embedded")  # app.py's default is SmolLM2, fetched: tests name what they serve

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from app.core.documents import write_documents  # noqa: E402
from app.core.models import save_model  # noqa: E402
from app.make.tokenizer import train_tokenizer  # noqa: E402
from app.serve.engine import Engine, Memory  # noqa: E402
from tests.support.documents import WORDS, word_documents  # noqa: E402
from tests.support.serving import serve_in_background  # noqa: E402


@pytest.fixture(scope="session")
def tiny_lm():
    """tiny_lm(tokenizer, seed, layers, width, positions) -> a random GPT-2 over the tokenizer's ids."""
    def make(tokenizer, seed=0, layers=1, width=32, positions=64):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=positions, n_layer=layers,
                                          n_embd=width, n_head=2, bos_token_id=tokenizer.eos_token_id,
                                          eos_token_id=tokenizer.eos_token_id))
    return make


@pytest.fixture(scope="session")
def tiny_family(tiny_lm):
    """tiny_family(folder, texts, {name: (layers, width)}, vocab, positions) -> (tokenizer, {name: saved folder})."""
    def make(folder, texts, sizes, vocab=300, positions=64):
        tokenizer = train_tokenizer(texts, vocab_size=vocab)
        saved = {}
        for seed, (name, (layers, width)) in enumerate(sizes.items()):
            saved[name] = folder / name
            save_model(tiny_lm(tokenizer, seed, layers, width, positions), tokenizer, saved[name])
        return tokenizer, saved
    return make


@pytest.fixture(scope="session")
def standin_hub(tmp_path_factory):
    """A hub cache holding tiny stand-ins of the published checkpoints under their real ids (the Qwen decoder as
    pytorch_model.bin, as its hub page suggests) and a WikiText sample; built once per session."""
    from tests.support import standins

    root = tmp_path_factory.mktemp("hub")
    for base, decoder in standins.STANDINS.values():
        standins.write_model(root, base)
        standins.write_model(root, decoder, weights="bin" if "Qwen" in decoder else "safetensors", seed=1)
    standins.write_wikitext(root)
    return root


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tiny_family, tiny_lm):
    """{"bases": {name: folder}, "memories": {domain: Memory}, "tokenizer": ...} on disk: two bases and two domains."""
    root = tmp_path_factory.mktemp("tiny")
    docs = {domain: word_documents(words, seed) for seed, (domain, words) in enumerate(WORDS.items())}
    texts = [d for ds in docs.values() for d in ds] + ["The quick brown fox."]
    tokenizer, folders = tiny_family(root, texts, {"base-tiny-a": (2, 32), "base-tiny-b": (3, 32)},
                                     vocab=400, positions=128)
    bases = {name[len("base-"):]: folder for name, folder in folders.items()}
    memories = {}
    for seed, (domain, texts) in enumerate(docs.items()):
        path = root / f"{domain}.txt.gz"
        write_documents(path, texts)
        folder = root / f"memdec-{domain}"
        save_model(tiny_lm(tokenizer, 10 + seed, 2, 32, 128), tokenizer, folder)
        (folder / "memdec.json").write_text(json.dumps(  # the kNN-LM's own weight per base, as the pipeline tunes it
            {"alpha": 0.5, "knn_temperature": 5.0, "knn_k": 16, "domain": domain,
             "label": f"made-up {domain} word lists",
             "knn_by_base": {"tiny-a": {"lambda": 0.35}, "tiny-b": {"lambda": 0.7}}}))
        memories[domain] = Memory.from_folder(folder, path)
    return {"bases": bases, "memories": memories, "tokenizer": tokenizer}


@pytest.fixture(scope="session")
def engine(tiny_models):
    return Engine(tiny_models["bases"], tiny_models["memories"])


@pytest.fixture(scope="session")
def server(engine):
    """The real app on a free port, shared by every folder that calls it over HTTP or drives its page."""
    url, demo = serve_in_background(engine)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def one_thread_jobs():
    """Distillation processes of tiny models on one thread: they gain nothing from more, and on a shared CPU
    OpenMP's waiting threads make each step ten times slower."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield


def pytest_configure(config):
    # gradio's queue still calls pandas options that pandas 3 deprecates; not ours to fix
    config.addinivalue_line("filterwarnings", "ignore:.*(no_silent_downcasting|copy keyword).*")
