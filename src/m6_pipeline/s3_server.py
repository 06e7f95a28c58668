"""An S3-compatible server on 127.0.0.1 for the tests, and for trying the cluster path without a
cloud: moto's standalone server in a child process, with the AWS environment that points the
project (and boto3, DVC, the AWS CLI) at it.

    python -m m6_pipeline.s3_server --port 5055 --bucket m6-runs
    # prints the `export AWS_...` lines to paste into the shells of the driver and every node

moto keeps its objects in memory: what it holds is gone when it stops. It is a test double of
S3, not storage.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# moto accepts any key pair; these name themselves as fake in logs and shell histories
FAKE_KEY, FAKE_SECRET, REGION = "m6-local-key", "m6-local-secret", "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    process: subprocess.Popen

    def environment(self) -> dict[str, str]:
        """The variables every process that reads or writes the bucket needs."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": FAKE_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        }

    def create_bucket(self, name: str) -> str:
        """Create `name` (bucket names are 3-63 lowercase letters, digits, dots and hyphens);
        returns its URI."""
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
        return f"s3://{name}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(endpoint: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the moto server exited with status {process.returncode}; is moto[server] installed?")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the moto server did not answer on {endpoint} within {timeout_s:.0f} s")


@contextmanager
def s3_server(port: int | None = None, timeout_s: float = 60.0) -> Iterator[S3Server]:
    """A moto server on 127.0.0.1 for the block; stopped (and its objects gone) after it."""
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_serving(endpoint, process, timeout_s)
        yield S3Server(endpoint, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--bucket", action="append", default=[], help="create this bucket (repeatable)")
    args = parser.parse_args(argv)
    with s3_server(args.port) as server:
        for bucket in args.bucket:
            server.create_bucket(bucket)
        for name, value in server.environment().items():
            print(f"export {name}={value}")
        print(f"# serving on {server.endpoint}; Ctrl-C stops it (and forgets every object)", flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
