"""The whole Memory Decoder pipeline in one command:

    python -m app.pipeline            # corpora -> tokenizer -> base family -> per domain: datastore, kNN
                                      # temperature, kNN targets, Memory Decoder -> evaluation (+ loss ablation)

Every step is skipped when its output is current (its recorded inputs match) and resumes from its checkpoint
when it was cut off. A GPU is used when present. Results go to assets/results/ and the README table.
"""
import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import corpora, datastore, targets
from .evaluate import ALPHAS, knn_label_probs, label_probs, mixture_perplexity, perplexity, tune_alpha, tune_knn
from .models import BASE_SIZES, file_digest, load_lm, load_tokenizer, model_fingerprint, tokenizer_fingerprint
from .paths import CACHE, DOMAINS, MODELS, ROOT
from .tokens import blocks, encode_file
from .trainer import run_folder

RESULTS = ROOT / "assets" / "results"


def embedded_bases() -> dict:
    return {size: MODELS / f"base-{size}" for size in BASE_SIZES}


@dataclass
class Settings:
    domains: tuple = DOMAINS
    bases: dict = field(default_factory=embedded_bases)  # name -> folder or hub id, smallest to largest
    key: str = "large"  # the base whose hidden states are the datastore keys: the largest, as in the paper
    init: str = "small"  # the base each decoder starts from: the smallest, as in the paper
    base_steps: dict = field(default_factory=lambda: {"small": 400, "medium": 300, "large": 400})
    memdec_steps: int = 300
    memdec_lr: float = 1e-3  # the paper's rate for GPT-2 decoders
    batch_size: int = 32
    k: int = 128
    beta: float = 0.5
    block: int = 128
    train_chars: int = 500_000
    eval_chars: int = 60_000
    general_chars: int = 30_000_000
    ablation_domain: str = "finance"
    ablation_steps: int = 100


def say(msg: str):
    print(f"[pipeline] {msg}", flush=True)


def display(path_or_id) -> str:
    """A model as a person would name it: relative to the repository when it lives there."""
    path = Path(path_or_id).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path_or_id)


def write_json(path: Path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(data, indent=1))
    path.with_suffix(".tmp").replace(path)


def read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def corpora_step(s: Settings):
    if corpora.GENERAL.exists() and all(corpora.domain_path(d, sp).exists() for d in DOMAINS for sp in ("train", "validation", "test")):
        return say("corpora: current")
    say("corpora: building from packages")
    print(json.dumps(corpora.build(s.train_chars, s.eval_chars, s.general_chars), indent=1))


def tokenizer_step():
    folder = MODELS / "tokenizer"
    if (folder / "tokenizer.json").exists():
        return say("tokenizer: current")
    from .tokenizer import build_tokenizer

    say("tokenizer: training")
    build_tokenizer(corpora.read_documents(corpora.GENERAL),
                    [doc for d in DOMAINS for doc in corpora.read_documents(corpora.domain_path(d, "train"))], folder)


def token_counts_step():
    """Token counts of every corpus under the shared tokenizer, recorded next to the corpora."""
    tokenizer = load_tokenizer(MODELS / "tokenizer")
    fp = tokenizer_fingerprint(tokenizer)
    counts = {"general": int(len(encode_file(tokenizer, corpora.GENERAL, fp)))}
    counts.update({f"{d}/{sp}": int(len(encode_file(tokenizer, corpora.domain_path(d, sp), fp)))
                   for d in DOMAINS for sp in ("train", "validation", "test")})
    write_json(corpora.CORPORA / "token_counts.json", {"tokenizer": fp, "tokens": counts})
    say(f"token counts: {counts}")


def base_step(size: str, s: Settings):
    """Trains an embedded base; bases the user named (hub ids, folders) are used as they are."""
    from .train_base import base_recipe, train_base

    if s.bases.get(size) != MODELS / f"base-{size}":
        return say(f"{size}: {s.bases[size]} (given)")

    recipe = base_recipe(size, s.base_steps[size], 32, 2e-3)
    if read_json(MODELS / f"base-{size}" / "pipeline.json") == recipe:
        return say(f"base-{size}: current")
    say(f"base-{size}: training {s.base_steps[size]} steps")
    train_base(size, s.base_steps[size])


def domain_store(size: str, domain: str, s: Settings):
    folder = s.bases[size]
    model, tokenizer = load_lm(folder), load_tokenizer(folder)
    store = datastore.load_or_build(model, tokenizer, folder, corpora.domain_path(domain, "train"),
                                    datastore.store_folder(folder, domain), s.block)
    return model, tokenizer, store


def split_blocks(tokenizer, domain: str, split: str, block: int):
    return blocks(encode_file(tokenizer, corpora.domain_path(domain, split), tokenizer_fingerprint(tokenizer)), block)


def predictions(size: str, domain: str, split: str, s: Settings) -> dict:
    """p(next token) on a split for the base and its kNN-LM (all temperatures), cached by the store's fingerprints."""
    model, tokenizer, store = domain_store(size, domain, s)
    inputs, labels = split_blocks(tokenizer, domain, split, s.block)
    key = {"store": store.meta, "split": file_digest(corpora.domain_path(domain, split)), "k": s.k}
    cache = CACHE / "predictions" / f"base-{size}__{domain}__{split}"
    if read_json(cache / "key.json") == key:
        data = np.load(cache / "probs.npz")
        return {"base": data["base"], "knn": {float(t[4:]): data[t] for t in data.files if t.startswith("knn_")}}
    base = label_probs(model, inputs, labels, len(tokenizer))
    knn = knn_label_probs(model, store, inputs, labels, s.k)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cache / "probs.npz", base=base, **{f"knn_{t}": p for t, p in knn.items()})
    write_json(cache / "key.json", key)
    return {"base": base, "knn": knn}


def targets_step(domain: str, s: Settings) -> targets.SparseTargets:
    """kNN targets from the key model's store, at the temperature that makes its kNN-LM best on validation."""
    _, _, store = domain_store(s.key, domain, s)
    val = predictions(s.key, domain, "validation", s)
    temperature, lam = tune_knn(val["base"], val["knn"])
    folder = CACHE / "targets" / domain
    meta = read_json(folder / "targets.json")
    if meta and meta["datastore"] == store.meta and meta["k"] == s.k and meta["temperature"] == temperature:
        say(f"targets {domain}: current (T={temperature})")
        return targets.load(folder)
    say(f"targets {domain}: k={s.k}, T={temperature} (validation kNN-LM best at lambda={lam})")
    built = targets.build_targets(store, s.k, temperature)
    targets.save(built, folder)
    return built


def memdec_step(domain: str, s: Settings | None = None, beta: float | None = None, steps: int | None = None, out: Path | None = None):
    from .train_memdec import train_memdec

    s = s or Settings()
    beta = s.beta if beta is None else beta
    steps = steps or s.memdec_steps
    out = out or MODELS / f"memdec-{domain}"
    knn = targets_step(domain, s)
    init = s.bases[s.init]
    tokenizer = load_tokenizer(init)
    recipe = {"kind": "memdec", "domain": domain, "init": model_fingerprint(init), "beta": beta, "steps": steps,
              "lr": s.memdec_lr, "batch_size": s.batch_size, "block": s.block, "targets": {k: knn.meta[k] for k in ("k", "temperature")},
                "datastore": knn.meta["datastore"]["model"], "corpus": knn.meta["datastore"]["corpus"]}
    if read_json(out / "pipeline.json") == recipe:
        return say(f"{out.name}: current")
    say(f"{out.name}: training {steps} steps, beta={beta}")
    stream = encode_file(tokenizer, corpora.domain_path(domain, "train"), tokenizer_fingerprint(tokenizer))
    train_memdec(init, stream, knn, out, recipe, steps, beta=beta, lr=s.memdec_lr, batch_size=s.batch_size,
                 block=s.block, run_dir=run_folder(out.name, recipe))


def memdec_probs(folder: Path, domain: str, split: str, s: Settings) -> np.ndarray:
    model, tokenizer = load_lm(folder), load_tokenizer(folder)
    inputs, labels = split_blocks(tokenizer, domain, split, s.block)
    return label_probs(model, inputs, labels, len(tokenizer))


def evaluate_step(s: Settings) -> list:
    """The results table: for every domain and base size, base, +kNN-LM and +MemDec, tuned on validation."""
    rows = []
    for domain in s.domains:
        mem_folder = MODELS / f"memdec-{domain}"
        mem = {split: memdec_probs(mem_folder, domain, split, s) for split in ("validation", "test")}
        alpha_by_base, lambda_by_base, vals = {}, {}, {}
        for size in s.bases:
            val, test = (predictions(size, domain, split, s) for split in ("validation", "test"))
            vals[size] = val["base"]
            t, lam = tune_knn(val["base"], val["knn"])
            alpha = tune_alpha(val["base"], mem["validation"])
            alpha_by_base[size], lambda_by_base[size] = alpha, {"lambda": lam, "temperature": t}
            base_ppl = perplexity(test["base"])
            rows.append({"domain": domain, "base": size, "base_ppl": round(base_ppl, 3),
                         "knn_ppl": round(mixture_perplexity(test["base"], test["knn"][t], lam), 3), "knn_lambda": lam, "knn_temperature": t,
                         "memdec_ppl": round(mixture_perplexity(test["base"], mem["test"], alpha), 3), "memdec_alpha": alpha,
                         "memdec_alone_ppl": round(perplexity(mem["test"]), 3)})
            say(f"{domain} base-{size}: base {rows[-1]['base_ppl']}, +kNN-LM {rows[-1]['knn_ppl']}, +MemDec {rows[-1]['memdec_ppl']}")
        # One alpha for the decoder: the one best on validation averaged (in log perplexity) over the bases.
        alpha = min(ALPHAS, key=lambda a: sum(np.log(mixture_perplexity(vals[z], mem["validation"], a)) for z in s.bases))
        knn_meta = read_json(CACHE / "targets" / domain / "targets.json")
        write_json(mem_folder / "memdec.json", {"domain": domain, "alpha": alpha, "alpha_by_base": alpha_by_base,
                                                "knn_temperature": knn_meta["temperature"], "knn_k": s.k,
                                                "knn_by_base": lambda_by_base, "beta": s.beta,
                                                "tuned_on": "validation split", "key_model": display(s.bases[s.key])})
    write_results("evaluation", rows)
    return rows


def ablation_step(s: Settings) -> list:
    """KL only, CE only and both, at equal steps, on one domain."""
    domain, rows = s.ablation_domain, []
    for name, beta in (("KL only", 1.0), ("CE only", 0.0), ("KL + CE", 0.5)):
        folder = CACHE / "ablation" / f"memdec-{domain}-beta{beta}"
        memdec_step(domain, s, beta=beta, steps=s.ablation_steps, out=folder)
        mem = {split: memdec_probs(folder, domain, split, s) for split in ("validation", "test")}
        row = {"domain": domain, "loss": name, "beta": beta, "steps": s.ablation_steps, "memdec_alone_ppl": round(perplexity(mem["test"]), 3)}
        for size in s.bases:
            val, test = (predictions(size, domain, split, s)["base"] for split in ("validation", "test"))
            row[f"{size}+memdec_ppl"] = round(mixture_perplexity(test, mem["test"], tune_alpha(val, mem["validation"])), 3)
        rows.append(row)
        say(f"ablation {name}: {row}")
    write_results("ablation", rows)
    return rows


def write_results(name: str, rows: list):
    import pandas as pd

    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{name}.json", rows)
    pd.DataFrame(rows).to_csv(RESULTS / f"{name}.csv", index=False)
    (RESULTS / f"{name}.md").write_text(markdown_table(rows))
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
    missing = [f"{d}/{sp}" for d in s.domains for sp in ("train", "validation", "test") if d not in DOMAINS and not corpora.domain_path(d, sp).exists()]
    if missing:
        parser.error(f"no corpus for {', '.join(missing)} under {corpora.CORPORA}")
    if not args.base:  # the embedded family: its corpora, tokenizer and bases are made here too
        corpora_step(s)
        tokenizer_step()
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
