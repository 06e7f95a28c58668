"""The corpus stage on a 2-node loopback Ray cluster (conf/cluster: code shipped, versions checked)
writing its Ray datasets (annotated, clean, quarantine) to a bucket: Ray Data's write tasks put
the files there, the renames happen there, the suites validate them there, and the report still
balances every record. The raw input is read from the driver's disk (both nodes see it on
loopback; on a real cluster the raw folder must be on storage every node reads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from m6_pipeline.storage import location
from tests.conftest import ROOT

pytestmark = pytest.mark.cluster

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import ray
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from pipelines.corpus.pipeline import create_pipeline
    from pipelines.datasets import ArrowBatchesDataset, RayParquetDataset
    from tests.cluster.loopback import joined_cluster
    from tests.pipelines.test_corpus_pipeline import small_params

    bucket, raw, conf, project = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
    with joined_cluster(conf, project):
        ray_sets = {
            "text_annotated@ray": ("intermediate/text_annotated", "text"),
            "pairs_annotated@ray": ("intermediate/pairs_annotated", "pairs"),
            "clean_text": ("primary/text", "text"), "clean_pairs": ("primary/pairs", "pairs"),
            "text_quarantine": ("primary/quarantine", "text"), "pairs_quarantine": ("primary/quarantine", "pairs"),
        }
        datasets = {name: RayParquetDataset(f"{bucket}/corpus/{path}", prefix) for name, (path, prefix) in ray_sets.items()}
        datasets["text_annotated@keys"] = ArrowBatchesDataset(f"{bucket}/corpus/intermediate/text_annotated", "text",
                                                              columns=["order", "id", "exact_hash", "minhash", "reason"])
        datasets["pairs_annotated@keys"] = ArrowBatchesDataset(f"{bucket}/corpus/intermediate/pairs_annotated", "pairs",
                                                               columns=["order", "id", "phash", "reason"])
        datasets["params:corpus"] = MemoryDataset(small_params(raw))
        outputs = SequentialRunner().run(create_pipeline(), DataCatalog(datasets=datasets))
        report = outputs["corpus_report"]
        report = report.load() if hasattr(report, "load") else report
        print("RESULT " + json.dumps({"report": report, "nodes": len([n for n in ray.nodes() if n["Alive"]])}))
""")


def test_the_corpus_stage_writes_its_datasets_to_the_bucket(bucket, tmp_path):
    driver = tmp_path / "driver"
    driver.mkdir()
    (driver / "corpus.py").write_text(SCRIPT)
    conf = yaml.safe_load((ROOT / "conf/cluster/ray.yml").read_text())
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, "corpus.py", bucket, str(tmp_path / "raw"), json.dumps(conf), str(ROOT)],
                          capture_output=True, text=True, timeout=600, cwd=driver, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["nodes"] == 2

    sources = out["report"]["sources"]
    for name, entry in sources.items():  # every record kept or quarantined with its reason
        assert entry["input"] == entry["kept"] + sum(entry["dropped"].values()), name
    assert sum(e["kept"] for e in sources.values()) > 0

    corpus = location(f"{bucket}/corpus")
    text = [f.name for f in (corpus / "primary/text").glob("*.parquet")]
    pairs = [f.name for f in (corpus / "primary/pairs").glob("*.parquet")]
    quarantine = [f.name for f in (corpus / "primary/quarantine").glob("*.parquet")]
    assert text and text == [f"text-{i:05d}.parquet" for i in range(len(text))]  # stable names, in order
    assert pairs and pairs == [f"pairs-{i:05d}.parquet" for i in range(len(pairs))]
    assert {n.split("-")[0] for n in quarantine} == {"text", "pairs"}  # two datasets share the directory
    assert not [f for f in corpus.glob("*/.*staging*")] and not [f for f in corpus.glob("*/*/.*")]
    assert [p for p in tmp_path.rglob("*.parquet") if "raw" not in p.parts] == []  # none on the local disk
