"""An S3-compatible server on 127.0.0.1 (moto, m6_pipeline.s3_server) for the tests of the
scale-out path: started once a module, with a fresh bucket and the AWS environment per test."""

from __future__ import annotations

import uuid

import pytest

from m6_pipeline.s3_server import s3_server


@pytest.fixture(scope="module")
def s3_endpoint():
    with s3_server() as server:
        yield server


@pytest.fixture
def bucket(s3_endpoint, monkeypatch) -> str:
    """A new, empty bucket's URI, with this process's environment pointed at the server."""
    for name, value in s3_endpoint.environment().items():
        monkeypatch.setenv(name, value)
    return s3_endpoint.create_bucket(f"m6-{uuid.uuid4().hex[:12]}")
