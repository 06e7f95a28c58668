"""The `features` pipeline (§3.1): every clean pair's image resized, cut into a grid of patches
and each patch embedded by a trained extractor, lined up row-major; plus the report."""

from kedro.pipeline import Node, Pipeline

from pipelines.features import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.parse_config,
                "params:features",
                "features_config",
                name="parse_features_config",
            ),
            Node(
                nodes.train_patch_extractor,
                # the suite's result gates the pairs it reads (every node that reads them takes
                # it); the report orders training after the corpus accounts
                ["features_config", "clean_pairs_validation", "corpus_report"],
                ["patch_extractor", "patch_extractor_training"],
                name="train_patch_extractor",
            ),
            Node(
                nodes.extract_patch_features,
                ["features_config", "clean_pairs_validation", "patch_extractor"],
                "patch_features_manifest",
                name="extract_patch_features",
            ),
            Node(
                nodes.build_features_report,
                [
                    "features_config",
                    "clean_pairs_validation",
                    "patch_extractor",
                    "patch_extractor_training",
                    "patch_features_manifest",
                ],
                ["features_report", "features_figure"],
                name="build_features_report",
            ),
        ],
        tags="features",  # the tag names the stage in run records (run_times.py)
    )
