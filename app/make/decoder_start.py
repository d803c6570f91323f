"""The fresh decoder a family's Memory Decoders start from when its smallest base is too large to be one (SmolLM2:
135M parameters, 269 MB): the key model's own config at a smaller shape, so vocabulary, positions and special tokens
are the base's, and an embedding that starts as the key model's projected onto its main directions (PCA), so the
tied output layer knows from step 0 which tokens are alike. The rest is initialised as transformers does."""
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ..core import recipe
from ..core.models import load_lm, load_tokenizer, model_fingerprint, save_model


def start_recipe(key_folder, shape: dict) -> dict:
    return {"kind": "decoder-start", "key_model": model_fingerprint(key_folder), "shape": shape,
            "embedding": "key model's, PCA", "seed": 0}


def projected_embedding(embedding: torch.Tensor, width: int, std: float) -> torch.Tensor:
    """The rows of the (vocab, hidden) embedding, centred, in the coordinates of their `width` main directions, scaled
    to the init's std: at the key model's scale the tied output layer starts with logits so large that the first
    cross-entropy is 21 nats, twice a uniform guess's 10.8."""
    centred = embedding.float() - embedding.float().mean(0)
    _, _, directions = torch.linalg.svd(centred, full_matrices=False)
    projected = centred @ directions[:width].T
    return projected * (std / projected.std())


def build_start(key_folder, shape: dict, out: Path) -> bool:
    """Writes the start to out unless the one there is current; True when it wrote."""
    made_from = start_recipe(key_folder, shape)
    if recipe.is_current(out, made_from):
        return False
    config = AutoConfig.from_pretrained(str(key_folder))
    for name, value in shape.items():
        setattr(config, name, value)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    key = load_lm(key_folder, torch.device("cpu"))
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(projected_embedding(key.get_input_embeddings().weight,
                                                                      config.hidden_size, config.initializer_range))
    model.tie_weights()
    save_model(model, load_tokenizer(key_folder), out, made_from)
    return True
