"""The applications of §4: each task's data, finetuning or prompting, decoding and metrics."""
