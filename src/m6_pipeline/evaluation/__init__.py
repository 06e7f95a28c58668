"""Scoring the downstream tasks of §4.2-4.6: automatic text metrics on Chinese characters
(BLEU-4, ROUGE-L, CIDEr-D, distinct-n) and statistics over human judgements (means with
confidence intervals, inter-annotator agreement)."""
