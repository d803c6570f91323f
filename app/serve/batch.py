"""Batch mode: a list of prompts, each asked of every memory of a family with one base, each memory at its own tuned
weights; for each prompt and memory the top next tokens of every predictor, compare.to_dict's numbers."""
import csv
import io
from pathlib import Path

from . import compare, contract
from .engine import DEFAULTS, Engine, InputError
from .family import chosen

MAX_PROMPTS = 50  # each is one comparison per memory of the family
MAX_FILE_BYTES = 1_000_000
PREDICTORS = ("base", "memdec", "mix_memdec", "knn", "mix_knn")


def from_file(path) -> list[str]:
    """The prompts of a .txt (one a line) or a .csv (its column named prompt, else its first column) file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no file {path}")
    if path.suffix.lower() not in (".txt", ".csv"):
        raise InputError(f"{path.name}: give a .txt file (one prompt a line) or a .csv file (a column named prompt, "
                         "else the first column)")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{path.name} has {path.stat().st_size:,} bytes; the app reads at most {MAX_FILE_BYTES:,}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path.name} is not UTF-8 text") from None
    if path.suffix.lower() == ".txt":
        return text.splitlines()
    table = [r for r in csv.reader(io.StringIO(text)) if r]
    header = [cell.strip().lower() for cell in table[0]] if table else []
    if "prompt" in header:
        column = header.index("prompt")
        return [r[column] if column < len(r) else "" for r in table[1:]]
    return [r[0] for r in table]


def prompts_from(prompts=None, path=None) -> list[str]:
    """The prompts asked for: a file's (path), else a list of texts, else one text with one prompt a line; empty lines
    are skipped, and each prompt is checked as compare checks a prompt, before any model runs."""
    if path:
        listed = from_file(path)
    elif isinstance(prompts, list):
        listed = prompts
    else:
        listed = contract.text(prompts, "the prompts", limit=MAX_PROMPTS * contract.MAX_CHARS, empty=None).splitlines()
    listed = [p for p in listed if not isinstance(p, str) or p.strip()]
    if not listed:
        raise InputError("no prompt: paste prompts one per line, or upload a .txt or .csv file")
    if len(listed) > MAX_PROMPTS:
        raise InputError(f"{len(listed)} prompts; a batch takes at most {MAX_PROMPTS}")
    return [contract.text(p, f"prompt {i + 1}") for i, p in enumerate(listed)]


def batch(engine: Engine, prompts, base=None, family=None, top_n=DEFAULTS["top_n"], owner: str | None = None,
          path=None, progress=None) -> dict:
    """Every prompt (prompts_from) asked of every memory of family (None: the base's), prompt by prompt."""
    prompts = prompts_from(prompts, path)
    top_n = contract.check("top_n", top_n, int, default=DEFAULTS["top_n"])
    base, family, listed = chosen(engine, base, family, owner)
    answers = {}
    for _, name in listed:
        # once per memory, at its own weights for this base
        resolved = engine.resolve(base=base, domain=name, owner=owner)
        for i, prompt in enumerate(prompts):
            d = compare.to_dict(compare.next_token(engine, resolved, prompt, progress), resolved.weights, top_n)
            answers[i, name] = {"prompt": prompt, "memory": name, "alpha": d["alpha"], "knn_lambda": d["knn_lambda"],
                                "prompt_tokens_dropped": d["prompt_tokens_dropped"], "top": d["top"],
                                "knn_unavailable": d["knn_unavailable"]}
    return {"base": base, "family": family, "top_n": top_n, "prompts": prompts,
            "results": [answers[i, name] for i in range(len(prompts)) for _, name in listed]}


def rows(result: dict) -> list[dict]:
    """The table: one row per prompt, memory and rank, each predictor's token and probability at that rank; why a
    kNN-LM is missing on the first row of its prompt and memory."""
    out = []
    for r in result["results"]:
        for rank in range(len(r["top"]["base"])):
            row = {"prompt": r["prompt"], "memory": r["memory"], "rank": rank + 1}
            for name in [n for n in PREDICTORS if n in r["top"]]:
                row[name], row[f"p {name}"] = r["top"][name][rank]["token"], r["top"][name][rank]["p"]
            row["note"] = (r["knn_unavailable"] or "") if rank == 0 else ""
            out.append(row)
    return out
