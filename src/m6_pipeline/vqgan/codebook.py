"""Codebook health: how many codes a window of training steps used, the perplexity of their
distribution (exp of its entropy: the number of equally used codes it is worth), and how many
dead codes the quantiser restarted."""

from __future__ import annotations

import math

import torch


class CodebookMeter:
    def __init__(self, codebook_size: int):
        self.codebook_size = codebook_size
        self.counts = torch.zeros(codebook_size, dtype=torch.long)
        self.restarts = 0

    def update(self, codes: torch.Tensor, restarted: int) -> None:
        """codes: any shape of code indices used in one step; restarted: dead codes the
        quantiser re-initialised in that step."""
        self.counts += torch.bincount(codes.reshape(-1).cpu(), minlength=self.codebook_size)
        self.restarts += restarted

    def summary(self) -> dict[str, float]:
        """Usage and perplexity of the window so far; then a new window starts."""
        out = {**usage_statistics(self.counts), "codes_restarted": self.restarts}
        self.counts.zero_()
        self.restarts = 0
        return out


def usage_statistics(counts: torch.Tensor) -> dict[str, float]:
    """Share of codes used and perplexity, from per-code counts [codebook_size]."""
    p = counts.double() / max(int(counts.sum()), 1)
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return {"codebook_usage": float((counts > 0).double().mean()), "codebook_perplexity": math.exp(entropy)}


def code_statistics(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Usage and perplexity of a set of codes (e.g. a whole encoded corpus)."""
    return usage_statistics(torch.bincount(codes.reshape(-1).cpu(), minlength=codebook_size))
