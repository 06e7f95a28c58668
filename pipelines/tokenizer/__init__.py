"""The `tokenizer` pipeline: WordPiece trained on the clean corpus, and its report."""
