"""Text-to-image: code vocabulary offsets in the M6 embedding, the code loss and output layer,
finetuning from a pretrained model (dense or MoE), the examples, seeded sampling with and
without the cache, guidance and reranking, the attribute reader, a resumed finetuning run
equal to the uninterrupted one, and the predictions rows kept for the human evaluation."""

import numpy as np
import pytest
import torch

from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.model.m6 import IGNORE_INDEX
from m6_pipeline.model.pretrained import export_pretrained, load_pretrained
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.t2i.attributes import matches, stated_attributes
from m6_pipeline.tasks.t2i.classifier import frechet_distance
from m6_pipeline.tasks.t2i.config import T2IData, T2IJob, T2ISampling
from m6_pipeline.tasks.t2i.data import T2IRecord, split_records, t2i_example, training_batch
from m6_pipeline.tasks.t2i.generate import final_codes, generate_codes
from m6_pipeline.tasks.t2i.train import T2ITrainer, code_loss

SPECIAL = SpecialTokens(pad=0, sep=3, mask=4, bos=5, eos=6)
N_CODES, GRID_CODES = 12, 6


def tiny(**overrides) -> M6Config:
    return M6Config.of_size("tiny", **{"vocab_size": 40, "n_patches": 4, "d_patch_feature": 8,
                                       "dropout": 0.0, "max_positions": 48, **overrides})


def records(n: int = 48, seed: int = 0) -> list[T2IRecord]:
    """Prompt token 10 + k determines the image: its codes are (k + position) mod N_CODES."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(0, 4))
        codes = (np.arange(GRID_CODES) + k) % N_CODES
        out.append(T2IRecord(f"r{i}", f"text {k}", [10 + k, 20], codes.astype(np.uint16), None))
    return out


def test_codes_are_tokens_after_the_vocabulary_with_their_own_embedding():
    model = M6Model(tiny(n_image_codes=N_CODES))
    assert model.config.code_offset == 40
    ids = torch.tensor([[7, 40 + 3, 40 + 0, 39]])
    x = model.embeddings._tokens(ids)
    assert torch.equal(x[0, 0], model.embeddings.word.weight[7])
    assert torch.equal(x[0, 1], model.embeddings.code.weight[3])
    assert torch.equal(x[0, 2], model.embeddings.code.weight[0])
    assert torch.equal(x[0, 3], model.embeddings.word.weight[39])
    assert model.code_head.weight.shape == (N_CODES, model.config.d_model)
    assert M6Model(tiny()).code_head is None  # no codes, no extra parameters


def test_the_code_loss_is_scored_by_the_code_output_layer_over_codes_only():
    torch.manual_seed(0)
    model = M6Model(tiny(n_image_codes=N_CODES))
    example = t2i_example([11, 12], np.array([1, 2, 3], dtype=np.uint16), SPECIAL, 40)
    from m6_pipeline.pretraining.tasks import collate

    batch = collate([example], SPECIAL.pad)
    labelled = batch["labels"][batch["labels"] != IGNORE_INDEX]
    assert labelled.tolist() == [41, 42, 43]  # the codes, offset; the prompt carries no loss
    loss = model(**batch)
    assert abs(float(loss.detach()) - np.log(N_CODES)) < 0.5  # near uniform over the codes, not the vocabulary
    loss.backward()
    assert model.code_head.weight.grad.abs().sum() > 0
    word_grad = model.embeddings.word.weight.grad
    assert word_grad[13:].abs().sum() == 0  # no word is scored at a code position
    logits, _ = model.step(batch["input_ids"], batch["segment_ids"],
                           torch.arange(batch["input_ids"].shape[1])[None],
                           torch.ones(1, 1, 7, 7, dtype=torch.bool), None, head="code")
    assert logits.shape == (1, 7, N_CODES)
    with pytest.raises(ValueError, match="no image codes"):
        M6Model(tiny()).step(batch["input_ids"].clamp(max=39), batch["segment_ids"], torch.arange(7)[None],
                             torch.ones(1, 1, 7, 7, dtype=torch.bool), None, head="code")


@pytest.mark.parametrize("moe", [None, {"n_experts": 4, "top_k": 1, "every": 2, "comm_dtype": None}])
def test_finetuning_starts_from_every_pretrained_weight(tmp_path, moe):
    """Dense and MoE checkpoints both load; only the code embedding and output layer are new."""
    from safetensors.torch import save_model

    torch.manual_seed(0)
    config = tiny(moe=moe) if moe else tiny()
    pretrained = M6Model(config)
    save_model(pretrained, str(tmp_path / "w.safetensors"))
    export_pretrained(tmp_path / "w.safetensors", config, {"run": "test"}, tmp_path / "model")
    model, card = load_pretrained(tmp_path / "model", n_image_codes=N_CODES)
    assert card["run"] == "test" and model.config.n_image_codes == N_CODES
    theirs = pretrained.state_dict()
    for name, value in model.state_dict().items():
        if name in theirs:
            assert torch.equal(value, theirs[name]), name
        else:
            assert name in {"embeddings.code.weight", "code_head.weight"}, name
    generated = generate_codes(model, [[11, 12]], GRID_CODES, SPECIAL, T2ISampling(top_k=4, samples_per_prompt=2),
                               torch.Generator().manual_seed(0))
    assert generated.codes.shape == (1, 2, GRID_CODES)


def test_a_checkpoint_that_does_not_fit_is_refused(tmp_path):
    from safetensors.torch import save_model

    save_model(M6Model(tiny(d_ff=128)), str(tmp_path / "w.safetensors"))
    export_pretrained(tmp_path / "w.safetensors", tiny(), {}, tmp_path / "model")
    with pytest.raises(Exception, match="size|does not fit"):
        load_pretrained(tmp_path / "model", n_image_codes=N_CODES)


def test_training_batches_depend_on_seed_and_step_only_and_dropout_empties_prompts():
    data = records()
    a = training_batch(data, 3, 8, 0, 0.5, SPECIAL, 40, 8)
    b = training_batch(data, 3, 8, 0, 0.5, SPECIAL, 40, 8)
    c = training_batch(data, 4, 8, 0, 0.5, SPECIAL, 40, 8)
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["input_ids"], c["input_ids"])
    all_dropped = training_batch(data, 0, 8, 0, 0.999, SPECIAL, 40, 8)
    assert (all_dropped["prefix_lengths"] == 1).all()  # [SEP] alone
    none_dropped = training_batch(data, 0, 8, 0, 0.0, SPECIAL, 40, 8)
    assert (none_dropped["prefix_lengths"] == 3).all()
    # [BOS] and the codes sit at the same positions with and without a prompt
    for batch in (all_dropped, none_dropped):
        for row in range(8):
            start = int(batch["prefix_lengths"][row])
            assert batch["position_ids"][row, start:].tolist() == list(range(8, 8 + GRID_CODES + 1))


def test_a_prompt_longer_than_its_budget_is_refused():
    long = [T2IRecord("x", "t", list(range(10, 30)), np.zeros(GRID_CODES, np.uint16), None)]
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        training_batch(long, 0, 1, 0, 0.0, SPECIAL, 40, 8)


def test_sampling_is_deterministic_under_a_seed_and_the_cache_changes_nothing():
    torch.manual_seed(0)
    model = M6Model(tiny(n_image_codes=N_CODES)).eval()
    sampling = T2ISampling(top_k=5, samples_per_prompt=3)
    prompts = [[11, 12], [13]]

    def run(seed, use_cache=True):
        return generate_codes(model, prompts, GRID_CODES, SPECIAL, sampling,
                              torch.Generator().manual_seed(seed), use_cache=use_cache).codes

    first = run(1)
    assert first.shape == (2, 3, GRID_CODES) and int(first.max()) < N_CODES
    assert torch.equal(first, run(1))
    assert not torch.equal(first, run(2))
    greedy = T2ISampling(top_k=1, samples_per_prompt=1)
    for target_start in (None, 6):
        cached = generate_codes(model, prompts, GRID_CODES, SPECIAL, greedy, use_cache=True,
                                target_start=target_start).codes
        recomputed = generate_codes(model, prompts, GRID_CODES, SPECIAL, greedy, use_cache=False,
                                    target_start=target_start).codes
        assert torch.equal(cached, recomputed)


def test_generation_sees_the_positions_that_training_used():
    """Teacher-forced code logits of a training batch equal the logits decoding produces."""
    torch.manual_seed(0)
    model = M6Model(tiny(n_image_codes=N_CODES)).eval()
    record = records(1)[0]
    from m6_pipeline.tasks.t2i.data import t2i_batch

    batch = t2i_batch([t2i_example(record.prompt_ids, record.codes, SPECIAL, 40)], SPECIAL.pad, 8)
    batch.pop("labels")
    hidden = model(**batch)
    start = int(batch["prefix_lengths"][0])
    forced = model.code_head(hidden[0, start : start + GRID_CODES])
    from m6_pipeline.model.generation import decode_step, encode_prefix
    from m6_pipeline.tasks.t2i.generate import prefix_batch

    ids, segments, lengths = prefix_batch([record.prompt_ids], SPECIAL)
    with torch.no_grad():
        logits, state = encode_prefix(model, ids, segments, lengths, SPECIAL.bos, head="code", target_start=8)
        decoded = [logits]
        for code in record.codes[:-1]:
            decoded.append(decode_step(model, torch.tensor([int(code) + 40]), state))
    assert torch.allclose(torch.cat(decoded), forced, atol=1e-4)


def test_guidance_scale_zero_samples_the_unconditional_model():
    """u + 0 (c - u) = u: the same draws as sampling from empty prompts."""
    torch.manual_seed(0)
    model = M6Model(tiny(n_image_codes=N_CODES)).eval()
    guided = generate_codes(model, [[11, 12], [13]], GRID_CODES, SPECIAL,
                            T2ISampling(top_k=0, samples_per_prompt=2, guidance_scale=0.0),
                            torch.Generator().manual_seed(5)).codes
    plain = generate_codes(model, [[], []], GRID_CODES, SPECIAL, T2ISampling(top_k=0, samples_per_prompt=2),
                           torch.Generator().manual_seed(5)).codes
    assert torch.equal(guided, plain)


def test_reranking_keeps_the_sample_of_highest_pointwise_mutual_information():
    torch.manual_seed(0)
    model = M6Model(tiny(n_image_codes=N_CODES)).eval()
    out = generate_codes(model, [[11], [12, 13]], GRID_CODES, SPECIAL,
                         T2ISampling(top_k=0, samples_per_prompt=4, guidance_scale=2.0, rerank=True),
                         torch.Generator().manual_seed(0))
    assert out.pmi.shape == (2, 4)
    assert torch.equal(out.chosen, out.pmi.argmax(1))
    shown = final_codes(out)
    assert shown.shape == (2, 1, GRID_CODES)
    for i in range(2):
        assert torch.equal(shown[i, 0], out.codes[i, out.chosen[i]])
    with pytest.raises(ValueError, match="rerank needs"):
        T2IJob(sampling=T2ISampling(rerank=True, samples_per_prompt=1))


def test_a_too_long_prompt_is_refused_with_the_fix():
    model = M6Model(tiny(n_image_codes=N_CODES, max_positions=10))
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        generate_codes(model, [[11] * 5], GRID_CODES, SPECIAL, T2ISampling())


def test_stated_attributes_read_the_catalogue_vocabulary():
    text = "这款橙色运动鞋采用圆点设计，中号尺寸。橙色不挑人，和其他颜色都好搭配。"
    assert stated_attributes(text) == {"colour": "橙色", "category": "运动鞋", "pattern": "圆点"}
    assert stated_attributes("红色和蓝色的条纹T恤") is None  # two colours label nothing
    assert stated_attributes("今天天气很好") is None
    assert matches({"category": "高跟鞋", "pattern": "迷彩", "colour": "红色"}, {"category": "高跟鞋", "pattern": "迷彩"})
    assert not matches(None, {"category": "高跟鞋"})


def test_the_unseen_combination_never_reaches_training():
    def record(i, text):
        return T2IRecord(f"id{i}", text, [1], np.zeros(4, np.uint16), stated_attributes(text))

    data = [record(i, t) for i, t in enumerate(["这款黑色高跟鞋采用迷彩设计。", "这款黑色高跟鞋采用条纹设计。",
                                                 "这款红色T恤采用迷彩设计。"] * 40)]
    split = split_records(data, T2IData(held_out_fraction=0.2))
    assert all(not matches(r.attributes, {"category": "高跟鞋", "pattern": "迷彩"}) for r in split.train + split.held_out)
    assert len(split.unseen_combination) == 40
    assert not {r.id for r in split.train} & {r.id for r in split.held_out}


def test_frechet_distance_is_zero_for_one_set_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(4.0, rel=0.05)  # |mean shift|² = 4


def _job(**training) -> T2IJob:
    return T2IJob.model_validate({
        "data": {"prompt_dropout": 0.1},
        "training": {"steps": 40, "batch_size": 16, "lr": 3e-3, "warmup_steps": 5, "log_every": 10,
                     "eval_every": 20, "checkpoint_every": 20, "dropout": 0.0, "precision": "fp32", **training},
    })


def test_finetuning_learns_the_codes_of_each_prompt_and_resumes_exactly(tmp_path):
    data = records()

    def trainer(job):
        torch.manual_seed(0)
        return T2ITrainer(job, M6Model(tiny(n_image_codes=N_CODES)), SPECIAL)

    full = trainer(_job())
    before = code_loss(full.model, data[:16], SPECIAL, "fp32", _job().data.target_start)
    result = full.fit(data, data[:16])
    after = code_loss(full.model, data[:16], SPECIAL, "fp32", _job().data.target_start)
    assert after < 0.5 * before, (before, after)
    assert result["validation"][-1]["val_loss"] == pytest.approx(after, rel=1e-5)

    first = trainer(_job())
    save = first.save

    def save_then_die(path):
        save(path)
        raise RuntimeError("worker died after its checkpoint")

    first.save = save_then_die
    with pytest.raises(RuntimeError, match="worker died"):
        first.fit(data, data[:16], tmp_path)
    assert first.step == 20
    resumed = trainer(_job())
    resumed.fit(data, data[:16], tmp_path)
    assert resumed.step == 40

    def losses(history):
        return [(r["step"], r["loss"]) for r in history]

    assert losses(resumed.history) == losses(full.history)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_judge_blurs_some_training_images_and_keeps_their_shape():
    from m6_pipeline.tasks.t2i.classifier import soften

    x = torch.rand(64, 3, 32, 32) * 2 - 1
    out = soften(x, torch.Generator().manual_seed(0), p=0.5)
    changed = (out - x).flatten(1).abs().amax(1) > 1e-3
    assert out.shape == x.shape and 10 < int(changed.sum()) < 54
    assert torch.equal(soften(x, torch.Generator().manual_seed(0), p=0.0), x)
    # blurring lowers high-frequency energy: neighbouring pixels grow alike
    def roughness(t):
        return (t[..., 1:] - t[..., :-1]).abs().mean()

    assert roughness(out[changed]) < 0.8 * roughness(x[changed])


def test_fid_reads_a_local_torchscript_inception_file(tmp_path):
    """Stand-in network with the interface of inception-2015-12-05.pt (forward(x,
    return_features)): identical sets score 0, shifted ones more; a missing file says what to do."""
    from m6_pipeline.tasks.t2i.fid import fid

    class Pool(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return x.mean(dim=(2, 3)) / 255.0

    torch.jit.script(Pool()).save(str(tmp_path / "inception.pt"))
    rng = np.random.default_rng(0)
    real = rng.integers(0, 200, (64, 8, 8, 3), dtype=np.uint8)
    assert fid(tmp_path / "inception.pt", real, real) == pytest.approx(0.0, abs=1e-6)
    assert fid(tmp_path / "inception.pt", real, real + 50) > 0.1
    with pytest.raises(FileNotFoundError, match="inception-2015-12-05"):
        fid(tmp_path / "missing.pt", real, real)


def test_prediction_rows_name_each_image_by_the_key_of_its_lossless_png():
    import io

    from PIL import Image

    from m6_pipeline.tasks.t2i.evaluate import prediction_rows

    stated = {"colour": "红色", "category": "连衣裙", "pattern": "条纹"}
    held = [T2IRecord(f"catalogue/{i:06d}", f"这款红色连衣裙采用条纹设计 {i}", [10], np.zeros(4, np.uint16),
                      stated) for i in range(3)]
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    images[2] = images[0]  # the same image twice: one key, one stored PNG
    rows, table = prediction_rows(held, images)
    keys = [r["outputs"]["pretrained"] for r in rows]
    assert rows[0] == {"id": "catalogue/000000", "prompt": "这款红色连衣裙采用条纹设计 0",
                       "image_id": "catalogue/000000", "reference": None, "meta": {"stated": stated},
                       "outputs": {"pretrained": keys[0]}}
    assert keys[0] == keys[2] != keys[1] and all(len(k) == 16 for k in keys)
    assert list(table.columns) == ["image_key", "png"] and sorted(table["image_key"]) == sorted(set(keys))
    pngs = dict(zip(table["image_key"], table["png"]))
    for key, image in zip(keys, images):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(pngs[key]))), image)
    with pytest.raises(ValueError, match="one image per record"):
        prediction_rows(held, images[:2])
    assert [r["prompt"] for r in prediction_rows(held, images, ["a", "b", "c"])[0]] == ["a", "b", "c"]


def test_the_prompt_shown_is_what_the_model_read():
    from tokenizers import Tokenizer, models, pre_tokenizers

    from m6_pipeline.tasks.t2i.evaluate import prompts_as_given

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character
    texts = ["这款红色连衣裙，采用条纹设计。", "红裙"]
    assert prompts_as_given(tokenizer, texts, 6) == ["这款红色连衣", "红裙"]
