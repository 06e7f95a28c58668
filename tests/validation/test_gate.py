"""The gate of the stages that read the clean corpus: every such node takes the suite's result
as a Kedro input (so no runner or `--from-nodes` can run it before the suite) and refuses a
result that failed, validated nothing, or is stale for the files it would read."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m6_pipeline.features import FeaturesConfig
from m6_pipeline.tokenization import TokenizerConfig
from m6_pipeline.training.parameters import PretrainParameters
from m6_pipeline.validation.gate import require_passed
from m6_pipeline.validation.suites import CorpusValidationError
from m6_pipeline.vqgan import VQGANJob
from pipelines.corpus.pipeline import create_pipeline as corpus
from pipelines.features import nodes as features
from pipelines.features.pipeline import create_pipeline as features_pipeline
from pipelines.pretrain import nodes as pretrain
from pipelines.pretrain.pipeline import create_pipeline as pretrain_pipeline
from pipelines.tokenizer import nodes as tokenizer
from pipelines.tokenizer.pipeline import create_pipeline as tokenizer_pipeline
from pipelines.vqgan import nodes as vqgan
from pipelines.vqgan.pipeline import create_pipeline as vqgan_pipeline
from tests.validation.results import passed_result

TEXT = "这是一条足够长的中文文本，没有任何问题。"
# the nodes that read the clean corpus, by stage, and which of them read the clean text
READERS = {"train_tokenizer": tokenizer_pipeline, "build_tokenizer_report": tokenizer_pipeline,
           "train_patch_extractor": features_pipeline, "extract_patch_features": features_pipeline,
           "build_features_report": features_pipeline, "train_vqgan": vqgan_pipeline,
           "encode_pair_images": vqgan_pipeline, "report_vqgan": vqgan_pipeline}
TEXT_READERS = {"train_tokenizer", "build_tokenizer_report"}


@pytest.fixture
def corpus_dirs(tmp_path):
    text_dir, pairs_dir = tmp_path / "text", tmp_path / "pairs"
    for directory, prefix in ((text_dir, "text"), (pairs_dir, "pairs")):
        directory.mkdir()
        for part in range(2):
            ids = [f"{prefix}/{part}-{i}" for i in range(3)]
            pq.write_table(pa.table({"id": ids, "source": ["news"] * 3, "text": [TEXT] * 3}),
                           directory / f"{prefix}-{part:05d}.parquet")
    return text_dir, pairs_dir


def failed(result: dict) -> dict:
    expectation = "expect_column_value_lengths_to_be_between(text)"
    return {**result, "success": False, "unexpected_rows": {expectation: 2}}


def test_a_passing_result_for_the_same_files_opens_the_gate(corpus_dirs):
    text_dir, _ = corpus_dirs
    require_passed(passed_result("clean_text", text_dir), "clean_text", text_dir)


def test_a_failed_result_names_the_expectation_and_the_fix(corpus_dirs):
    text_dir, _ = corpus_dirs
    with pytest.raises(CorpusValidationError, match=r"failed suite 'clean_text': "
                       r"expect_column_value_lengths_to_be_between\(text\) \(2 rows\).*kedro run --pipeline=corpus"):
        require_passed(failed(passed_result("clean_text", text_dir)), "clean_text", text_dir)


def test_an_empty_result_is_refused(corpus_dirs):
    text_dir, _ = corpus_dirs
    empty = {**passed_result("clean_text", text_dir), "rows": 0}  # what the suites passed before the gate
    with pytest.raises(CorpusValidationError,
                       match=r"expect_table_row_count_to_be_between\(min_value=1\): clean_text is empty"):
        require_passed(empty, "clean_text", text_dir)


def test_a_result_that_does_not_say_what_it_validated_is_refused(corpus_dirs):
    text_dir, _ = corpus_dirs
    old = {k: v for k, v in passed_result("clean_text", text_dir).items() if k != "fingerprint"}
    with pytest.raises(CorpusValidationError, match="does not record which files"):
        require_passed(old, "clean_text", text_dir)
    with pytest.raises(CorpusValidationError, match="no validation result"):
        require_passed(None, "clean_text", text_dir)


@pytest.mark.parametrize("change", ["rewritten", "added", "removed"])
def test_a_stale_result_is_refused(corpus_dirs, change):
    text_dir, _ = corpus_dirs
    result = passed_result("clean_text", text_dir)
    first = text_dir / "text-00000.parquet"
    if change == "rewritten":  # a corpus run that wrote new files, then stopped at its suite
        pq.write_table(pa.table({"id": ["x"], "source": ["news"], "text": ["太短"]}), first)
    elif change == "added":  # a file copied in by hand: read downstream, never validated
        pq.write_table(pq.read_table(first), text_dir / "extra.parquet")
    else:
        first.unlink()
    with pytest.raises(CorpusValidationError, match=r"result of suite 'clean_text' is stale"):
        require_passed(result, "clean_text", text_dir)


def test_a_missing_corpus_is_refused(tmp_path, corpus_dirs):
    text_dir, _ = corpus_dirs
    with pytest.raises(CorpusValidationError, match="no \\*.parquet under"):
        require_passed(passed_result("clean_text", text_dir), "clean_text", tmp_path / "nowhere")


def downstream_calls(text_dir, pairs_dir, text_result: dict, pairs_result: dict):
    """Every node of the tokenizer, features and vqgan stages that reads the clean corpus, with
    arguments that would break it at once had it got past the gate."""
    tok = TokenizerConfig(text_dir=text_dir, pairs_dir=pairs_dir, vocab_size=200)
    feat = FeaturesConfig(pairs_dir=pairs_dir, out_dir=pairs_dir.parent / "features")
    job = VQGANJob(pairs_dir=pairs_dir, codes_dir=pairs_dir.parent / "codes")
    return {
        "train_tokenizer": lambda: tokenizer.train_tokenizer(tok, text_result, pairs_result, {}),
        "build_tokenizer_report": lambda: tokenizer.build_tokenizer_report(tok, text_result, pairs_result,
                                                                           None, {}),
        "train_patch_extractor": lambda: features.train_patch_extractor(feat, pairs_result, {}),
        "extract_patch_features": lambda: features.extract_patch_features(feat, pairs_result, None),
        "build_features_report": lambda: features.build_features_report(feat, pairs_result, None, {}, {}),
        "train_vqgan": lambda: vqgan.train_vqgan(job, pairs_result, {}),
        "encode_pair_images": lambda: vqgan.encode_pair_images(job, pairs_result, {}),
        "report_vqgan": lambda: vqgan.report_vqgan(job, pairs_result, {}, {}, {}),
    }


@pytest.mark.parametrize("node", sorted(READERS))
@pytest.mark.parametrize("state", ["failed", "empty", "stale"])
def test_a_downstream_node_refuses_a_corpus_that_did_not_pass(corpus_dirs, node, state):
    text_dir, pairs_dir = corpus_dirs
    text_result, pairs_result = passed_result("clean_text", text_dir), passed_result("clean_pairs", pairs_dir)
    if state == "failed":
        text_result, pairs_result = failed(text_result), failed(pairs_result)
    elif state == "empty":
        text_result, pairs_result = {**text_result, "rows": 0}, {**pairs_result, "rows": 0}
    else:
        for directory in corpus_dirs:
            (directory / "new.parquet").write_bytes((directory / f"{directory.name}-00000.parquet").read_bytes())
    expected = {"failed": r"failed suite .*value_lengths_to_be_between", "empty": r"is empty",
                "stale": r"is stale"}[state]
    with pytest.raises(CorpusValidationError, match=expected):
        downstream_calls(text_dir, pairs_dir, text_result, pairs_result)[node]()


@pytest.mark.parametrize("state", ["failed", "empty", "stale"])
def test_pretraining_refuses_to_tokenize_a_text_corpus_that_did_not_pass(corpus_dirs, tmp_path, state):
    text_dir, _ = corpus_dirs
    result = passed_result("clean_text", text_dir)
    if state == "failed":
        result = failed(result)
    elif state == "empty":
        result = {**result, "rows": 0}
    else:
        (text_dir / "new.parquet").write_bytes((text_dir / "text-00000.parquet").read_bytes())
    # only the two directories matter before the gate: the rest of a full parameter set is not built
    params = PretrainParameters.model_construct(text_dir=str(text_dir), shard_dir=str(tmp_path / "shards"))
    with pytest.raises(CorpusValidationError, match={"failed": "failed suite", "empty": "is empty",
                                                      "stale": "is stale"}[state]):
        pretrain.write_token_shards(params, result, None, {})
    assert not (tmp_path / "shards").exists()


def test_pretraining_tokenizes_only_after_the_text_suite():
    for namespace in ("pretrain_base", "pretrain_100b"):
        node = f"{namespace}.write_token_shards"
        upstream = {n.name for n in (corpus() + pretrain_pipeline(namespace)).to_nodes(node).nodes}
        assert "validate_clean_text" in upstream, namespace


def test_every_node_that_reads_the_corpus_depends_on_its_suite():
    """The validation node is upstream of each reader in the joined graph: `--from-nodes` and
    parallel runners keep the order, and the reader loads the suite's saved result."""
    for node, stage in READERS.items():
        upstream = {n.name for n in (corpus() + stage()).to_nodes(node).nodes}
        assert "validate_clean_pairs" in upstream, node
        assert "validate_clean_text" in upstream or node not in TEXT_READERS, node
        free_inputs = stage().from_nodes(node).inputs()
        assert "clean_pairs_validation" in free_inputs, node
        assert ("clean_text_validation" in free_inputs) == (node in TEXT_READERS), node
        # every node in the stage that reads the corpus takes the result itself
        assert "clean_pairs_validation" in next(n for n in stage().nodes if n.name == node).inputs


def test_the_later_stages_that_read_images_from_the_clean_pairs_take_their_result():
    from pipelines.evaluate.pipeline import create_pipeline as evaluate_pipeline
    from pipelines.finetune_t2i.pipeline import create_pipeline as t2i_pipeline
    from pipelines.finetune_tasks.pipeline import create_pipeline as task_pipeline

    readers = {"train_attribute_classifier": t2i_pipeline(), "evaluate_t2i": t2i_pipeline(),
               "finetune_vqa.examples": task_pipeline("vqa"), "export_human_batch": evaluate_pipeline()}
    for node, stage in readers.items():
        found = [n for n in stage.nodes if n.name == node]
        assert found, f"{node} not in its pipeline: {[n.name for n in stage.nodes]}"
        assert "clean_pairs_validation" in found[0].inputs, node
        assert "validate_clean_pairs" in {n.name for n in (corpus() + stage).to_nodes(node).nodes}, node
