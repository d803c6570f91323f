"""Distil a Memory Decoder for a memory a visitor brought, with the pipeline's recipe, as a process of its own (the
page that launches it never imports the making half):

    python -m app.make.distil FOLDER [--steps N]

FOLDER was written by the serving side (app.serve.memories): memory.json, train and validation text, and the
datastore of the chosen base over the train text. Here: the kNN temperature (and the kNN-LM's lambda) best on
validation; kNN targets from that store, each position excluded from its own neighbours; the decoder, started from
the family's smallest base, trained on beta KL(p_kNN || p_mem) + (1 - beta) CE, with KL and CE on validation at every
checkpoint; then alpha tuned on validation. FOLDER/making/status.json says where it is; SIGTERM stops it at once
(cancel), and running it again resumes from the last checkpoint. The decoder lands in FOLDER/decoder with its
memdec.json, and status.json says "done" last.
"""
import argparse
import math
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..core import datastore, paths, recipe
from ..core.cards import decoder_card, write_card
from ..core.distributions import perplexity
from ..core.files import read_json, write_json
from ..core.keys import compute_keys
from ..core.models import load_lm, load_tokenizer, save_model, tokenizer_fingerprint
from ..core.settings import Settings
from ..core.tokens import blocks, encode_file
from . import targets
from .evaluate import knn_label_probs, label_probs, mixture_perplexity, tune_alpha, tune_knn
from .train_memdec import VALIDATION_BLOCKS, decoder_loss, make_batches, memdec_recipe
from .trainer import TrainConfig, train
from .windows import sliding_windows

CHECKPOINTS = 20  # per run: what a cancel can lose, and how often the curve gains validation points


class Cancelled(BaseException):
    """SIGTERM: a BaseException, so that no library's `except Exception` swallows it."""


class Status:
    """FOLDER/making/status.json, rewritten atomically: the phase, its progress, the time each phase took."""

    def __init__(self, path: Path, steps: int):
        self.path, self.written = path, 0.0
        self.state = {"phase": "starting", "pid": os.getpid(), "steps": steps, "timings": {}, "started": time.time()}
        self.write()

    def write(self, **changes):
        self.state.update(changes, updated=time.time())
        write_json(self.path, self.state)
        self.written = time.monotonic()

    def progress(self, fraction: float, _desc=None):
        if time.monotonic() - self.written > 1:  # a few writes a second at most
            self.write(fraction=round(float(fraction), 3))

    @contextmanager
    def phase(self, name: str):
        start = time.monotonic()
        self.write(phase=name, fraction=0.0)
        yield
        self.state["timings"][name] = round(time.monotonic() - start, 1)


def held_out_targets(distances: torch.Tensor, values: torch.Tensor, temperature: float) -> targets.SparseTargets:
    """p_kNN rows for positions outside the store (validation): its k nearest entries, none of them itself."""
    rows = list(targets.sparse_rows(distances, values, temperature))
    offsets = np.cumsum([0] + [len(tokens) for tokens, _ in rows])
    return targets.SparseTargets(offsets, np.concatenate([t for t, _ in rows]).astype(np.int32),
                                 np.concatenate([p for _, p in rows]).astype(np.float16), {})


def validation_loss(loss_fn, inputs: torch.Tensor, labels: torch.Tensor, knn: targets.SparseTargets, batch_size: int):
    """validate(model) for the trainer: the training loss's KL and CE on the first validation blocks."""
    length = inputs.shape[1]

    def validate(model) -> dict:
        device, totals = next(model.parameters()).device, {}
        for start in range(0, len(inputs), batch_size):
            rows = np.arange(start, min(len(inputs), start + batch_size))
            ids, probs = knn.padded((rows[:, None] * length + np.arange(length)).ravel())
            batch = {"input_ids": inputs[rows], "labels": labels[rows], "target_ids": ids, "target_probs": probs}
            _, metrics = loss_fn(model, {k: v.to(device) for k, v in batch.items()})
            for name, value in metrics.items():
                totals[name] = totals.get(name, 0.0) + value * len(rows) / len(inputs)
        return totals

    return validate


def distil(folder: Path, steps: int, status: Status):
    spec = read_json(folder / "memory.json")
    train_path, validation_path = folder / spec["train"], folder / spec["validation"]
    s = Settings(bases={"init": spec["init_folder"], "key": spec["base_folder"]}, key="key", init="init")
    key_model, tokenizer = load_lm(s.bases["key"]), load_tokenizer(s.bases["key"])
    vocab, fingerprint = len(tokenizer), tokenizer_fingerprint(tokenizer)
    store = datastore.load_or_build(key_model, tokenizer, s.bases["key"], train_path, folder / spec["store"], s.block)
    val_stream = encode_file(tokenizer, validation_path, fingerprint)
    val_inputs, val_labels = blocks(val_stream, s.block)  # the training curve's held-out blocks
    val_windows = sliding_windows(val_stream, tokenizer.eos_token_id, s.block, s.eval_stride)  # the pipeline's protocol

    with status.phase("kNN temperature on validation"):
        p_base = label_probs(key_model, val_windows, vocab)
        p_knn = knn_label_probs(key_model, store, val_windows, s.k, s.temperatures)
        temperature, lam = tune_knn(p_base, p_knn, s.alphas)
        keys = compute_keys(key_model, val_inputs[:VALIDATION_BLOCKS], desc="validation keys")
        distances, _, values = store.neighbours(keys.astype(np.float32), s.k)

    with status.phase("kNN targets"):
        knn = targets.load_or_build(store, s.k, temperature, folder / "making" / "targets", status.progress)

    decoder_folder, made_from = folder / "decoder", memdec_recipe(spec["id"], knn, s, s.beta, steps)
    with status.phase("training"):
        if recipe.is_current(decoder_folder, made_from):
            decoder = load_lm(decoder_folder)
        else:
            decoder = load_lm(s.bases["init"], torch.device("cpu")).float().requires_grad_(True)
            inputs, labels = blocks(encode_file(tokenizer, train_path, fingerprint), s.block)
            loss_fn = decoder_loss(s.beta, vocab)
            shown = val_inputs[:VALIDATION_BLOCKS]
            held_out = held_out_targets(distances[: shown.numel()], values[: shown.numel()], temperature)
            validate = validation_loss(loss_fn, shown, val_labels[: len(shown)], held_out, s.batch_size)
            run = folder / "making" / paths.run_folder("decoder", made_from).name
            status.write(log=str(run.relative_to(folder) / "loss.csv"))
            cfg = TrainConfig(steps=steps, lr=s.memdec_lr, warmup=made_from["warmup"],
                              checkpoint_every=max(1, math.ceil(steps / CHECKPOINTS)))
            decoder = train(decoder, make_batches(inputs, labels, knn, s.batch_size), loss_fn, cfg, run, desc="decoder",
                            validate=validate)
            save_model(decoder, load_tokenizer(s.bases["init"]), decoder_folder, made_from)

    with status.phase("alpha on validation"):
        p_mem = label_probs(decoder, val_windows, vocab)
        alpha = tune_alpha(p_base, p_mem, s.alphas)
        tuned = {spec["base"]: {"alpha": alpha, "lambda": lam, "temperature": temperature}}
        write_card(decoder_folder, decoder_card(spec["id"], alpha, tuned, temperature, s.k, s.block, s.beta,
                                                spec["base_folder"]))
    ppl = {"base": perplexity(p_base), "base + kNN-LM": mixture_perplexity(p_base, p_knn[temperature], lam),
           "base + MemDec": mixture_perplexity(p_base, p_mem, alpha), "Memory Decoder alone": perplexity(p_mem)}
    status.write(phase="done", fraction=1.0, alpha=alpha, temperature=temperature, knn_lambda=lam,
                 validation_perplexity={name: round(value, 3) for name, value in ppl.items()})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a memory's folder, as app.serve.memories writes it")
    parser.add_argument("--steps", type=int, default=Settings.memdec_steps)
    args = parser.parse_args()
    if not (args.folder / "memory.json").exists():
        parser.error(f"{args.folder} is not a memory's folder (no memory.json)")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    status = Status(args.folder / "making" / "status.json", args.steps)

    def cancel(*_):
        raise Cancelled()

    signal.signal(signal.SIGTERM, cancel)
    try:
        distil(args.folder, args.steps, status)
    except Cancelled:
        status.write(phase="cancelled")
        raise SystemExit(143)
    except Exception as error:
        status.write(phase="failed", error=f"{type(error).__name__}: {error}")
        raise


if __name__ == "__main__":
    main()
