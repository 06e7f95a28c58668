"""A small real batch: predictions of every kind the human-evaluation batch knows, with images."""

from __future__ import annotations

import io

from PIL import Image

from m6_pipeline.evaluation.batches import image_key

HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">**bold**'


def png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(out, format="PNG")
    return out.getvalue()


def predictions() -> tuple[dict, dict[str, bytes]]:
    """Rows of every task the batch knows, and the images they refer to."""
    generated = {f"gen{i}": png((20 * i, 0, 0)) for i in range(3)}
    rows = {
        "caption": [{"id": f"c{i}", "prompt": "", "image_id": f"catalogue/{i:06d}", "reference": "参考",
                     "outputs": {"pretrained": f"一件红色的连衣裙{i}", "baseline": HOSTILE if i == 0 else f"基线{i}"}}
                    for i in range(3)],
        "vqa": [{"id": f"v{i}", "prompt": "这是什么商品？回答：", "image_id": f"catalogue/{i:06d}", "reference": "连衣裙",
                 "outputs": {"pretrained": "连衣裙", "baseline": "手表"}} for i in range(2)],
        "qa": [{"id": "q0", "prompt": "为什么天是蓝的？回答：", "reference": "因为瑞利散射。",
                "outputs": {"pretrained": "因为空气散射蓝光。", "baseline": "的的的"}}],
        "poem": [{"id": "p0", "prompt": "春晓 正文：", "outputs": {"pretrained": "春眠不觉晓\n处处闻啼鸟\n夜来风雨声\n花落知多少",
                                                                  "baseline": "春春春春春"}}],
        "t2i": [{"id": f"t{i}", "prompt": "一件红色的连衣裙", "image_id": None, "outputs": {"pretrained": f"gen{i}"}}
                for i in range(3)],
    }
    images = {image_key(f"catalogue/{i:06d}"): png((0, 40 * i, 200)) for i in range(3)} | generated
    return rows, images
