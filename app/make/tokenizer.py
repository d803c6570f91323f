"""Train the one byte-level BPE tokenizer that every embedded model shares."""
import shutil
from pathlib import Path

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


def build_tokenizer(general_docs, folder, vocab_size: int, sample_chars: int, context: int, made_from: dict):
    """General text only, as a published family's tokenizer never saw the domains a memory is built for; saved for
    AutoTokenizer into a temporary folder renamed into place, with its recipe."""
    tokenizer = train_tokenizer(sample_texts(general_docs, sample_chars), vocab_size, context)
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    recipe.record(tmp, made_from)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return tokenizer
