"""The `evaluate` pipeline: the downstream tasks' metrics as one report with the paper's
tables beside ours, blind human-evaluation batches for the app, annotations read back."""

from kedro.pipeline import Node, Pipeline

from pipelines.evaluate import nodes

METRICS = ["finetune_vqa.task_metrics", "finetune_caption.task_metrics", "finetune_itm.task_metrics",
           "qa.task_metrics", "poem.task_metrics"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(nodes.export_batch,
             ["params:evaluate", "finetune_vqa.predictions", "finetune_caption.predictions", "qa.predictions",
              "poem.predictions", "t2i_predictions", "t2i_images", "clean_pairs_validation"],
             ["human_eval_items", "human_eval_key", "human_eval_manifest", "human_eval_images"],
             name="export_human_batch"),
        Node(nodes.read_annotations, ["params:evaluate", "human_eval_key"], "human_eval_results",
             name="read_annotations"),
        Node(nodes.report, [*METRICS, "t2i_metrics", "human_eval_results"], ["evaluation_metrics", "evaluation_report"],
             name="evaluation_report"),
    ], tags="evaluate")  # the tag names the stage in run records (run_times.py)
