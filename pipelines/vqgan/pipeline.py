"""The `vqgan` pipeline (§4.1, first stage): train the VQGAN on the clean pair images, encode
every pair image to a code sequence, report reconstructions and codebook health."""

from kedro.pipeline import Node, Pipeline

from pipelines.vqgan import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(nodes.parse_job, "params:vqgan", "vqgan_job", name="parse_vqgan_job"),
        # every node that reads the pairs takes the suite's result, which gates them; the corpus
        # report orders training after the corpus accounts
        Node(nodes.train_vqgan, ["vqgan_job", "clean_pairs_validation", "corpus_report"],
             ["vqgan_card", "vqgan_training"], name="train_vqgan"),
        Node(nodes.encode_pair_images, ["vqgan_job", "clean_pairs_validation", "vqgan_card"], "image_codes_manifest",
             name="encode_pair_images"),
        Node(nodes.report_vqgan,
             ["vqgan_job", "clean_pairs_validation", "vqgan_card", "vqgan_training", "image_codes_manifest"],
             ["vqgan_metrics", "vqgan_reconstructions", "vqgan_curves"], name="report_vqgan"),
    ], tags="vqgan")  # the tag names the stage in run records (run_times.py)
