"""Why SmolLM2's decoders are 8 layers of width 128: one training step (16 blocks of 128 tokens, the KL + CE loss
against sparse targets, AdamW) of candidate shapes, timed in one run, with each shape's size in fp16 (a decoder may
take 24 MB).

    python tools/benchmark_decoder_shapes.py [--steps 3]

Every shape is SmolLM2-135M-Instruct's own configuration at another width and depth, so its output layer covers all
49,152 ids; the times are the median of --steps steps after one warm-up step, on every core torch is given.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core import smollm2  # noqa: E402
from app.make.train_memdec import memdec_loss  # noqa: E402

SHAPES = {  # (layers, width)
    "4 x 128": (4, 128), "8 x 128": (8, 128), "4 x 192": (4, 192), "8 x 192": (8, 192), "4 x 256": (4, 256),
}


def step_seconds(layers: int, width: int, steps: int) -> tuple[float, int]:
    config = AutoConfig.from_pretrained(str(smollm2.fetch()))
    config.update(dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=width // 32,
                       num_key_value_heads=width // 32, head_dim=32, intermediate_size=3 * width))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # the config says fp16, as stored
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    vocab = config.vocab_size
    ids = torch.randint(0, vocab, (16, 128))
    target_ids = torch.randint(0, vocab, (16 * 128, 24))
    target_probs = torch.softmax(torch.randn(16 * 128, 24), -1)
    times = []
    for _ in range(steps + 1):
        began = time.perf_counter()
        logits = model(input_ids=ids).logits.flatten(0, 1)
        loss, _ = memdec_loss(logits, ids.flatten(), target_ids, target_probs, 0.5, vocab)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:]), sum(p.numel() for p in model.parameters())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print("| layers x width | parameters | fp16 size | s per step | vs 4 x 128 |\n"
          "|---|---:|---:|---:|---:|", flush=True)
    first = None
    for name, shape in SHAPES.items():
        seconds, params = step_seconds(*shape, args.steps)
        first = first or seconds
        print(f"| {name} | {params / 1e6:.1f}M | {2 * params / 1e6:.1f} MB | {seconds:.2f} | {seconds / first:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
