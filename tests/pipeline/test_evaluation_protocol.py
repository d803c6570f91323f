"""The evidence rules of the results: balanced splits without leaks, near-duplicate removal, sliding windows that
give each scored token half a window of context, and bootstrap intervals over documents."""
import random

import numpy as np
import pytest

from app.core.documents import read_documents
from app.core.models import load_tokenizer
from app.core.paths import DOMAINS, corpus_path, tokenizer_folder
from app.make import near_duplicates
from app.make.corpora import sections, split_documents
from app.make.intervals import paired_ratio, resample_weights, summary
from app.make.windows import sliding_windows


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("split", ("validation", "test"))
def test_committed_evaluation_splits_are_balanced(domain, split):
    tokenizer = load_tokenizer(tokenizer_folder())
    docs = read_documents(corpus_path(domain, split))
    tokens = [len(tokenizer(doc)["input_ids"]) for doc in docs]
    assert len(docs) >= 30
    assert max(tokens) <= 0.05 * sum(tokens), f"one document holds {max(tokens) / sum(tokens):.1%} of {domain}/{split}"


@pytest.mark.parametrize("domain", DOMAINS)
def test_no_evaluation_text_is_mostly_train_text(domain):
    seen = set().union(*map(near_duplicates.shingles, read_documents(corpus_path(domain, "train"))))
    for split in ("validation", "test"):
        for doc in read_documents(corpus_path(domain, split)):
            grams = near_duplicates.shingles(doc)
            assert len(grams & seen) <= len(grams) / 2, doc[:200]


def test_splits_are_a_pure_function_of_the_documents_and_seed():
    rng = random.Random(1)
    docs = [" ".join(f"w{rng.randint(0, 5000)}" for _ in range(rng.randint(20, 900))) for _ in range(400)]
    first, again = split_documents(docs, 20_000, 6_000), split_documents(list(docs), 20_000, 6_000)
    assert first == again and split_documents(docs, 20_000, 6_000, seed=1) != first
    assert all(len(d) <= 6_000 // 30 for split in ("validation", "test") for d in first[split])
    assert len(first["validation"]) >= 30 and len(first["test"]) >= 30
    # a document goes to one split only: no evaluation section is part of a train document
    train = set(first["train"])
    assert not any(section in doc for doc in train for section in first["test"][:20])


def test_sections_cut_long_documents_at_line_then_word_boundaries():
    doc = "short line\n" + " ".join(["word"] * 200) + "\nlast line"
    pieces = sections(doc, 120)
    assert all(len(p) <= 120 for p in pieces) and " ".join(" ".join(pieces).split()) == " ".join(doc.split())


def test_minhash_catches_licence_variants_and_keeps_distinct_texts():
    rng = random.Random(0)
    vocab = [f"term{i}" for i in range(3000)]
    licences = [f"Licence {i}\nCopyright (c) 2001 Author {i}\n" + " ".join(rng.choice(vocab) for _ in range(300))
                for i in range(40)]
    rate = near_duplicates.catch_rate(licences)
    assert rate["caught"] >= 0.95 * rate["variants"]
    variants = [v for doc in licences[:10] for v in near_duplicates.variants(doc, rng)]
    assert near_duplicates.dedupe(licences + variants) == licences


def test_sliding_windows_score_every_token_once_with_half_a_window_of_context():
    stream = np.arange(1, 1001) % 97  # 0 is the end of a document every 97 tokens
    w = sliding_windows(stream, eos_id=0, window=16, stride=8)
    scored_labels = w.scored(w.labels).numpy()
    # scored in stream order, once each: the labels of positions window - stride + 1 .. (the end, less a tail)
    start = 16 - 8 + 1
    assert np.array_equal(scored_labels, stream[start: start + len(scored_labels)])
    assert len(stream) - 1 - (start - 1) - len(scored_labels) < 8
    # each scored column has at least window - stride + 1 tokens of context
    assert w.inputs.shape[1] - w.stride + 1 >= 16 // 2
    # documents: a label belongs to the document its position is in (an end-of-document token ends its own)
    positions = np.arange(start, start + len(scored_labels))
    assert np.array_equal(w.documents, np.array([(stream[:p] == 0).sum() for p in positions]))
    with pytest.raises(ValueError):
        sliding_windows(stream, 0, window=16, stride=9)


def test_bootstrap_intervals_cover_the_estimate_and_separate_only_real_differences():
    rng = np.random.default_rng(0)
    docs = np.repeat(np.arange(60), 50)
    p = rng.uniform(0.01, 0.5, len(docs))
    weights = resample_weights(60)
    s = summary([p, p * 1.02, p * 0.98], docs, weights)
    assert s["lo"] < s["ppl"] < s["hi"] and s["seeds"] == 3 and s["seed_sd"] > 0
    assert paired_ratio([p * 1.2], [p], docs, weights)["separated"]  # a uniform 20% gain is certain
    # documents that gain and documents that lose, by as much: no difference on average, only noise
    noisy = p * np.exp(np.resize([-0.1, 0.1], 60))[docs]
    assert not paired_ratio([noisy], [p], docs, weights)["separated"]


def test_seeds_are_resampled_too_so_their_spread_widens_intervals_and_can_undo_an_order():
    rng = np.random.default_rng(1)
    docs = np.repeat(np.arange(60), 50)
    p = rng.uniform(0.01, 0.5, len(docs))
    weights = resample_weights(60)
    agreeing, spread = summary([p, p, p], docs, weights), summary([p * 0.9, p, p / 0.9], docs, weights)
    assert spread["ppl"] == pytest.approx(agreeing["ppl"])  # the same mean log-perplexity
    assert spread["hi"] - spread["lo"] > 2 * (agreeing["hi"] - agreeing["lo"])
    # a uniform 3% gain is certain between two runs, not between three runs that differ by 10% and one system
    assert paired_ratio([p], [p * 1.03], docs, weights)["separated"]
    assert not paired_ratio([p * 0.9, p, p / 0.9], [p * 1.03] * 3, docs, weights)["separated"]
    # systems with as many seeds draw the same seeds in each resample: a constant difference per seed stays certain
    assert paired_ratio([p * 0.9, p, p / 0.9], [p * 0.9 * 1.03, p * 1.03, p / 0.9 * 1.03], docs, weights)["separated"]
