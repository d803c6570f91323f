"""The half that makes: corpora, tokenizer, base family, kNN targets, Memory Decoder training, evaluation, and the
pipeline that runs them in order."""
