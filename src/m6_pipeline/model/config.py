"""The M6 model configuration and the named sizes of the paper's Table 4.

A config is plain data: Kedro parameters validate into it, a Ray worker receives it, and the
parameter count is taken from it on the meta device without allocating weights.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from m6_pipeline.model.moe import MoEConfig

# Table 4 of the paper. 100B is the base architecture with 1024 experts in every other block's
# FFN (§3.4). `tiny` is the debug size every test runs.
SIZES: dict[str, dict[str, object]] = {
    "base": {"n_layers": 24, "d_model": 1024, "n_heads": 16},
    "10b": {"n_layers": 50, "d_model": 4096, "n_heads": 128},
    "100b": {"n_layers": 24, "d_model": 1024, "n_heads": 16, "moe": {"n_experts": 1024}},
    "tiny": {"n_layers": 2, "d_model": 64, "n_heads": 4},
}
# The paper's reported sizes, for the counts the tests and plans check against.
PAPER_PARAMS: dict[str, float] = {"base": 327e6, "10b": 10e9, "100b": 100e9}


class M6Config(BaseModel):
    """One transformer that encodes (bidirectional prefix) and decodes (causal target)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vocab_size: int = Field(21128, description="WordPiece vocabulary (bert-base-chinese's size)")
    n_layers: int = 24
    d_model: int = 1024
    n_heads: int = 16
    d_ff: int | None = Field(None, description="feed-forward width; 4 * d_model when omitted")
    max_positions: int = Field(512, description="learned positions over the whole sequence")
    n_patches: int = Field(16, description="image patches per image (grid * grid)")
    d_patch_feature: int = Field(2048, description="patch feature width (ResNet-50: 2048)")
    n_segments: int = Field(3, description="image / masked text / target text")
    n_image_codes: int = Field(
        0,
        ge=0,
        description="VQGAN codes appended to the vocabulary for text-to-image (§4.1): code c is "
        "token vocab_size + c, with its own embedding and output layer; 0 = none",
    )
    activation: Literal["gelu", "gelu_tanh"] = Field(
        "gelu",
        description="FFN activation: BERT's exact (erf) GELU, or GPT-2's tanh approximation, "
        "which on CPU costs about twice as much forward + backward (2.1x at [2048, 1024])",
    )
    dropout: float = 0.1
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02
    activation_checkpointing: bool = False
    moe: MoEConfig | None = Field(None, description="Mixture-of-Experts FFNs (M6-100B); None = dense")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> M6Config:
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "pick a head count that divides the width"
            )
        return self

    @property
    def expert_width(self) -> int:
        return (self.moe.d_expert if self.moe is not None else None) or self.ffn_width

    @property
    def ffn_width(self) -> int:
        return self.d_ff or 4 * self.d_model

    @property
    def gelu_approximate(self) -> str:
        """`F.gelu`'s `approximate` argument for `activation`."""
        return "tanh" if self.activation == "gelu_tanh" else "none"

    @property
    def code_offset(self) -> int:
        """Token id of image code 0 (codes follow the word vocabulary)."""
        return self.vocab_size

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def of_size(cls, size: str, **overrides: object) -> M6Config:
        """A named size of Table 4 with field overrides (vocabulary, patches, dropout, ...).
        A `moe` override is merged into the size's MoE settings."""
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; known sizes: {sorted(SIZES)}")
        fields = {**SIZES[size], **overrides}
        if isinstance(SIZES[size].get("moe"), dict) and isinstance(overrides.get("moe"), dict):
            fields["moe"] = {**SIZES[size]["moe"], **overrides["moe"]}
        return cls(**fields)
