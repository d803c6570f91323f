"""The kNN-LM key of a context: the input of the last block's feed-forward layer (after its norm), read with a
forward hook. The datastore's keys and the app's queries both come from here, so they always match."""
import threading
import weakref

import numpy as np
import torch
from tqdm.auto import tqdm

# Where the blocks are, which attribute of a block is its feed-forward, and who is laid out so; tried in order.
# What enters that module is the key: the output of the norm just before it (ln_2, post_attention_layernorm, Gemma 2/3's
# pre_feedforward_layernorm, Phi's input_layernorm shared with attention, OPT's final_layer_norm), and for a mixture of
# experts the input of the whole sparse block, so the key does not depend on the routing.
FEED_FORWARDS = (
    ("transformer.h", "mlp", "GPT-2"),
    ("gpt_neox.layers", "mlp", "GPT-NeoX (Pythia)"),
    ("model.layers", "mlp", "Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma 2, Gemma 3 text, Phi, Phi-3, "
                            "Mixtral, Qwen2-MoE, Qwen3-MoE"),
    ("model.language_model.layers", "mlp", "Gemma 3 with vision"),
    ("model.decoder.layers", "fc1", "OPT"),  # no .mlp: fc1 and fc2 sit on the decoder layer itself
)


def last_block(model) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The last transformer block and its feed-forward layer (the sparse MoE block for a mixture of experts)."""
    for blocks, attr, _ in FEED_FORWARDS:
        try:
            block = model.get_submodule(blocks)[-1]
            return block, getattr(block, attr)
        except AttributeError:
            continue
    raise ValueError(f"cannot find the last feed-forward layer of {type(model).__name__} "
                     f"(model_type {model.config.model_type!r}), so there is no kNN key for it; supported: "
                     + ", ".join(names for *_, names in FEED_FORWARDS))


# The hooks are registered once per model and never removed: a forward in another thread (the scheduler's, a datastore
# build's) runs the hooks it listed when it started, so a hook removed meanwhile was called without its kwargs (its
# kwargs mark gone with it), and adding one is not atomic either. They record into the captures open in the thread
# that runs the forward.
_hooking = threading.Lock()
_hooked = weakref.WeakSet()  # last blocks whose hooks are in place
_open = threading.local()  # .captures: the KeyCaptures open in this thread


def _block_input(block, args, kwargs=None):  # positional in most blocks, a keyword in some
    # kwargs may be missing: a forward can run the hook between its registration and its kwargs mark, but then no
    # capture of this block is open yet in any thread
    for capture in getattr(_open, "captures", ()):
        if capture.block is block:
            capture.shape = (args[0] if args else kwargs["hidden_states"]).shape[:-1]


def _key_input(module, args):
    for capture in getattr(_open, "captures", ()):
        if capture.module is module:
            capture.keys = args[0].detach().reshape(*capture.shape, -1)


class KeyCapture:
    """Context manager that records the input of the last feed-forward layer on every forward pass, as (batch, length,
    hidden): the block's input gives the shape, since OPT flattens the positions before its feed-forward. Only the
    passes of the thread that opened it: a datastore may be built in the background while the same model serves
    requests in another thread."""

    def __init__(self, model):
        (self.block, self.module), self.keys = last_block(model), None
        with _hooking:
            if self.block not in _hooked:
                self.block.register_forward_pre_hook(_block_input, with_kwargs=True)
                self.module.register_forward_pre_hook(_key_input)
                _hooked.add(self.block)

    def __enter__(self):
        # the opening thread's list, kept, so that a capture closed elsewhere (a generator finalised by another
        # thread) still leaves it
        if not hasattr(_open, "captures"):
            _open.captures = []
        self.captures = _open.captures
        self.captures.append(self)
        return self

    def __exit__(self, *exc):
        self.captures.remove(self)


@torch.no_grad()
def key_batches(model, inputs: torch.Tensor, batch_size: int = 16, start: int = 0, desc: str = "keys"):
    """Yields (blocks done, fp16 keys of the batch) for each batch of the (blocks, length) inputs from block `start`,
    in stream order. `start` is a multiple of batch_size (or the end), so a resumed run makes the same batches, hence
    the same keys."""
    assert start % batch_size == 0 or start >= len(inputs), f"start {start} is not a multiple of {batch_size}"
    dev = next(model.parameters()).device
    with KeyCapture(model) as capture:
        for first in tqdm(range(start, len(inputs), batch_size), desc=desc, leave=False):
            # the trunk alone: the key is read before the output layer, which is a fifth of a small model's work
            model.base_model(input_ids=inputs[first: first + batch_size].to(dev))
            yield min(first + batch_size, len(inputs)), capture.keys.flatten(0, 1).to(torch.float16).cpu().numpy()


def compute_keys(model, inputs: torch.Tensor, batch_size: int = 16, progress=None, desc: str = "keys") -> np.ndarray:
    """Keys for every position of the (blocks, length) inputs, in stream order, as fp16, all in memory."""
    out = []
    for done, keys in key_batches(model, inputs, batch_size, desc=desc):
        out.append(keys)
        if progress:
            progress(done / len(inputs), desc)
    return np.concatenate(out)
