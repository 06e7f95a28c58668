"""conf/cluster: the RayHook joins a Ray cluster by address (two nodes on loopback, Ray's own
`cluster_utils.Cluster`) and the corpus annotation runs across both nodes."""

import json
import subprocess
import sys
import textwrap

import yaml

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from types import SimpleNamespace

    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        from m6_pipeline.hooks import RayHook
        from m6_pipeline.corpus import text_pipeline
        from m6_pipeline.corpus.config import CorpusConfig

        conf = json.loads(sys.argv[3])
        conf["address"] = cluster.address  # conf/cluster/ray.yml, pointed at this test's cluster
        conf.pop("auth_mode", None)  # cluster_utils starts its nodes with Ray's default auth
        context = SimpleNamespace(config_loader={"ray": conf})
        RayHook().after_context_created(context)
        raw = Path(sys.argv[1])
        (raw / "text" / "forum").mkdir(parents=True)
        lines = [json.dumps({"text": f"第{i}条论坛讨论的内容，大家都说得很有道理，值得一看。"}, ensure_ascii=False)
                 for i in range(200)] + ["not json"]
        (raw / "text" / "forum" / "a.jsonl").write_text("\\n".join(lines) + "\\n", encoding="utf-8")
        cfg = CorpusConfig(raw_dir=raw, num_workers=2, perplexity={"enabled": False},
                           text_rules={"lexicon_path": sys.argv[2]})
        rows = text_pipeline.annotate_text(raw, cfg, None).select_columns(["reason"]).take_all()
        print(json.dumps({"nodes": len([n for n in ray.nodes() if n["Alive"]]), "rows": len(rows),
                          "bad": sum(r["reason"] == "unparseable_json" for r in rows)}))
    finally:
        ray.shutdown()
        cluster.shutdown()
""")


def test_corpus_annotation_runs_on_a_cluster_joined_by_address(tmp_path):
    conf = yaml.safe_load((ROOT / "conf/cluster/ray.yml").read_text())
    assert conf["address"]  # the cluster environment names an address to join
    script = tmp_path / "join.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "raw"), str(ROOT / "conf/base/lexicons/spam_lexicon.txt"),
         json.dumps(conf)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"nodes": 2, "rows": 201, "bad": 1}
