"""The `finetune_t2i` pipeline (§4.1, second stage): the pretrained M6 (dense by default; any
exported M6 via `finetune_t2i.pretrained_dir`) learns to write VQGAN codes after Chinese text;
generated images are judged by an attribute classifier trained on real images, and those of the
first held-out prompts are kept (t2i_predictions, t2i_images) for the human evaluation."""

from kedro.pipeline import Node, Pipeline

from pipelines.finetune_t2i import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(nodes.parse_job, ["params:finetune_t2i", "pretrain_base.model_card", "image_codes_manifest"],
             "t2i_job", name="parse_t2i_job"),
        Node(nodes.finetune, ["t2i_job", "tokenizer", "image_codes_manifest"], ["t2i_card", "t2i_training"],
             name="finetune_t2i"),
        # the two nodes that read images from the clean pairs take their suite's result (gate.py)
        Node(nodes.train_attribute_classifier,
             ["t2i_job", "tokenizer", "image_codes_manifest", "vqgan_card", "clean_pairs_validation"],
             ["attribute_classifier", "attribute_classifier_record"], name="train_attribute_classifier"),
        Node(nodes.evaluate,
             ["t2i_job", "tokenizer", "image_codes_manifest", "vqgan_card", "clean_pairs_validation", "t2i_card",
              "attribute_classifier", "t2i_training"],
             ["t2i_metrics", "t2i_grid", "t2i_curve", "t2i_predictions", "t2i_images"], name="evaluate_t2i"),
    ], tags="finetune_t2i")  # the tag names the stage in run records (run_times.py)
