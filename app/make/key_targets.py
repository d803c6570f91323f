"""The plain-distillation control's targets: the key model's own next-token distribution at every training
position, kept sparse like the kNN targets (its k most probable tokens, renormalised; the kNN-LM's rows have at most
k tokens too). A decoder trained on them differs from the Memory Decoder in its teacher alone: the same larger model
behind both, the retriever over its states in one, its own softmax in the other."""
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.models import file_digest, load_lm, load_tokenizer, model_fingerprint, tokenizer_fingerprint
from ..core.tokens import blocks, encode_file
from . import targets


def key_targets_recipe(key_folder, corpus: Path, block: int, k: int) -> dict:
    return {"kind": "key model distribution", "model": model_fingerprint(key_folder), "corpus": file_digest(corpus),
            "block": block, "k": k}


@torch.no_grad()
def build(model, inputs: torch.Tensor, vocab_size: int, k: int, made_from: dict, batch_size: int = 16,
          announce=print):
    """Rows in the layout of the kNN targets: block b, column c is row b * block + c."""
    dev = next(model.parameters()).device
    ids, probs, kept = [], [], []
    for start in tqdm(range(0, len(inputs), batch_size), desc="key model targets", leave=False):
        logits = model(input_ids=inputs[start: start + batch_size].to(dev)).logits[..., :vocab_size].float()
        top = torch.softmax(logits.flatten(0, 1), -1).topk(k, dim=-1)
        kept.append(top.values.sum(-1).cpu().numpy())
        ids.append(top.indices.to(torch.int32).cpu().numpy())
        probs.append((top.values / top.values.sum(-1, keepdim=True)).cpu().numpy())
    ids, probs = np.concatenate(ids), np.concatenate(probs)
    offsets = np.arange(0, ids.size + 1, k, dtype=np.int64)
    announce(f"key model targets: {len(ids):,} positions, their top {k} tokens hold {np.concatenate(kept).mean():.1%} "
             "of the probability on average (renormalised)")
    return targets.SparseTargets(offsets, ids.ravel(), probs.ravel().astype(np.float16), made_from)


def load_or_build(key_folder, corpus: Path, block: int, k: int, folder: Path, announce=print):
    """The key model's targets over corpus from folder when current and intact, else computed and saved there."""
    made_from = key_targets_recipe(key_folder, corpus, block, k)
    found = targets.load(folder, made_from)
    if found is not None:
        return found, False
    model, tokenizer = load_lm(key_folder), load_tokenizer(key_folder)
    inputs, _ = blocks(encode_file(tokenizer, corpus, tokenizer_fingerprint(tokenizer)), block)
    found = build(model, inputs, len(tokenizer), k, made_from, announce=announce)
    targets.save(found, folder)
    return found, True
