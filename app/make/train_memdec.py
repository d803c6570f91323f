"""Train a Memory Decoder: a small LM that imitates the kNN-LM's distribution on a domain corpus.

loss = beta * KL(p_kNN || p_mem) + (1 - beta) * CE(p_mem, next token); beta = 1 is KL only, 0 is CE only.
Runs through accelerate, so `accelerate launch -m app.make.train_memdec DOMAIN` spreads it over several GPUs
(after `python -m app.make.pipeline` has built the domain's kNN targets).
"""
import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core import datastore, paths, recipe
from ..core.models import load_lm, load_tokenizer, model_fingerprint, save_model, tokenizer_fingerprint
from ..core.settings import Settings, warmup
from ..core.tokens import blocks, encode_file
from . import targets
from .trainer import TrainConfig, train

VALIDATION_BLOCKS = 64  # the training curve's held-out blocks (8,192 tokens of the validation split)


def memdec_loss(logits: torch.Tensor, labels: torch.Tensor, target_ids: torch.Tensor | None,
                target_probs: torch.Tensor | None, beta: float, vocab_size: int):
    """logits (n, V'), labels (n,), target_ids / target_probs (n, m) zero-padded sparse p_kNN rows (None for CE
    only)."""
    logp = torch.log_softmax(logits[:, :vocab_size].float(), dim=-1)
    ce = F.nll_loss(logp, labels)
    if target_ids is None:
        return ce, {"ce": ce.item()}
    # KL over the support of p_kNN: sum p (log p - log q); padded entries have p = 0 and add nothing.
    kl = (torch.xlogy(target_probs, target_probs) - target_probs * logp.gather(1, target_ids)).sum(-1).mean()
    return beta * kl + (1 - beta) * ce, {"kl": kl.item(), "ce": ce.item()}


def decoder_loss(beta: float, vocab_size: int):
    """loss_fn(model, batch) for the trainer: memdec_loss on the model's logits for the batch's blocks; a batch
    without kNN rows (make_batches given no targets) is CE only. The pipeline's decoders and a visitor's share it."""
    def loss_fn(model, batch):
        logits = model(input_ids=batch["input_ids"]).logits.flatten(0, 1)
        return memdec_loss(logits, batch["labels"].flatten(), batch.get("target_ids"), batch.get("target_probs"), beta,
                           vocab_size)

    return loss_fn


def make_batches(inputs: torch.Tensor, labels: torch.Tensor, knn, batch_size: int, seed: int = 0):
    """batch_at(step): random blocks with their kNN rows (when knn is given); block b, column c is datastore entry
    b * block + c."""
    length = inputs.shape[1]

    def batch_at(step: int) -> dict:
        rows = np.random.default_rng([seed, step]).integers(0, len(inputs), size=batch_size)
        batch = {"input_ids": inputs[rows], "labels": labels[rows]}
        if knn is not None:
            positions = (rows[:, None] * length + np.arange(length)).ravel()
            batch["target_ids"], batch["target_probs"] = knn.padded(positions)
        return batch

    return batch_at


def memdec_recipe(domain: str, knn: targets.SparseTargets | None, s: Settings, beta: float, steps: int, seed: int = 0,
                  init: str | None = None, lr: float | None = None) -> dict:
    """Everything a decoder depends on; a decoder whose recorded recipe matches this is current. The targets' recipe
    holds the key model's datastore recipe, so a store made another way (model, corpus, index) means a new decoder.
    CE only (beta = 0) reads no targets: it is plain training on the domain text (from the key model, DAPT)."""
    return {"kind": "memdec", "domain": domain, "init": model_fingerprint(s.start(init)), "beta": beta,
            "steps": steps, "lr": lr or s.memdec_lr, "warmup": warmup(s.memdec_warmup, steps),
            "batch_size": s.batch_size, "block": s.block, "targets": knn.recipe if beta > 0 else None, "seed": seed}


def validation_ce(inputs: torch.Tensor, labels: torch.Tensor, vocab_size: int, batch_size: int):
    """validate(model) for the trainer: the model's cross-entropy on held-out blocks, its training curve."""
    def validate(model) -> dict:
        device, total = next(model.parameters()).device, 0.0
        for start in range(0, len(inputs), batch_size):
            part = slice(start, start + batch_size)
            logits = model(input_ids=inputs[part].to(device)).logits[..., :vocab_size].flatten(0, 1).float()
            total += F.cross_entropy(logits, labels[part].flatten().to(device), reduction="sum").item()
        return {"ce": total / labels.numel()}

    return validate


def train_memdec(init_folder: Path, stream: np.ndarray, knn, out_folder: Path, made_from: dict, steps: int,
                 beta: float, lr: float, batch_size: int, block: int, run_dir: Path | None = None,
                 stop_after: int | None = None, seed: int = 0, validate=None):
    """Starts from init_folder (the smallest base, as in the paper), saves to out_folder with its recipe."""
    tokenizer = load_tokenizer(init_folder)
    model = load_lm(init_folder, torch.device("cpu")).float().requires_grad_(True)
    inputs, labels = blocks(stream, block)
    if knn is not None and len(knn) != inputs.numel():
        raise ValueError(f"{len(knn)} kNN targets for {inputs.numel()} training positions: targets are stale")
    loss_fn = decoder_loss(beta, len(tokenizer))
    cfg = TrainConfig(steps=steps, lr=lr, warmup=made_from["warmup"], checkpoint_every=100, seed=seed)
    run_dir = run_dir or paths.run_folder(out_folder.name, made_from)
    model = train(model, make_batches(inputs, labels, knn, batch_size, seed), loss_fn, cfg, run_dir,
                  desc=out_folder.name, stop_after=stop_after, validate=validate)
    if stop_after is None or stop_after >= steps:
        save_model(model, tokenizer, out_folder, made_from)
    return model


def distil(domain: str, knn: targets.SparseTargets | None, s: Settings, beta: float, steps: int, out: Path,
           announce=print, seed: int = 0, init: str | None = None, lr: float | None = None) -> bool:
    """Trains a decoder of the domain (from the base named init, by default the smallest) unless the one in out is
    current; True when it trained. Its log holds the cross-entropy on the first VALIDATION_BLOCKS validation blocks
    at every checkpoint (the curve of its budget)."""
    made_from = memdec_recipe(domain, knn, s, beta, steps, seed, init, lr)
    if recipe.is_current(out, made_from):
        return False
    announce(f"{out.name}: training {steps} steps, beta={beta}, seed={seed}, lr={made_from['lr']:g}")
    folder = s.start(init)
    tokenizer = load_tokenizer(folder)
    fingerprint = tokenizer_fingerprint(tokenizer)
    stream = encode_file(tokenizer, paths.corpus_path(domain, "train"), fingerprint)
    val_inputs, val_labels = blocks(encode_file(tokenizer, paths.corpus_path(domain, "validation"), fingerprint),
                                    s.block)
    validate = validation_ce(val_inputs[:VALIDATION_BLOCKS], val_labels[:VALIDATION_BLOCKS], len(tokenizer),
                             s.batch_size)
    train_memdec(folder, stream, knn if beta > 0 else None, out, made_from, steps, beta=beta, lr=made_from["lr"],
                 batch_size=s.batch_size, block=s.block, seed=seed, validate=validate)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("domain")
    parser.add_argument("--beta", type=float, default=Settings.beta)
    parser.add_argument("--steps", type=int, default=Settings.memdec_steps)
    parser.add_argument("--out", type=Path, default=None, help="default models/memdec-<domain>")
    args = parser.parse_args()
    s, folder = Settings(), paths.targets_folder(args.domain)
    made_from = recipe.recorded(folder)
    key = s.bases[s.key]
    store = datastore.wanted_recipe(key, load_tokenizer(key), paths.corpus_path(args.domain, "train"), s.block)
    wanted = None if made_from is None else targets.targets_recipe(store, s.k, made_from["temperature"])
    knn = None if wanted is None else targets.load(folder, wanted)
    if knn is None:
        parser.error(f"the kNN targets for {args.domain} are missing, stale or damaged: run python -m "
                     f"app.make.pipeline --domains {args.domain} (it builds them, then trains the decoder too)")
    out = args.out or paths.model_folder("memdec", args.domain)
    if not distil(args.domain, knn, s, args.beta, args.steps, out):
        print(f"{out.name}: current")


if __name__ == "__main__":
    main()
