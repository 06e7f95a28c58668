"""Pretraining data for M6: the four tasks of §3.3 and a deterministic, resumable stream."""
