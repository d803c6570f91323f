"""The whole Memory Decoder pipeline in one command:

    python -m app.make.pipeline       # corpora -> tokenizer -> base family -> per domain: datastore, kNN
                                      # temperature, kNN targets, Memory Decoder -> evaluation (+ loss ablation)

Every step compares the recipe recorded with its output to the one wanted now (app.core.recipe) and is skipped
when they match; training resumes from its checkpoint when it was cut off. A GPU is used when present. Results
go to assets/results/; the evaluation, the ablation and the token counts are reports, rewritten at every run.
"""
import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import datastore, paths, recipe
from ..core.distributions import perplexity
from ..core.documents import read_documents
from ..core.files import write_json, write_text
from ..core.models import file_digest, load_lm, load_tokenizer, tokenizer_fingerprint
from ..core.paths import DOMAINS, SPLITS, corpus_path
from ..core.settings import Settings
from ..core.tokens import blocks, encode_file
from . import corpora, targets
from .evaluate import knn_label_probs, label_probs, mixture_perplexity, tune_alpha, tune_knn
from .tokenizer import build_tokenizer
from .train_base import base_recipe, train_base
from .train_memdec import distil


def say(msg: str):
    print(f"[pipeline] {msg}", flush=True)


def display(path_or_id) -> str:
    """A model as a person would name it: relative to the repository when it lives there."""
    path = Path(path_or_id).resolve()
    return str(path.relative_to(paths.ROOT)) if path.is_relative_to(paths.ROOT) else str(path_or_id)


def corpora_step(s: Settings):
    """The general corpus (cache) and any missing domain split; committed splits are never rewritten."""
    if corpora.is_current(s.train_chars, s.eval_chars, s.general_chars):
        return say("corpora: current")
    say("corpora: building from packages")
    say(f"corpora: {corpora.build(s.train_chars, s.eval_chars, s.general_chars)}")


def tokenizer_recipe(s: Settings) -> dict:
    return {"kind": "tokenizer", "vocab_size": s.vocab_size, "sample_chars": s.tokenizer_sample_chars,
            "context": s.context, "general": file_digest(paths.general_corpus())}


def tokenizer_step(s: Settings):
    folder, made_from = paths.tokenizer_folder(), tokenizer_recipe(s)
    if recipe.is_current(folder, made_from):
        return say("tokenizer: current")
    say("tokenizer: training")
    build_tokenizer(read_documents(paths.general_corpus()), folder, s.vocab_size, s.tokenizer_sample_chars, s.context,
                    made_from)


def token_counts_step():
    """Token counts of every corpus under the shared tokenizer, recorded next to the corpora."""
    tokenizer = load_tokenizer(paths.tokenizer_folder())
    fp = tokenizer_fingerprint(tokenizer)
    counts = {"general": int(len(encode_file(tokenizer, paths.general_corpus(), fp)))}
    counts.update({f"{d}/{sp}": int(len(encode_file(tokenizer, corpus_path(d, sp), fp))) for d in DOMAINS for sp in SPLITS})
    write_json(paths.CORPORA / "token_counts.json", {"tokenizer": fp, "tokens": counts})
    say(f"token counts: {counts}")


def base_step(size: str, s: Settings):
    """Trains an embedded base; bases the user named (hub ids, folders) are used as they are."""
    folder = paths.model_folder("base", size)
    if s.bases.get(size) != folder:
        return say(f"{size}: {s.bases[size]} (given)")
    if recipe.is_current(folder, base_recipe(size, s)):
        return say(f"base-{size}: current")
    say(f"base-{size}: training {s.base_steps[size]} steps")
    train_base(size, s)


def domain_store(size: str, domain: str, s: Settings):
    folder = s.bases[size]
    model, tokenizer = load_lm(folder), load_tokenizer(folder)
    store = datastore.load_or_build(model, tokenizer, folder, corpus_path(domain, "train"),
                                    paths.store_folder(folder, domain), s.block)
    return model, tokenizer, store


def split_blocks(tokenizer, domain: str, split: str, block: int):
    return blocks(encode_file(tokenizer, corpus_path(domain, split), tokenizer_fingerprint(tokenizer)), block)


def predictions(size: str, domain: str, split: str, s: Settings) -> dict:
    """p(next token) on a split for the base and its kNN-LM (every temperature of the grid), cached with its recipe."""
    model, tokenizer, store = domain_store(size, domain, s)
    folder = paths.predictions_folder(size, domain, split)
    made_from = {"store": store.recipe, "split": file_digest(corpus_path(domain, split)), "k": s.k,
                 "temperatures": list(s.temperatures)}
    if recipe.is_current(folder, made_from):
        data = np.load(folder / "probs.npz")
        return {"base": data["base"], "knn": {float(t[4:]): data[t] for t in data.files if t.startswith("knn_")}}
    inputs, labels = split_blocks(tokenizer, domain, split, s.block)
    base = label_probs(model, inputs, labels, len(tokenizer))
    knn = knn_label_probs(model, store, inputs, labels, s.k, s.temperatures)
    folder.mkdir(parents=True, exist_ok=True)
    recipe.forget(folder)
    np.savez(folder / "probs.npz", base=base, **{f"knn_{t}": p for t, p in knn.items()})
    recipe.record(folder, made_from)
    return {"base": base, "knn": knn}


def targets_step(domain: str, s: Settings) -> targets.SparseTargets:
    """kNN targets from the key model's store, at the temperature that makes its kNN-LM best on validation."""
    _, _, store = domain_store(s.key, domain, s)
    val = predictions(s.key, domain, "validation", s)
    temperature, lam = tune_knn(val["base"], val["knn"], s.alphas)
    folder = paths.targets_folder(domain)
    if recipe.is_current(folder, targets.targets_recipe(store.recipe, s.k, temperature)):
        say(f"targets {domain}: current (T={temperature})")
        return targets.load(folder)
    say(f"targets {domain}: k={s.k}, T={temperature} (validation kNN-LM best at lambda={lam})")
    built = targets.build_targets(store, s.k, temperature)
    targets.save(built, folder)
    return built


def memdec_step(domain: str, s: Settings, beta: float | None = None, steps: int | None = None, out: Path | None = None):
    beta = s.beta if beta is None else beta
    steps = steps or s.memdec_steps
    out = out or paths.model_folder("memdec", domain)
    if not distil(domain, targets_step(domain, s), s, beta, steps, out, announce=say):
        say(f"{out.name}: current")


def memdec_probs(folder: Path, domain: str, split: str, s: Settings) -> np.ndarray:
    model, tokenizer = load_lm(folder), load_tokenizer(folder)
    inputs, labels = split_blocks(tokenizer, domain, split, s.block)
    return label_probs(model, inputs, labels, len(tokenizer))


def evaluate_step(s: Settings) -> list:
    """The results table: for every domain and base size, base, +kNN-LM and +MemDec, tuned on validation."""
    rows = []
    for domain in s.domains:
        mem_folder = paths.model_folder("memdec", domain)
        mem = {split: memdec_probs(mem_folder, domain, split, s) for split in ("validation", "test")}
        alpha_by_base, lambda_by_base, vals = {}, {}, {}
        for size in s.bases:
            val, test = (predictions(size, domain, split, s) for split in ("validation", "test"))
            vals[size] = val["base"]
            t, lam = tune_knn(val["base"], val["knn"], s.alphas)
            alpha = tune_alpha(val["base"], mem["validation"], s.alphas)
            alpha_by_base[size], lambda_by_base[size] = alpha, {"lambda": lam, "temperature": t}
            base_ppl = perplexity(test["base"])
            rows.append({"domain": domain, "base": size, "base_ppl": round(base_ppl, 3),
                         "knn_ppl": round(mixture_perplexity(test["base"], test["knn"][t], lam), 3), "knn_lambda": lam, "knn_temperature": t,
                         "memdec_ppl": round(mixture_perplexity(test["base"], mem["test"], alpha), 3), "memdec_alpha": alpha,
                         "memdec_alone_ppl": round(perplexity(mem["test"]), 3)})
            say(f"{domain} base-{size}: base {rows[-1]['base_ppl']}, +kNN-LM {rows[-1]['knn_ppl']}, +MemDec {rows[-1]['memdec_ppl']}")
        # One alpha for the decoder: the one best on validation averaged (in log perplexity) over the bases.
        alpha = min(s.alphas, key=lambda a: sum(np.log(mixture_perplexity(vals[z], mem["validation"], a)) for z in s.bases))
        knn = recipe.recorded(paths.targets_folder(domain))
        write_json(mem_folder / "memdec.json", {"domain": domain, "alpha": alpha, "alpha_by_base": alpha_by_base,
                                                "knn_temperature": knn["temperature"], "knn_k": s.k,
                                                "knn_by_base": lambda_by_base, "beta": s.beta,
                                                "tuned_on": "validation split", "key_model": display(s.bases[s.key])})
    write_results("evaluation", rows)
    return rows


def ablation_step(s: Settings) -> list:
    """KL only, CE only and both, at equal steps, on one domain."""
    domain, rows = s.ablation_domain, []
    for name, beta in (("KL only", 1.0), ("CE only", 0.0), ("KL + CE", 0.5)):
        folder = paths.ablation_folder(domain, beta)
        memdec_step(domain, s, beta=beta, steps=s.ablation_steps, out=folder)
        mem = {split: memdec_probs(folder, domain, split, s) for split in ("validation", "test")}
        row = {"domain": domain, "loss": name, "beta": beta, "steps": s.ablation_steps, "memdec_alone_ppl": round(perplexity(mem["test"]), 3)}
        for size in s.bases:
            val, test = (predictions(size, domain, split, s)["base"] for split in ("validation", "test"))
            row[f"{size}+memdec_ppl"] = round(mixture_perplexity(test, mem["test"], tune_alpha(val, mem["validation"], s.alphas)), 3)
        rows.append(row)
        say(f"ablation {name}: {row}")
    write_results("ablation", rows)
    return rows


def write_results(name: str, rows: list):
    """JSON, CSV and a Markdown table; an infinite perplexity (a token given probability 0) is written as null."""
    rows = [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()} for row in rows]
    write_json(paths.RESULTS / f"{name}.json", rows)
    write_text(paths.RESULTS / f"{name}.csv", pd.DataFrame(rows).to_csv(index=False))
    write_text(paths.RESULTS / f"{name}.md", markdown_table(rows))
    print(markdown_table(rows))


def markdown_table(rows: list) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", default=",".join(DOMAINS),
                        help="comma-separated; a new domain needs assets/corpora/<name>/{train,validation,test}.txt")
    parser.add_argument("--base", action="append", metavar="NAME=PATH_OR_HUB_ID",
                        help="bases to use instead of the embedded family, smallest first (repeat the option)")
    parser.add_argument("--key", help="name of the base whose states are the datastore keys (default: the last)")
    parser.add_argument("--init", help="name of the base each decoder starts from (default: the first)")
    parser.add_argument("--memdec-steps", type=int, default=Settings.memdec_steps)
    parser.add_argument("--k", type=int, default=Settings.k)
    parser.add_argument("--beta", type=float, default=Settings.beta)
    parser.add_argument("--skip-ablation", action="store_true")
    args = parser.parse_args()
    s = Settings(domains=tuple(args.domains.split(",")), memdec_steps=args.memdec_steps, k=args.k, beta=args.beta)
    if args.base:
        s.bases = dict(item.split("=", 1) for item in args.base)
        s.key, s.init = args.key or list(s.bases)[-1], args.init or list(s.bases)[0]
    missing = [f"{d}/{sp}" for d in s.domains for sp in SPLITS if d not in DOMAINS and not corpus_path(d, sp).exists()]
    if missing:
        parser.error(f"no corpus for {', '.join(missing)} under {paths.CORPORA}")
    if not args.base:  # the embedded family: its corpora, tokenizer and bases are made here too
        corpora_step(s)
        tokenizer_step(s)
        token_counts_step()
    for size in s.bases:
        base_step(size, s)
    for domain in s.domains:
        memdec_step(domain, s)
    evaluate_step(s)
    if not args.skip_ablation:
        ablation_step(s)


if __name__ == "__main__":
    main()
