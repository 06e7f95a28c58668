"""The Ray Data settings every stage of this project runs with (driver side, once per process).

- `preserve_order`: outputs in input order, so the same inputs give the same files for DVC.
- Operator resource reservation off: Ray Data otherwise reserves a share of the CPUs for each
  operator of a plan, and on a 2-CPU machine the fused read-clean-write operator of the corpus
  stage then ran one task at a time for its first second, with ~0.2 s gaps between tasks
  (per-task traces, 2026-12-02: annotating the 218k documents of `benchmarks/corpus_cleaning.py`
  took 4.2 s with it and 3.3 s without). The global object-store budget still back-pressures,
  so memory stays bounded (`benchmarks/corpus_memory.py`).
"""

from __future__ import annotations


def configure_data_context(*, progress_bars: bool, reserve_per_operator: bool = False) -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = progress_bars
    ctx.op_resource_reservation_enabled = reserve_per_operator
