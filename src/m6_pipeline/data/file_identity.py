"""Which version of its input files a resumable training run was made from.

A checkpoint records the identity of the files its run read (the pretrained weights, the patch
features, the image codes, the clean pairs); a re-run whose inputs were rewritten since starts
over instead of resuming a model trained on other inputs. The identity is each file's name,
size and modification time (one `stat` a file at any scale): any rewrite counts as new, so a
re-run after an upstream stage ran again retrains even if the bytes came out the same, and never
resumes from stale weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def files_identity(files: Iterable[str | Path]) -> str:
    """sha256 of the sorted `name<TAB>size<TAB>mtime_ns` lines of `files`; a missing file is
    an error naming it (a run cannot have read it)."""
    entries = []
    for path in map(Path, files):
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: an input of this run is missing; run the stage that writes it") from None
        entries.append(f"{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}")
    if not entries:
        raise ValueError("no input files to identify: the upstream stage wrote nothing")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def model_identity(model_dir: str | Path) -> str:
    """The identity of an exported M6's weights (single file or expert shards)."""
    from m6_pipeline.model.pretrained import weight_files, weights_path

    return files_identity(weight_files(weights_path(Path(model_dir))))
