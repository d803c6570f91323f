"""How much of each domain's evaluation text its train split already holds: of the word 5-grams (the near-duplicate
shingles) of test, and of validation, the share that also occur in train, counted over distinct 5-grams and over
every occurrence (as perplexity weighs the text). A kNN-LM retrieves train text, so it can gain most where this share
is high.

    python -m app.make.overlap      # writes assets/results/overlap.json
"""
import json

from ..core import paths
from ..core.documents import read_documents
from ..core.files import write_json
from .near_duplicates import word_grams


def grams(domain: str, split: str) -> list:
    return [g for doc in read_documents(paths.corpus_path(domain, split)) for g in word_grams(doc)]


def overlap(domain: str) -> dict:
    train = set(grams(domain, "train"))
    shares = {}
    for split in ("validation", "test"):
        held = grams(domain, split)
        distinct = set(held)
        shares[split] = {"five_grams": len(held), "distinct": len(distinct),
                         "percent_in_train": round(100 * sum(g in train for g in held) / len(held), 1),
                         "distinct_percent_in_train": round(100 * len(distinct & train) / len(distinct), 1)}
    return shares


def main():
    results = {"what": "share of the word 5-grams (app.make.near_duplicates.word_grams, within documents) of each "
                       "evaluation split that also occur in the domain's train split: over every occurrence, and over "
                       "distinct 5-grams",
               "domains": {domain: overlap(domain) for domain in paths.DOMAINS}}
    write_json(paths.RESULTS / "overlap.json", results)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
