"""The kNN key on every supported architecture, against the output of the norm before the last feed-forward read with
a hook of the test's own: tiny random models built from configs, so nothing is downloaded."""
import numpy as np
import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM

from app.core.keys import KeyCapture, compute_keys

IDS = dict(vocab_size=128, pad_token_id=0, bos_token_id=1, eos_token_id=2)
SMALL = dict(IDS, num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)
GQA = dict(SMALL, num_key_value_heads=1)
MOE = dict(GQA, num_experts_per_tok=2, moe_intermediate_size=32)

# (config class, its arguments, the norm whose output enters the last block's feed-forward)
ARCHITECTURES = {
    "gpt2": ("GPT2Config", dict(IDS, n_layer=2, n_embd=32, n_head=2, n_positions=32), "transformer.h.1.ln_2"),
    "gpt_neox": ("GPTNeoXConfig", SMALL,
                 "gpt_neox.layers.1.post_attention_layernorm"),
    "gpt_neox sequential": ("GPTNeoXConfig", dict(SMALL, use_parallel_residual=False),
                            "gpt_neox.layers.1.post_attention_layernorm"),
    "llama": ("LlamaConfig", GQA, "model.layers.1.post_attention_layernorm"),
    "mistral": ("MistralConfig", GQA, "model.layers.1.post_attention_layernorm"),
    "qwen2": ("Qwen2Config", GQA, "model.layers.1.post_attention_layernorm"),
    "qwen3": ("Qwen3Config", dict(GQA, head_dim=16), "model.layers.1.post_attention_layernorm"),
    "gemma": ("GemmaConfig", dict(GQA, head_dim=16), "model.layers.1.post_attention_layernorm"),
    "gemma2": ("Gemma2Config", dict(GQA, head_dim=16), "model.layers.1.pre_feedforward_layernorm"),
    "gemma3_text": ("Gemma3TextConfig", dict(GQA, head_dim=16), "model.layers.1.pre_feedforward_layernorm"),
    "gemma3 with vision": (
        "Gemma3Config",
        dict(text_config=dict(GQA, head_dim=16), mm_tokens_per_image=4, image_token_index=127, boi_token_index=125,
             eoi_token_index=126, vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, image_size=16, patch_size=4)),
        "model.language_model.layers.1.pre_feedforward_layernorm"),
    "phi": ("PhiConfig", SMALL, "model.layers.1.input_layernorm"),  # parallel block
    "phi3": ("Phi3Config", GQA, "model.layers.1.post_attention_layernorm"),
    "opt": ("OPTConfig", dict(IDS, num_hidden_layers=2, hidden_size=32, num_attention_heads=2, ffn_dim=64,
                              word_embed_proj_dim=32), "model.decoder.layers.1.final_layer_norm"),
    # opt-350m: the norms come after attention and after the feed-forward, so fc1 reads the attention's norm
    "opt post-norm": ("OPTConfig", dict(IDS, num_hidden_layers=2, hidden_size=32, num_attention_heads=2, ffn_dim=64,
                                        word_embed_proj_dim=16, do_layer_norm_before=False),
                      "model.decoder.layers.1.self_attn_layer_norm"),
    "mixtral": ("MixtralConfig", dict(GQA, num_local_experts=4, num_experts_per_tok=2),
                "model.layers.1.post_attention_layernorm"),
    "qwen2_moe": ("Qwen2MoeConfig", dict(MOE, num_experts=4, shared_expert_intermediate_size=32),
                  "model.layers.1.post_attention_layernorm"),
    "qwen3_moe": ("Qwen3MoeConfig", dict(MOE, num_experts=4, head_dim=16),
                  "model.layers.1.post_attention_layernorm"),
}


def tiny(config_class: str, kwargs: dict):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(getattr(transformers, config_class)(**kwargs)).eval()


def with_norm_output(model, norm: str, ids: torch.Tensor):
    """Runs the model on ids, returning the keys KeyCapture saw and what the norm put out, reshaped alike."""
    seen = {}
    handle = model.get_submodule(norm).register_forward_hook(lambda _m, _args, out: seen.setdefault("out", out))
    try:
        with KeyCapture(model) as capture:
            model(input_ids=ids)
    finally:
        handle.remove()
    return capture.keys, seen["out"].reshape(*ids.shape, -1)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(3, 120, (3, 6), generator=torch.Generator().manual_seed(0))  # clear of the image tokens


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_key_is_the_norm_output_before_the_last_feed_forward(name, ids):
    config_class, kwargs, norm = ARCHITECTURES[name]
    model = tiny(config_class, kwargs)
    keys, expected = with_norm_output(model, norm, ids)
    assert keys.shape == (*ids.shape, expected.shape[-1]) and not keys.requires_grad
    assert torch.allclose(keys, expected)


@pytest.mark.parametrize("name", ["gpt2", "opt", "qwen3_moe"])
def test_compute_keys_rows_follow_the_stream(name, ids):
    """Batched keys come back one row per position in stream order, also where OPT flattens positions itself."""
    config_class, kwargs, norm = ARCHITECTURES[name]
    model = tiny(config_class, kwargs)
    _, expected = with_norm_output(model, norm, ids)
    keys = compute_keys(model, ids, batch_size=2)
    np.testing.assert_allclose(keys, expected.detach().flatten(0, 1).numpy(), atol=1e-2)


@pytest.mark.parametrize("config_class, kwargs, names", [
    ("MambaConfig", dict(IDS, num_hidden_layers=2, hidden_size=32), ("MambaForCausalLM", "'mamba'")),
    ("RwkvConfig", dict(IDS, num_hidden_layers=2, hidden_size=32), ("RwkvForCausalLM", "'rwkv'")),
])
def test_unsupported_architecture_is_named(config_class, kwargs, names):
    with pytest.raises(ValueError) as error:
        KeyCapture(tiny(config_class, kwargs))
    assert all(name in str(error.value) for name in names) and "Llama" in str(error.value)
