"""What a visitor gives to make a memory of: a file uploaded (.txt, .txt.gz, .jsonl) or text pasted, read within the
limits, cut into documents and split into train and validation; every refusal says what is wrong with the text. Nothing
here writes or serves anything (app.serve.memories does)."""
import gzip
import json
import os
import re
import zlib
from pathlib import Path

from ..core.documents import sections
from ..core.settings import Settings
from ..core.vocab import document_start_ids
from .contract import InputError

MAX_BYTES = 1_000_000  # of text, unpacked: about 250k tokens here, a distillation of about 16 minutes on 2 CPU cores
KINDS = (".txt.gz", ".txt", ".jsonl")
SECTION_CHARS = 2_000  # longer documents are cut, so that one long text still splits into train and validation
VALIDATION_EVERY = 10  # every tenth document is held out for validation
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def limits_text() -> str:
    return (f"`.txt` (documents separated by a blank line), `.txt.gz`, or `.jsonl` (one document per line, in a `text` "
            f"field), at most {MAX_BYTES / 1e6:g} MB of UTF-8 text; or paste it. One document in {VALIDATION_EVERY} is "
            f"held out for validation; documents longer than {SECTION_CHARS:,} characters are cut into sections.")


def read_upload(path) -> tuple[str, list[str]]:
    """(a name from the file's, its documents), or an InputError that says what is wrong with the file."""
    filename = Path(path).name
    kind = next((k for k in KINDS if filename.lower().endswith(k)), None)
    if kind is None:
        raise InputError(f"{filename}: only .txt, .txt.gz and .jsonl files are read")
    if kind == ".txt.gz":
        try:
            with gzip.open(path) as f:
                data = f.read(MAX_BYTES + 1)
        except (OSError, EOFError, zlib.error) as error:
            raise InputError(f"{filename} is not a readable gzip file ({error})") from None
    elif os.path.getsize(path) > MAX_BYTES:
        raise InputError(f"{filename} is {os.path.getsize(path) / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:g} MB limit")
    else:
        data = Path(path).read_bytes()
    text = decoded(filename, data)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", filename[: -len(kind)]).strip("-_")[:40] or "upload"
    return stem, jsonl_documents(filename, text) if kind == ".jsonl" else text_documents(text)


def read_pasted(text: str) -> list[str]:
    return text_documents(decoded("the pasted text", text.encode()))


def decoded(what: str, data: bytes) -> str:
    if not data.strip():
        raise InputError(f"{what} is empty")
    if len(data) > MAX_BYTES:
        raise InputError(f"{what} holds more than {MAX_BYTES / 1e6:g} MB of text, the limit")
    if b"\0" in data:
        raise InputError(f"{what} is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} is not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start:,}): "
                         "save it as UTF-8") from None


def text_documents(text: str) -> list[str]:
    return [d.strip() for d in re.split(r"\n\s*\n", text) if d.strip()]


def jsonl_documents(filename: str, text: str) -> list[str]:
    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{filename}, line {number}, is not JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputError(f'{filename}, line {number}, has no "text" field holding a string')
        documents += [record["text"].strip()] if record["text"].strip() else []
    return documents


def split(documents: list[str], tokenizer) -> tuple[dict, dict]:
    """({split: documents}, {split: tokens}): every tenth section held out (the last one when there are fewer than
    ten); each split must fill at least one block of the store and of training."""
    pieces = [s for d in documents for s in sections(d, SECTION_CHARS)]
    held = set(range(VALIDATION_EVERY - 1, len(pieces), VALIDATION_EVERY)) or {len(pieces) - 1}
    parts = {"train": [p for i, p in enumerate(pieces) if i not in held],
             "validation": [pieces[i] for i in sorted(held)]}
    tokens = token_counts(parts, tokenizer)
    if min(tokens.values()) <= Settings.block:
        raise InputError(f"the text is too short to split: {len(pieces)} document(s), {tokens['train']:,} tokens to "
                         f"train on and {tokens['validation']:,} held out, and each part needs more than "
                         f"{Settings.block} tokens: give at least about {Settings.block * VALIDATION_EVERY * 2:,} "
                         "tokens in two or more documents")
    return parts, tokens


def token_counts(parts: dict, tokenizer) -> dict:
    """{split: tokens} as the store and training read them: each document's start ids, its text, its end token."""
    start = len(document_start_ids(tokenizer)) + 1
    encode = tokenizer.backend_tokenizer.encode_batch
    return {name: sum(start + len(e.ids) for e in encode(docs, add_special_tokens=False))
            for name, docs in parts.items()}


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise InputError(f"{name!r} is not a usable name: 1 to 40 letters, digits, '-' or '_', starting with a letter "
                         "or digit")
    return name
