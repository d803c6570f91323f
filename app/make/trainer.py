"""One training loop for base models and Memory Decoders: accelerate, checkpoints that resume, a progress bar
and a loss log. Batches are a pure function of the step, so a resumed run sees exactly the data it would have."""
import csv
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.01
    checkpoint_every: int = 100
    seed: int = 0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(model, batch_at, loss_fn, cfg: TrainConfig, work_dir: Path, desc: str = "train",
          stop_after: int | None = None, validate=None):
    """batch_at(step) -> dict of tensors; loss_fn(model, batch) -> (loss, {name: float}).

    State lives in work_dir/checkpoint (written to a temporary folder, then renamed, so an interruption never
    leaves a broken checkpoint); the loss log is work_dir/loss.csv. stop_after ends the run early, as an
    interruption would (used by tests). validate(model) -> {name: float}, when given, runs at every checkpoint in
    eval mode without gradients (it draws no random numbers, so training is the same with or without it); its
    numbers go into that step's row of the log as val_<name>. Returns the unwrapped model.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    model, optimizer = accelerator.prepare(model, optimizer)
    ckpt, log_path = _latest_checkpoint(work_dir), work_dir / "loss.csv"
    start, spent, rows = 0, 0.0, []
    set_seed(cfg.seed)  # dropout draws; a resumed run restores the RNG state saved with its checkpoint
    if ckpt.exists():
        accelerator.load_state(str(ckpt))
        progress = json.loads((ckpt / "progress.json").read_text())
        start, spent = progress["step"], progress.get("seconds", 0.0)
        rows = _read_log(ckpt / "loss.csv")  # the log as it was at that step: every step before it, once
    began = time.monotonic() - spent  # the log's seconds column counts training time across resumed sessions
    bar = tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps,
               disable=not accelerator.is_main_process)
    model.train()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = {k: v.to(accelerator.device) for k, v in batch_at(step).items()}
        loss, metrics = loss_fn(model, batch)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        rows.append({"step": step + 1, "loss": round(loss.item(), 5), **{k: round(v, 5) for k, v in metrics.items()},
                     "seconds": round(time.monotonic() - began, 2)})
        bar.set_postfix(loss=f"{loss.item():.3f}")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps or done == stop_after:
            if validate:
                rows[-1].update({f"val_{k}": round(v, 5) for k, v in _validated(model, accelerator, validate).items()})
            _save_checkpoint(accelerator, work_dir, done, cfg, rows)
            _write_log(log_path, rows)
        if done == stop_after:
            break
    model.eval()
    return accelerator.unwrap_model(model)


def _validated(model, accelerator, validate) -> dict:
    model.eval()
    with torch.no_grad():
        metrics = validate(accelerator.unwrap_model(model))
    model.train()
    return metrics


def _latest_checkpoint(work_dir: Path) -> Path:
    """work_dir/checkpoint, or the previous one when an interruption fell between the two renames that swap them."""
    ckpt, previous = work_dir / "checkpoint", work_dir / "checkpoint.old"
    if not ckpt.exists() and previous.exists():
        previous.rename(ckpt)
    return ckpt


def _save_checkpoint(accelerator, work_dir: Path, step: int, cfg: TrainConfig, rows: list):
    """Writes the new checkpoint beside the old one and swaps them by renames, so that whenever the process is
    stopped (SIGTERM raises anywhere) one complete checkpoint exists; it holds its own copy of the loss log, so a
    resumed run neither loses nor repeats a logged step."""
    ckpt, tmp, previous = work_dir / "checkpoint", work_dir / "checkpoint.tmp", work_dir / "checkpoint.old"
    if not accelerator.is_main_process:
        return
    shutil.rmtree(tmp, ignore_errors=True)
    accelerator.save_state(str(tmp))
    _write_log(tmp / "loss.csv", rows)
    progress = {"step": step, "seconds": rows[-1]["seconds"], "config": asdict(cfg)}
    (tmp / "progress.json").write_text(json.dumps(progress))
    shutil.rmtree(previous, ignore_errors=True)
    if ckpt.exists():
        ckpt.rename(previous)
    tmp.rename(ckpt)
    shutil.rmtree(previous, ignore_errors=True)


def _read_log(path: Path) -> list:
    if not path.exists():
        return []
    with open(path) as f:
        # validation columns are empty on the steps between checkpoints
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _write_log(path: Path, rows: list):
    with open(path.with_suffix(".tmp"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
    path.with_suffix(".tmp").replace(path)
