"""Figures of the text-to-image report: a grid of samples per Chinese prompt (Figures 4-7 in
spirit) and the finetuning curve. Chinese labels use Noto Sans CJK SC, which the `mplfonts`
package ships (no font is downloaded)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402

CJK_FONT = "Noto Sans CJK SC"


def use_cjk_font() -> None:
    """Register the CJK font shipped in `mplfonts` and put it first in the sans-serif list."""
    import mplfonts

    path = Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
    if CJK_FONT not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(path))
    plt.rcParams["font.sans-serif"] = [CJK_FONT, *plt.rcParams["font.sans-serif"]]
    plt.rcParams["axes.unicode_minus"] = False


def prompt_grid(prompts: list[str], images: np.ndarray, title: str) -> plt.Figure:
    """images uint8 [n_prompts, samples, r, r, 3]: one row per prompt, its text on the left."""
    use_cjk_font()
    n, k = images.shape[:2]
    figure, axes = plt.subplots(n, k + 1, figsize=(1.5 * k + 3.6, 1.5 * n),
                                gridspec_kw={"width_ratios": [2.4] + [1] * k}, squeeze=False)
    for i, prompt in enumerate(prompts):
        axes[i, 0].axis("off")
        axes[i, 0].text(1.0, 0.5, prompt, ha="right", va="center", fontsize=8, wrap=True,
                        transform=axes[i, 0].transAxes)
        for j in range(k):
            axes[i, j + 1].imshow(images[i, j], interpolation="nearest")
            axes[i, j + 1].axis("off")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def finetune_curve(training: dict) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(6.5, 3.6))
    history, validation = training["history"], training["validation"]
    ax.plot([r["step"] for r in history], [r["loss"] for r in history], label="train")
    ax.plot([r["step"] for r in validation], [r["val_loss"] for r in validation], "o-", label="held-out")
    ax.axhline(training["uniform_code_loss"], color="grey", ls="--", label="uniform over codes")
    ax.set_xlabel("step")
    ax.set_ylabel("code cross entropy (nats)")
    ax.set_title("finetune_t2i")
    ax.legend()
    figure.tight_layout()
    return figure
