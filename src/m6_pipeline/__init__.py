"""m6-pipeline: the M6 multimodal pretrainer, from raw Chinese web corpus to evaluated models.

The library under this package is plain Python/PyTorch and imports no Kedro, Ray or Streamlit
at module level, so Ray workers, notebooks and the app can import it. Kedro wiring lives in the
top-level `pipelines/` package.
"""

__version__ = "0.1.0"

import os

# Nothing is downloaded at run time. ColossalAI imports bitsandbytes, which asks the Hugging
# Face hub for CPU kernels unless the hub is offline; set here (not only in the Makefile) so a
# bare `kedro run` and every Ray worker, which imports this package first, stay offline too.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
