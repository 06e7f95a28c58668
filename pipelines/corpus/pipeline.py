"""The `corpus` pipeline (§2.3): raw text, image-text pairs and crawled pages -> clean corpus,
quarantine with reasons, validation suites and the corpus report."""

from kedro.pipeline import Node, Pipeline

from pipelines.corpus import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(nodes.parse_config, "params:corpus", "corpus_config", name="parse_corpus_config"),
        Node(nodes.write_embedded_sources, "corpus_config", "raw_sources", name="write_embedded_sources"),
        # text: LM on a clean reference part, one annotation pass, global dedup, routing
        Node(nodes.train_perplexity_lm, ["corpus_config", "raw_sources"], "corpus_lm",
             name="train_perplexity_lm"),
        Node(nodes.annotate_text, ["corpus_config", "raw_sources", "corpus_lm"], "text_annotated@ray",
             name="annotate_text"),
        Node(nodes.find_text_duplicates, ["corpus_config", "text_annotated@keys"], "text_duplicates",
             name="find_text_duplicates"),
        Node(nodes.route_text, ["text_annotated@ray", "text_duplicates"], ["clean_text", "text_quarantine"],
             name="route_text"),
        # image-text pairs: catalogue records and webpage images with their surrounding text
        Node(nodes.annotate_pairs, ["corpus_config", "raw_sources"], "pairs_annotated@ray",
             name="annotate_pairs"),
        Node(nodes.find_image_duplicates, ["corpus_config", "pairs_annotated@keys"], "pair_duplicates",
             name="find_image_duplicates"),
        Node(nodes.route_pairs, ["pairs_annotated@ray", "pair_duplicates"], ["clean_pairs", "pairs_quarantine"],
             name="route_pairs"),
        # Great Expectations suites: a failure stops the run before the report is written
        Node(nodes.validate_clean_text, ["corpus_config", "clean_text"], "clean_text_validation",
             name="validate_clean_text"),
        Node(nodes.validate_clean_pairs, ["corpus_config", "clean_pairs"], "clean_pairs_validation",
             name="validate_clean_pairs"),
        Node(nodes.validate_quarantine, ["text_quarantine", "pairs_quarantine"], "quarantine_validation",
             name="validate_quarantine"),
        Node(nodes.build_corpus_report,
             ["corpus_config", "text_annotated@ray", "clean_text", "text_quarantine", "pairs_annotated@ray",
              "clean_pairs", "pairs_quarantine", "clean_text_validation", "clean_pairs_validation",
              "quarantine_validation"],
             ["corpus_report", "corpus_table1", "corpus_figure"], name="build_corpus_report"),
    ], tags="corpus")  # the tag names the stage in run records (run_times.py)
