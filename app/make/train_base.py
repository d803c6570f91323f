"""Pretrain one size of the embedded base family on the general corpus (nanoGPT-style, through app.make.trainer).

    python -m app.make.train_base large      # the steps, batch and rate of app.core.settings
"""
import argparse
import shutil

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from ..core import paths
from ..core.models import file_digest, load_tokenizer, save_model, tokenizer_fingerprint
from ..core.settings import BASE_SIZES, Settings, warmup
from ..core.tokens import blocks, encode_file
from .trainer import TrainConfig, train


def base_config(size: str, vocab_size: int, eos_id: int, context: int) -> GPT2Config:
    return GPT2Config(vocab_size=vocab_size, n_positions=context, bos_token_id=eos_id, eos_token_id=eos_id,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **BASE_SIZES[size])


def random_blocks(stream: np.ndarray, step: int, batch_size: int, block: int, seed: int = 0) -> dict:
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(stream) - block - 1, size=batch_size)
    chunk = torch.from_numpy(np.stack([stream[s: s + block + 1] for s in starts]).astype(np.int64))
    return {"input_ids": chunk[:, :-1], "labels": chunk[:, 1:]}


def causal_lm_loss(model, batch):
    logits = model(input_ids=batch["input_ids"]).logits
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten())
    return loss, {}


def general_split(stream: np.ndarray, held_out: int, block: int) -> tuple[np.ndarray, tuple]:
    """The general stream's last held_out tokens are its validation blocks, never trained on."""
    return stream[:-held_out], blocks(stream[-held_out:], block)


def validation_loss(model, val, batch_size: int = 32) -> dict:
    inputs, labels = val
    dev = next(model.parameters()).device
    total = sum(causal_lm_loss(model, {"input_ids": inputs[i: i + batch_size].to(dev),
                                       "labels": labels[i: i + batch_size].to(dev)})[0].item()
                * len(inputs[i: i + batch_size]) for i in range(0, len(inputs), batch_size))
    return {"loss": total / len(inputs)}


def base_recipe(size: str, s: Settings) -> dict:
    """Everything a base model depends on; a model whose recorded recipe matches this is current."""
    tokenizer = load_tokenizer(paths.tokenizer_folder())
    steps = s.base_steps[size]
    return {"kind": "base", "size": size, "architecture": BASE_SIZES[size], "context": s.context, "steps": steps,
            "batch_size": s.base_batch_size, "lr": s.base_lr, "warmup": warmup(s.base_warmup, steps), "block": s.block,
            "held_out": s.general_held_out, "corpus": file_digest(paths.general_corpus()),
            "tokenizer": tokenizer_fingerprint(tokenizer)}


def train_base(size: str, s: Settings):
    tokenizer = load_tokenizer(paths.tokenizer_folder())
    stream, val = general_split(encode_file(tokenizer, paths.general_corpus(), tokenizer_fingerprint(tokenizer)),
                                s.general_held_out, s.block)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(base_config(size, len(tokenizer), tokenizer.eos_token_id, s.context))
    made_from = base_recipe(size, s)
    cfg = TrainConfig(steps=made_from["steps"], lr=s.base_lr, warmup=made_from["warmup"], checkpoint_every=100)
    run = paths.run_folder(f"base-{size}", made_from)
    model = train(model, lambda step: random_blocks(stream, step, s.base_batch_size, s.block), causal_lm_loss, cfg,
                  run, desc=f"base-{size}", validate=lambda m: validation_loss(m, val))
    save_model(model, tokenizer, paths.model_folder("base", size), made_from)
    # The loss curve travels with the model: the README draws the family's validation curves from it.
    shutil.copyfile(run / "loss.csv", paths.model_folder("base", size) / "loss.csv")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", choices=list(BASE_SIZES))
    parser.add_argument("--steps", type=int, help="default: the pipeline's steps for this size")
    parser.add_argument("--batch-size", type=int, default=Settings.base_batch_size)
    args = parser.parse_args()
    s = Settings(base_batch_size=args.batch_size)
    if args.steps:
        s.base_steps[args.size] = args.steps
    train_base(args.size, s)


if __name__ == "__main__":
    main()
