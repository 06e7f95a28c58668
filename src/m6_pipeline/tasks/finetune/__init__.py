"""Finetuning the pretrained M6 on a downstream task (§4.2-4.6), beside the paper's baseline:
the same architecture trained from its initialisation. A task supplies `TaskExample`s
(patch features, a text prompt, a target text); this package trains, decodes and scores them."""
