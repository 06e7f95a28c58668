"""Kedro wiring: one module per pipeline; the nodes call into the `m6_pipeline` library."""
