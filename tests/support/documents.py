"""Made-up documents drawn from small word lists: the tiny domains' corpora and the files the memory tests upload."""
import random
from pathlib import Path

WORDS = {
    "bio": "cell protein gene membrane enzyme binding receptor kinase tissue neuron signal pathway".split(),
    "law": "licence software copyright warranty party agreement notice permission liability terms".split(),
}


def word_documents(words, seed, documents=60):
    rng = random.Random(seed)
    return ["\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) + "." for _ in range(4))
            for _ in range(documents)]


def corpus_file(folder: Path, name="notes.txt", seed=5, documents=50) -> str:
    """Documents separated by blank lines, as a person would write them."""
    path = folder / name
    path.write_text("\n\n".join(word_documents(WORDS["bio"], seed, documents)) + "\n")
    return str(path)
