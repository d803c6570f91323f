"""Example prompts per memory, under the prompt box: a few openings in each served domain's own kind of text (the
embedded and SmolLM2 families share their corpora: software licences, State of the Union and World Factbook economy
notes, ontology definitions), and for a memory a visitor made, the first sentences of its own text."""
import re
from pathlib import Path

from ..core.documents import read_documents
from .presets import Memory

EXAMPLES = {  # by domain, the last part of a memory's name ("law", "smollm2/law")
    "law": ["Permission is hereby granted, free of charge, to any person obtaining a copy of",
            'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR',
            "Redistribution and use in source and binary forms, with or without"],
    "finance": ["The economy grew last year, and the unemployment rate fell to",
                "Inflation remained low while the federal budget deficit",
                "The country's main exports are oil, natural gas and"],
    "biomed": ["The protein binds to the receptor and",
               "A disease characterized by inflammation of the",
               "Any process that modulates the frequency, rate or extent of"],
    "wikitext": ["The game was released in North America in", "The species is found in the forests of",
                 "During the Second World War , the battalion"],  # WikiText's own spacing around punctuation
}
OWN_EXAMPLES, OWN_WORDS = 3, 12  # a visitor's memory: its first sentences, each cut to its first words


def for_memory(name: str, memory: Memory) -> list[str]:
    """The example prompts of a memory (none for a domain without examples, such as a published hub memory)."""
    if memory.store_root is not None and isinstance(memory.corpus, Path):  # made here: its own text speaks for it
        return opening(memory.corpus)
    return EXAMPLES.get(name.rsplit("/", 1)[-1], [])


def opening(corpus: Path) -> list[str]:
    """The first sentences of a text, each up to OWN_WORDS words."""
    found = []
    for document in read_documents(corpus):
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(document.split())):
            if sentence:
                found.append(" ".join(sentence.split()[:OWN_WORDS]))
            if len(found) == OWN_EXAMPLES:
                return found
    return found
