"""The M6 model: configuration, masks, blocks and the unified encoder-decoder (no Ray or
ColossalAI imports; `m6_pipeline.training` wraps it)."""

from m6_pipeline.model.config import PAPER_PARAMS, SIZES, M6Config
from m6_pipeline.model.m6 import IGNORE_INDEX, M6Model, count_parameters

__all__ = ["IGNORE_INDEX", "PAPER_PARAMS", "SIZES", "M6Config", "M6Model", "count_parameters"]
