"""The tokenizer side of a base + decoder pair: how each family starts a text, whether a decoder can read the base's
token ids, and token labels decoded on demand (a 150k vocabulary is never decoded all at once)."""


def start_ids(tokenizer) -> list[int]:
    """The ids a text starts with, the way its family was trained: what the tokenizer adds itself (Llama 3's
    <|begin_of_text|>), else its BOS (GPT-2's <|endoftext|>), else nothing (Qwen)."""
    return document_start_ids(tokenizer) or ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else [])


def document_start_ids(tokenizer) -> list[int]:
    """The special ids the tokenizer itself puts before a text; documents in a corpus stream start with them (the
    end-of-text token between documents already plays that part for GPT-2-style families)."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    marked = tokenizer("x", add_special_tokens=True)["input_ids"]
    cut = len(marked) - len(plain)
    return marked[:cut] if cut > 0 and marked[cut:] == plain else []


def mismatch(base_tokenizer, decoder_tokenizer, decoder_logits: int, show: int = 3) -> str | None:
    """None when the decoder can read the base's ids: its vocabulary agrees with the base's on every base id (tokens
    its own files add beyond them do not matter, nor does its architecture) and its output layer covers them all;
    otherwise a sentence naming the first differences."""
    size = len(base_tokenizer)
    if decoder_logits < size:
        return f"the decoder predicts {decoder_logits} token ids, fewer than the base's {size}"
    theirs = decoder_tokenizer.get_vocab()
    differ = sorted((i, token, theirs.get(token)) for token, i in base_tokenizer.get_vocab().items()
                    if theirs.get(token) != i)
    if not differ:
        return None
    examples = "; ".join(f"base id {i} is {token!r}, which the decoder "
                         f"{'lacks' if other is None else f'numbers {other}'}" for i, token, other in differ[:show])
    return f"the tokenizers differ on {len(differ)} of the base's {size} ids ({examples})"


class TokenText:
    """id -> the token's text, decoded when first asked for and kept; len() is the vocabulary size."""

    def __init__(self, tokenizer):
        self.tokenizer, self.size, self.cache = tokenizer, len(tokenizer), {}

    def __len__(self):
        return self.size

    def __getitem__(self, i) -> str:
        i = int(i)
        if i not in self.cache:
            self.cache[i] = self.tokenizer.decode([i])
        return self.cache[i]
