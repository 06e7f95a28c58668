"""Downstream task data: ITM negatives, VQA questions and scenes, the FMIQA and prompt loaders,
caption selection; what every later number rests on."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from m6_pipeline.data.catalogue import CATEGORIES, COLOURS, PATTERNS, SIZES, describe_item, render_item
from m6_pipeline.tasks.caption.data import CaptionData, caption_examples, whole_sentences
from m6_pipeline.tasks.itm.data import ITMData, differs, itm_examples, negative_partner
from m6_pipeline.tasks.qa.prompts import load_questions, load_titles
from m6_pipeline.tasks.records import PairRecord, split_of, stated_size
from m6_pipeline.tasks.t2i.attributes import stated_attributes
from m6_pipeline.tasks.vqa.fmiqa import FMIQAFormatError, load_fmiqa
from m6_pipeline.tasks.vqa.metrics import accuracy_by_type, normalise_answer
from m6_pipeline.tasks.vqa.questions import COUNT_WORDS, scene_questions, single_product_questions
from m6_pipeline.tasks.vqa.scenes import compose


def catalogue_records(n: int, seed: int = 0) -> list[PairRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        attributes = {"category": rng.choice(CATEGORIES), "colour": rng.choice(list(COLOURS)),
                      "pattern": rng.choice(PATTERNS), "size": rng.choice(list(SIZES))}
        text = describe_item(attributes, rng)[1]
        stated = stated_attributes(text)
        out.append(PairRecord(f"catalogue/{i:06d}", "catalogue", text,
                              {**stated, "size": stated_size(text)} if stated else None))
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 12))
def test_negative_partner_is_never_the_positive(seed, n):
    records = catalogue_records(n, seed % 7)
    records = [r for r in records if r.attributes is not None]
    rng = np.random.default_rng(seed)
    for i in range(len(records)):
        if not any(differs(records[i], r) for r in records):
            continue
        j = negative_partner(i, records, rng)
        assert j != i and differs(records[i], records[j])


def test_itm_splits_are_balanced_disjoint_and_queries_have_6_to_12_words():
    records = catalogue_records(400)
    splits = itm_examples(records, ITMData(val_fraction=0.1, test_fraction=0.15))
    for name in ("test", "calibration"):
        labels = [e.meta["label"] for e in splits[name]]
        assert sum(labels) * 2 == len(labels)
        for e in splits[name]:
            assert (e.meta["query_of"] == e.image_id) == (e.meta["label"] == 1)
            assert 4 <= len(e.meta["query"].split()) <= 12
    train_images = {e.image_id for e in splits["train"] if e.image_id}
    assert not train_images & {e.image_id for e in splits["test"]}
    # the generative examples: each query once after its image and once alone
    assert sum(e.image_id is None for e in splits["train"]) * 2 == len(splits["train"])
    lengths = [len(e.meta["query"].split()) for e in splits["test"]]
    assert np.mean([6 <= n <= 12 for n in lengths]) > 0.9


def test_vqa_questions_answer_what_the_text_states():
    record = catalogue_records(1)[0]
    questions = {q.meta["type"]: q for q in single_product_questions(record)}
    assert questions["colour"].target == record.attributes["colour"]
    assert questions["detection"].target == record.attributes["category"]
    assert all(q.prompt.endswith("？回答：") for q in questions.values())


def test_scene_relation_questions_tell_the_two_products_apart():
    records = catalogue_records(60, seed=3)
    rng = np.random.default_rng(0)
    for k in range(30):
        left, right = records[2 * k], records[2 * k + 1]
        out = {q.meta["type"]: q for q in scene_questions(f"s{k}", [left, right], rng)}
        assert out["number"].target == COUNT_WORDS[2]
        if "relation" in out:
            q = out["relation"]
            product, other = (left, right) if q.prompt.startswith("左边") else (right, left)
            attribute = "colour" if "颜色" in q.prompt else "category"
            assert q.target == product.attributes[attribute] != other.attributes[attribute]


def test_compose_places_products_side_by_side_on_white():
    rng = random.Random(0)
    pngs = []
    for colour in ("红色", "蓝色"):
        buffer = io.BytesIO()
        render_item({"category": "马克杯", "colour": colour, "pattern": "纯色", "size": "大"}, rng, 64).save(
            buffer, format="PNG")
        pngs.append(buffer.getvalue())
    scene = np.asarray(Image.open(io.BytesIO(compose(pngs, 128))))
    assert scene.shape == (128, 128, 3)
    assert (scene[:10] > 245).all()  # the band above the products stays white
    left, right = scene[:, :64].reshape(-1, 3), scene[:, 64:].reshape(-1, 3)
    red = lambda px: ((px[:, 0] > 150) & (px[:, 2] < 100)).sum()  # noqa: E731
    assert red(left) > 100 and red(right) < 10


def test_fmiqa_loader_reads_both_layouts_and_names_bad_rows(tmp_path):
    good = tmp_path / "fmiqa.json"
    good.write_text(json.dumps([
        {"image_id": "a.jpg", "question_id": 1, "Question": {"Chinese": "这是什么"}, "Answer": {"Chinese": "猫"}},
        {"image": "b.jpg", "question": "几个人？", "answer": "两个", "type": "number"},
    ], ensure_ascii=False), encoding="utf-8")
    examples = load_fmiqa(good)
    assert [e.target for e in examples] == ["猫", "两个"]
    assert examples[0].prompt == "这是什么？回答：" and examples[1].meta["type"] == "number"
    assert examples[0].image_id == str(tmp_path / "a.jpg")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.jpg", "question": "这是什么", "answer": "猫"}\n{"image": "b.jpg", "question": "？"}\n',
                   encoding="utf-8")
    with pytest.raises(FMIQAFormatError, match=r"bad.jsonl:2: `answer`"):
        load_fmiqa(bad)
    bad.write_text('{"image": "a.jpg", "question": "这是什么", "answer": "猫"}\nnot json\n', encoding="utf-8")
    with pytest.raises(FMIQAFormatError, match=r"bad.jsonl:2: not valid JSON"):
        load_fmiqa(bad)
    bad.write_text('["not an object"]', encoding="utf-8")
    with pytest.raises(FMIQAFormatError, match="must be an object"):
        load_fmiqa(bad)


def test_prompt_files_reject_malformed_rows(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": "a", "question": "为什么？"}\n{"id": "a", "question": "怎么办"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate id 'a'"):
        load_questions(path)
    path.write_text('{"id": "a", "human_answer": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=":1: needs a non-empty `question`"):
        load_questions(path)
    path.write_text('{"question": "为什么", "human_answer": "因为。"}\n', encoding="utf-8")
    assert load_questions(path)[0].prompt == "为什么？回答："
    titles = tmp_path / "titles.txt"
    titles.write_text("# comment\n\n春晓\n", encoding="utf-8")
    assert load_titles(titles) == ["春晓"]


def test_shipped_prompt_files_load():
    from tests.conftest import ROOT

    questions = load_questions(ROOT / "conf/base/prompts/qa_prompts.jsonl")
    assert len(questions) >= 20 and sum(q.human_answer is not None for q in questions) >= 10
    assert len(load_titles(ROOT / "conf/base/prompts/poem_titles.txt")) == 50


def test_vqa_accuracy_normalises_punctuation_and_width():
    assert normalise_answer(" 红色。") == normalise_answer("红色") == "红色"
    out = accuracy_by_type(["红色。", "两件", "蓝色"], ["红色", "三件", "蓝色"], ["colour", "number", "colour"])
    assert out["colour"] == {"accuracy": 1.0, "n": 2} and out["number"]["accuracy"] == 0.0
    assert out["overall"]["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        accuracy_by_type(["a"], [], [])


def test_captions_keep_whole_sentences_and_drop_by_reason(tmp_path):
    assert whole_sentences("第一句话。第二句话很长很长。", 8) == "第一句话。"
    records = catalogue_records(50)
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text(records[0].text[2:6] + "\n", encoding="utf-8")
    splits, dropped = caption_examples(records, CaptionData(lexicon_path=str(lexicon), max_words=60))
    kept = sum(len(v) for v in splits.values())
    assert kept + sum(dropped.values()) == len(records)  # every pair accounted for
    assert dropped["lexicon"] >= 1
    assert all(len(e.target) <= 60 and e.target.endswith("。") for v in splits.values() for e in v)


def test_splits_are_stable_and_proportional():
    ids = [f"x{i}" for i in range(5000)]
    splits = [split_of(i, 0.1, 0.2) for i in ids]
    assert splits == [split_of(i, 0.1, 0.2) for i in ids]
    assert abs(splits.count("test") / 5000 - 0.2) < 0.03 and abs(splits.count("val") / 5000 - 0.1) < 0.03
