"""Near-duplicate removal with MinHash and LSH banding (datasketch): licence variants that differ by a header, a
year or a copyright holder hash to the same bands and are dropped, keeping the first of each group.
`python -m app.make.corpora --near-duplicates` measures the catch rate on known variants of the licence texts.
"""
import random
import re

from datasketch import MinHash, MinHashLSH

NUM_PERM = 128
THRESHOLD = 0.7  # estimated Jaccard similarity of word 5-gram sets above which two documents are one


def word_grams(doc: str, n: int = 5) -> list:
    """The document's word n-grams in order, repeats included (one when it is shorter than n words)."""
    words = re.findall(r"\w+", doc.lower())
    return [" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))]


def shingles(doc: str, n: int = 5) -> set:
    return set(word_grams(doc, n))


def signature(doc: str) -> MinHash:
    m = MinHash(num_perm=NUM_PERM, seed=1)
    m.update_batch([s.encode() for s in shingles(doc)])
    return m


def dedupe(docs) -> list:
    """The documents in order, without any that nearly copies an earlier one."""
    lsh, kept = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM), []
    for doc in docs:
        sig = signature(doc)
        if not lsh.query(sig):
            lsh.insert(str(len(kept)), sig)
            kept.append(doc)
    return kept


def variants(doc: str, rng: random.Random) -> list:
    """Known kinds of licence variant: another year, another copyright holder, a changed header line."""
    year = re.sub(r"\b(19|20)\d\d\b", lambda m: str(rng.randint(1980, 2025)), doc)
    if year == doc:
        year = f"Copyright (c) {rng.randint(1980, 2025)}\n{doc}"
    holder = re.sub(r"(?i)(copyright (\(c\) )?[\d, -]*)([^\n]*)", lambda m: m.group(1) + "The Example Project Authors",
                    doc, count=1)
    if holder == doc:
        holder = f"{doc}\nCopyright The Example Project Authors"
    lines = doc.split("\n")
    header = "\n".join([f"{lines[0]} (version {rng.randint(1, 9)}.{rng.randint(0, 9)}, revised)"] + lines[1:])
    return [year, holder, header]


def catch_rate(docs: list, key=None, seed: int = 0) -> dict:
    """Of each document's known variants, how many the index recognises as near-copies of it; with key (a function
    of a document, as an exact-match key), also how many have the document's own key."""
    rng = random.Random(seed)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    for i, doc in enumerate(docs):
        lsh.insert(str(i), signature(doc))
    caught = key_caught = total = 0
    for i, doc in enumerate(docs):
        for variant in variants(doc, rng):
            total += 1
            caught += str(i) in lsh.query(signature(variant))
            key_caught += key is not None and key(variant) == key(doc)
    return {"documents": len(docs), "variants": total, "caught": caught} | (
        {"key_caught": key_caught} if key is not None else {})
