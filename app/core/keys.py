"""The kNN-LM key of a context: the input of the last block's feed-forward layer (after its norm), read with a
forward hook. The datastore's keys and the app's queries both come from here, so they always match."""
import numpy as np
import torch
from tqdm.auto import tqdm


def last_mlp(model) -> torch.nn.Module:
    """The feed-forward block of the last transformer layer; its input (after the norm) is the kNN key."""
    for blocks in ("transformer.h", "model.layers", "gpt_neox.layers", "model.decoder.layers"):
        node = model
        try:
            for attr in blocks.split("."):
                node = getattr(node, attr)
        except AttributeError:
            continue
        return node[-1].mlp
    raise ValueError(f"cannot find the transformer blocks of {type(model).__name__}")


class KeyCapture:
    """Context manager that records the input of the last MLP on every forward pass."""

    def __init__(self, model):
        self.module, self.keys = last_mlp(model), None

    def __enter__(self):
        self.handle = self.module.register_forward_pre_hook(lambda _m, args: setattr(self, "keys", args[0].detach()))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@torch.no_grad()
def compute_keys(model, inputs: torch.Tensor, batch_size: int = 16, progress=None, desc: str = "keys") -> np.ndarray:
    """Keys for every position of the (blocks, length) inputs, in stream order, as fp16."""
    out = []
    dev = next(model.parameters()).device
    with KeyCapture(model) as capture:
        for start in tqdm(range(0, len(inputs), batch_size), desc=desc, leave=False):
            model(input_ids=inputs[start: start + batch_size].to(dev))
            out.append(capture.keys.flatten(0, 1).to(torch.float16).cpu().numpy())
            if progress:
                progress(min(1.0, (start + batch_size) / len(inputs)), desc)
    return np.concatenate(out)
