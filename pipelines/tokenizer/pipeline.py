"""The `tokenizer` pipeline (§3.1): a WordPiece vocabulary with one token per Chinese character,
trained by streaming the clean text and pair texts; the report measures it on held-out text."""

from kedro.pipeline import Node, Pipeline

from pipelines.tokenizer import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.parse_config,
                "params:tokenizer",
                "tokenizer_config",
                name="parse_tokenizer_config",
            ),
            Node(
                nodes.train_tokenizer,
                # the suites' results gate the corpus it reads (every node that reads it takes
                # them); the report orders training after the corpus accounts
                [
                    "tokenizer_config",
                    "clean_text_validation",
                    "clean_pairs_validation",
                    "corpus_report",
                ],
                ["tokenizer", "tokenizer_training"],
                name="train_tokenizer",
            ),
            Node(
                nodes.build_tokenizer_report,
                [
                    "tokenizer_config",
                    "clean_text_validation",
                    "clean_pairs_validation",
                    "tokenizer",
                    "tokenizer_training",
                ],
                "tokenizer_report",
                name="build_tokenizer_report",
            ),
        ],
        tags="tokenizer",  # the tag names the stage in run records (run_times.py)
    )
