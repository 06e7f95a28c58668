"""The stream is deterministic, covers every sample once per epoch, and any step's batch can
be computed directly (that is what makes resume exact)."""

import numpy as np

from m6_pipeline.data.parquet_stream import is_held_out
from m6_pipeline.pretraining.batches import StepBatches, TaskMix
from m6_pipeline.pretraining.stream import ShardStream
from tests.pretraining.synthetic_shards import SPECIAL, write_synthetic_shards


def test_every_sample_once_per_epoch_in_a_seeded_order(tmp_path):
    write_synthetic_shards(tmp_path, n_text=300, row_group_rows=32)
    stream = ShardStream(tmp_path / "text", "train", seed=3)
    n = len(stream)
    epoch0 = [r["id"] for r in stream.take(0, n)]
    epoch1 = [r["id"] for r in stream.take(n, n)]
    assert sorted(epoch0) == sorted(epoch1) and len(set(epoch0)) == n
    assert epoch0 != epoch1  # each epoch has its own order
    again = ShardStream(tmp_path / "text", "train", seed=3)
    assert [r["id"] for r in again.take(17, 40)] == epoch0[17:57]
    other = ShardStream(tmp_path / "text", "train", seed=4)
    assert [r["id"] for r in other.take(0, 40)] != epoch0[:40]


def test_batch_of_a_step_is_the_same_computed_directly(tmp_path):
    write_synthetic_shards(tmp_path)
    kwargs = {"n_steps": 30, "batch_size": 4, "world_size": 2, "seed": 0}
    ranks = [StepBatches(tmp_path, TaskMix(), SPECIAL, rank=r, **kwargs) for r in range(2)]
    replayed = [ranks[0].batch(s) for s in range(30)]
    fresh = StepBatches(tmp_path, TaskMix(), SPECIAL, rank=0, **kwargs)
    for step in (29, 0, 17):
        task, batch = fresh.batch(step)
        assert task == replayed[step][0]
        for key, value in batch.items():
            assert (value == replayed[step][1][key]).all()
    # the two ranks of a step read different samples of the same task
    for step in range(30):
        (ta, a), (tb, b) = ranks[0].batch(step), ranks[1].batch(step)
        assert ta == tb and not (a["input_ids"].shape == b["input_ids"].shape
                                 and (a["input_ids"] == b["input_ids"]).all())


def test_task_mix_follows_the_weights(tmp_path):
    write_synthetic_shards(tmp_path)
    mix = TaskMix(weights={"text_denoising": 3.0, "language_modelling": 1.0,
                           "image_to_text": 0.0, "multimodality_to_text": 0.0})
    batches = StepBatches(tmp_path, mix, SPECIAL, n_steps=4000, batch_size=1, rank=0, world_size=1, seed=0)
    share = batches.schedule.count("text_denoising") / 4000
    assert abs(share - 0.75) < 0.03 and "image_to_text" not in batches.schedule
    assert set(batches.streams) == {"text"}  # no pair shards needed without image tasks


def test_validation_split_is_stable_and_near_its_fraction():
    ids = [f"doc-{i}" for i in range(20000)]
    held = [is_held_out(i, 0.05) for i in ids]
    assert held == [is_held_out(i, 0.05) for i in ids]
    assert abs(np.mean(held) - 0.05) < 0.01


def test_pair_shards_leave_out_the_downstream_test_pairs(tmp_path):
    """Pretraining never sees a downstream test image with its text."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from m6_pipeline.pretraining.shards import ShardConfig, write_pair_shards
    from m6_pipeline.tasks.records import is_downstream_test, split_of
    from m6_pipeline.tokenization.wordpiece import TokenizerConfig, train_wordpiece

    ids = [f"catalogue/{i:06d}" for i in range(300)]
    texts = [f"这款红色的商品编号{i}" for i in range(300)]
    features = tmp_path / "features"
    features.mkdir()
    pq.write_table(pa.table({
        "id": ids, "text": texts, "n_patches": pa.array([2] * 300, pa.int32()),
        "d_feature": pa.array([4] * 300, pa.int32()),
        "patch_features": [np.zeros((2, 4), "<f2").tobytes()] * 300,
    }), features / "patch_features-00000.parquet")
    tokenizer, _ = train_wordpiece([texts], TokenizerConfig(vocab_size=100, min_frequency=1))
    counts = write_pair_shards(features, tokenizer, tmp_path / "shards", ShardConfig(downstream_test_fraction=0.2))
    written = set()
    for path in (tmp_path / "shards").glob("*.parquet"):
        written |= set(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    reserved = {i for i in ids if is_downstream_test(i, 0.2)}
    assert written == set(ids) - reserved and counts["reserved_for_downstream_test"] == len(reserved) > 30
    assert {i for i in ids if split_of(i, 0.05, 0.2, salt="any task") == "test"} == reserved
