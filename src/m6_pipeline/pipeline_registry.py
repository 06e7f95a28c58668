"""The project's pipelines. `__default__` chains every stage at laptop scale."""

from kedro.pipeline import Pipeline

from pipelines.corpus.pipeline import create_pipeline as corpus


def register_pipelines() -> dict[str, Pipeline]:
    corpus_pipeline = corpus()
    return {
        "corpus": corpus_pipeline,
        "__default__": corpus_pipeline,
    }
