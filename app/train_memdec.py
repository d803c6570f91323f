"""Train a Memory Decoder: a small LM that imitates the kNN-LM's distribution on a domain corpus.

loss = beta * KL(p_kNN || p_mem) + (1 - beta) * CE(p_mem, next token); beta = 1 is KL only, 0 is CE only.
Runs through accelerate, so `accelerate launch -m app.train_memdec ...` spreads it over several GPUs.
"""
import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .models import load_lm, load_tokenizer, save_model
from .paths import MODELS
from .tokens import blocks
from .trainer import TrainConfig, run_folder, train


def memdec_loss(logits: torch.Tensor, labels: torch.Tensor, target_ids: torch.Tensor, target_probs: torch.Tensor,
                beta: float, vocab_size: int):
    """logits (n, V'), labels (n,), target_ids / target_probs (n, m) zero-padded sparse p_kNN rows."""
    logp = torch.log_softmax(logits[:, :vocab_size].float(), dim=-1)
    ce = F.nll_loss(logp, labels)
    # KL over the support of p_kNN: sum p (log p - log q); padded entries have p = 0 and add nothing.
    kl = (torch.xlogy(target_probs, target_probs) - target_probs * logp.gather(1, target_ids)).sum(-1).mean()
    return beta * kl + (1 - beta) * ce, {"kl": kl.item(), "ce": ce.item()}


def make_batches(inputs: torch.Tensor, labels: torch.Tensor, knn, batch_size: int, seed: int = 0):
    """batch_at(step): random blocks with their kNN rows; block b, column c is datastore entry b * block + c."""
    length = inputs.shape[1]

    def batch_at(step: int) -> dict:
        rows = np.random.default_rng([seed, step]).integers(0, len(inputs), size=batch_size)
        positions = (rows[:, None] * length + np.arange(length)).ravel()
        ids, probs = knn.padded(positions)
        return {"input_ids": inputs[rows], "labels": labels[rows], "target_ids": ids, "target_probs": probs}

    return batch_at


def train_memdec(init_folder: Path, stream: np.ndarray, knn, out_folder: Path, recipe: dict, steps: int,
                 beta: float = 0.5, lr: float = 1e-3, batch_size: int = 32, block: int = 128,
                 run_dir: Path | None = None, stop_after: int | None = None):
    """Starts from init_folder (the smallest base, as in the paper), saves to out_folder with its recipe."""
    tokenizer = load_tokenizer(init_folder)
    model = load_lm(init_folder, torch.device("cpu")).float().requires_grad_(True)
    inputs, labels = blocks(stream, block)
    if len(knn) != inputs.numel():
        raise ValueError(f"{len(knn)} kNN targets for {inputs.numel()} training positions: targets are stale")
    vocab = len(tokenizer)

    def loss_fn(m, batch):
        logits = m(input_ids=batch["input_ids"]).logits.flatten(0, 1)
        return memdec_loss(logits, batch["labels"].flatten(), batch["target_ids"], batch["target_probs"], beta, vocab)

    cfg = TrainConfig(steps=steps, lr=lr, warmup=min(50, steps // 10), checkpoint_every=100)
    run_dir = run_dir or run_folder(out_folder.name, recipe)
    model = train(model, make_batches(inputs, labels, knn, batch_size), loss_fn, cfg, run_dir,
                  desc=out_folder.name, stop_after=stop_after)
    if stop_after is None or stop_after >= steps:
        save_model(model, tokenizer, out_folder, recipe)
    return model


def main():
    from .pipeline import memdec_step

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("domain")
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None, help="default models/memdec-<domain>")
    args = parser.parse_args()
    memdec_step(args.domain, beta=args.beta, steps=args.steps, out=args.out or MODELS / f"memdec-{args.domain}")


if __name__ == "__main__":
    main()
