"""Pretrain one size of the embedded base family on the general corpus (nanoGPT-style, through app.trainer)."""
import argparse

import numpy as np
import torch
from transformers import GPT2LMHeadModel

from .corpora import GENERAL
from .models import BASE_SIZES, base_config, file_digest, load_tokenizer, save_model, tokenizer_fingerprint
from .paths import MODELS
from .tokens import encode_file
from .trainer import TrainConfig, run_folder, train

BLOCK = 128


def random_blocks(stream: np.ndarray, step: int, batch_size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(stream) - BLOCK - 1, size=batch_size)
    chunk = torch.from_numpy(np.stack([stream[s: s + BLOCK + 1] for s in starts]).astype(np.int64))
    return {"input_ids": chunk[:, :-1], "labels": chunk[:, 1:]}


def causal_lm_loss(model, batch):
    logits = model(input_ids=batch["input_ids"]).logits
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten())
    return loss, {}


def base_recipe(size: str, steps: int, batch_size: int, lr: float) -> dict:
    """Everything a base model depends on; a model whose pipeline.json matches this is current."""
    tokenizer = load_tokenizer(MODELS / "tokenizer")
    return {"kind": "base", "size": size, "steps": steps, "batch_size": batch_size, "lr": lr, "block": BLOCK,
            "corpus": file_digest(GENERAL), "tokenizer": tokenizer_fingerprint(tokenizer)}


def train_base(size: str, steps: int, batch_size: int = 32, lr: float = 2e-3):
    tokenizer = load_tokenizer(MODELS / "tokenizer")
    stream = encode_file(tokenizer, GENERAL, tokenizer_fingerprint(tokenizer))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(base_config(size, len(tokenizer), tokenizer.eos_token_id))
    cfg = TrainConfig(steps=steps, lr=lr, warmup=min(100, steps // 10), checkpoint_every=200)
    recipe = base_recipe(size, steps, batch_size, lr)
    model = train(model, lambda step: random_blocks(stream, step, batch_size), causal_lm_loss, cfg,
                  run_folder(f"base-{size}", recipe), desc=f"base-{size}")
    save_model(model, tokenizer, MODELS / f"base-{size}", recipe)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("size", choices=list(BASE_SIZES))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    train_base(args.size, args.steps, args.batch_size)


if __name__ == "__main__":
    main()
