"""Resident memory of the driver and every process it started, sampled in a background thread.

The driver alone is the wrong figure: with a local Ray the training happens in Ray workers, which
are the driver's grandchildren (driver -> raylet -> workers). So a sample is the RSS of the driver
plus all its descendants. Pages mapped by several processes (Ray's object store in /dev/shm, the
torch libraries) count once per process, so the sum is an upper bound on physical memory. Workers
of a Ray cluster joined by address are not descendants and are not counted.

A sample lists the process tree and reads each process's RSS: about 3 ms with ~100 processes on
the machine, so sampling every 0.5 s costs under 1 % of one core.
"""

from __future__ import annotations

import resource
import sys
import threading
from collections.abc import Hashable

import psutil

MIB = 2**20


def tree_rss_bytes(root: psutil.Process | None = None) -> int:
    """RSS of `root` (default: this process) plus all its descendants, in bytes."""
    root = root or psutil.Process()
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # a worker that exited since the listing
            continue
    return total


def driver_maxrss_mib() -> float:
    """This process's peak RSS over its lifetime so far (getrusage ru_maxrss), in MiB."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / MIB if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB on Linux


class TreeRssSampler:
    """The peak tree RSS (`tree_rss_bytes`) over each open span, sampled every `interval_s`
    seconds by one daemon thread that sleeps while no span is open. Spans may overlap (a threaded
    runner): each sample raises the peak of every open span. A span is sampled when it opens and
    when it closes too, so even a span shorter than the interval has a peak."""

    def __init__(self, interval_s: float = 0.5):
        if interval_s <= 0:
            raise ValueError(f"TreeRssSampler: interval_s={interval_s}; give a positive number of seconds "
                             "(0.5 is a good default)")
        self.interval_s = interval_s
        self._process = psutil.Process()
        self._peaks: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self._some_open = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, key: Hashable) -> None:
        """Start tracking the peak for `key` (a node name)."""
        with self._lock:
            self._peaks[key] = 0
            self._some_open.set()
        if self._thread is None or not self._thread.is_alive():
            self._stopped.clear()
            self._thread = threading.Thread(target=self._loop, name="tree-rss-sampler", daemon=True)
            self._thread.start()
        self._sample()

    def close(self, key: Hashable) -> int:
        """Stop tracking `key`; its peak tree RSS in bytes (0 if it was never opened)."""
        self._sample()
        with self._lock:
            peak = self._peaks.pop(key, 0)
            if not self._peaks:
                self._some_open.clear()
        return peak

    def stop(self) -> None:
        """End the sampling thread (open spans keep the peaks they have; `close` still works)."""
        self._stopped.set()
        self._some_open.set()  # wake the thread so it sees the stop
        if self._thread is not None:
            self._thread.join(timeout=5 * self.interval_s)
            self._thread = None

    def _sample(self) -> None:
        rss = tree_rss_bytes(self._process)
        with self._lock:
            for key, peak in self._peaks.items():
                if rss > peak:
                    self._peaks[key] = rss

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._some_open.wait()
            if self._stopped.is_set():
                return
            self._sample()
            self._stopped.wait(self.interval_s)
