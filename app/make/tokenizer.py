"""Train the one byte-level BPE tokenizer that every embedded model shares."""
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..core import recipe

EOS = "<|endoftext|>"


def train_tokenizer(texts, vocab_size: int, context: int = 256) -> PreTrainedTokenizerFast:
    """texts: an iterable of strings. Byte-level, so any input encodes without unknown tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                                   model_max_length=context)


def sample_texts(docs, max_chars: int):
    """The first documents up to max_chars: enough for the merges, and quick."""
    total = 0
    for doc in docs:
        if total > max_chars:
            return
        total += len(doc)
        yield doc


def build_tokenizer(general_docs, domain_train_docs, folder, vocab_size: int, sample_chars: int, context: int,
                    made_from: dict):
    """General text plus the domains' train splits (never validation or test), saved for AutoTokenizer."""
    tokenizer = train_tokenizer(list(sample_texts(general_docs, sample_chars)) + list(domain_train_docs), vocab_size, context)
    tokenizer.save_pretrained(folder)
    recipe.record(folder, made_from)
    return tokenizer
