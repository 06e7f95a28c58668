"""The `features` pipeline: a patch extractor and the patch features of every clean pair."""
