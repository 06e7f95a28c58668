"""Where a stage reads and writes at scale: a local path or a URI (`s3://bucket/prefix`,
`gs://bucket/prefix`, `hdfs://...`), as one pyarrow filesystem and a path on it.

The nodes of a cluster share no disk, so whatever more than one process must see (Ray Train's
checkpoints, the token shards every worker reads, an exported model) lives at a URI; a local path
keeps working unchanged on one machine. Credentials never come from the repository: S3 reads the
standard AWS environment (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, or
a profile in ~/.aws), and an S3-compatible server (MinIO, moto, Ceph) is named by the AWS SDKs'
own `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, which pyarrow itself does not read.

A `Location` is a small value (filesystem, path, uri): it pickles as its URI, so a Ray worker
rebuilds the filesystem from its own environment rather than receiving credentials.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def is_uri(target: str | Path) -> bool:
    """Whether `target` names a filesystem by scheme (s3://...) rather than a local path."""
    return isinstance(target, str) and "://" in target and not target.startswith("file://")


def s3_filesystem() -> pafs.S3FileSystem:
    """S3 as the standard AWS environment describes it (endpoint and region included)."""
    endpoint = next((os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), None)
    region = next((os.environ[v] for v in REGION_VARIABLES if os.environ.get(v)), None)
    options: dict = {}
    if endpoint:
        options["endpoint_override"] = endpoint
        options["scheme"] = "https" if endpoint.startswith("https://") else "http"
        options["force_virtual_addressing"] = False  # path-style: what S3-compatible servers serve
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


@dataclass(frozen=True)
class Location:
    """A directory or file on some filesystem. `uri` is what the user wrote, made absolute
    (local) or kept (URI); `path` is the filesystem's own path (no scheme)."""

    uri: str
    filesystem: pafs.FileSystem = field(compare=False, repr=False)
    path: str = field(compare=False)

    def __reduce__(self):
        return location, (self.uri,)

    def __str__(self) -> str:
        return self.uri

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    def __truediv__(self, name: str) -> Location:
        name = str(name).strip("/")
        return Location(f"{self.uri.rstrip('/')}/{name}", self.filesystem, f"{self.path.rstrip('/')}/{name}")

    def at(self, path: str) -> Location:
        """Another path on the same filesystem (as Ray hands back a checkpoint's path)."""
        path = path.rstrip("/")
        uri = path if self.is_local else f"{self.uri.split('://', 1)[0]}://{path}"
        return Location(uri, self.filesystem, path)

    def relative_to(self, other: Location) -> str:
        """This location's path below `other` (`text/train-00000.parquet`)."""
        prefix = other.path.rstrip("/") + "/"
        if not self.path.startswith(prefix):
            raise ValueError(f"{self.uri} is not inside {other.uri}")
        return self.path[len(prefix):]

    def local_path(self) -> Path:
        """The path on this machine; only for a local location."""
        if not self.is_local:
            raise ValueError(f"{self.uri} is not on this machine's disk; read it through its filesystem")
        return Path(self.path)

    # -- questions --------------------------------------------------------------------------------
    def _info(self) -> pafs.FileInfo:
        return self.filesystem.get_file_info(self.path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def size(self) -> int:
        return self._info().size

    def mtime_ns(self) -> int | None:
        """When this file was last written (an object store's last-modified), if known."""
        return self._info().mtime_ns

    def _entries(self) -> list[tuple[Location, bool]]:
        """(entry, is a directory) directly inside this directory, by name; none if it is a file
        or does not exist."""
        if not self.is_dir():
            return []
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=False)
        infos = sorted(self.filesystem.get_file_info(selector), key=lambda info: info.path)
        return [(self / posixpath.basename(info.path.rstrip("/")), info.type == pafs.FileType.Directory)
                for info in infos]

    def children(self) -> list[Location]:
        """The entries directly inside this directory, sorted by name; none if it is a file or
        does not exist."""
        return [entry for entry, _ in self._entries()]

    def glob(self, pattern: str) -> list[Location]:
        """Entries matching `pattern`, one path segment per `/` (`*/*.parquet`), sorted; as
        `Path.glob`, only directories are looked into."""
        parts = pattern.strip("/").split("/")
        found = [self]
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            found = [entry for parent in found for entry, is_dir in parent._entries()
                     if fnmatch.fnmatchcase(entry.name, part) and (last or is_dir)]
        return sorted(found, key=lambda loc: loc.path)

    # -- reading and writing ----------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        with self.filesystem.open_input_stream(self.path) as stream:
            return stream.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def write_bytes(self, data: bytes) -> None:
        self.parent().mkdir()
        with self.filesystem.open_output_stream(self.path) as stream:
            stream.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def open_input_file(self):
        """A seekable file (Parquet footers and row groups read without the whole file)."""
        return self.filesystem.open_input_file(self.path)

    def parent(self) -> Location:
        uri_parent, path_parent = self.uri.rstrip("/").rsplit("/", 1)[0], posixpath.dirname(self.path.rstrip("/"))
        return Location(uri_parent, self.filesystem, path_parent)

    def mkdir(self) -> None:
        self.filesystem.create_dir(self.path, recursive=True)

    def delete(self) -> None:
        """Remove this file or directory tree (nothing if it is not there)."""
        info = self._info()
        if info.type == pafs.FileType.Directory:
            self.filesystem.delete_dir(self.path)
        elif info.type == pafs.FileType.File:
            self.filesystem.delete_file(self.path)

    def upload_from(self, source: Path) -> None:
        """Copy a local file or directory tree here (replacing files of the same names)."""
        source = Path(source)
        if source.is_dir():
            self.mkdir()
        pafs.copy_files(str(source), self.path, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.filesystem)

    def download_to(self, target: Path) -> Path:
        """Copy this file or directory tree to a local path; returns it."""
        target = Path(target)
        if self.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(self.path, str(target), source_filesystem=self.filesystem,
                        destination_filesystem=pafs.LocalFileSystem())
        return target


def location(target: str | Path | Location) -> Location:
    """A local path (made absolute) or a URI as a `Location`. S3 URIs take the endpoint and
    region of the environment (`s3_filesystem`); other schemes are pyarrow's `from_uri`."""
    if isinstance(target, Location):
        return target
    if not is_uri(target):
        text = str(target)
        local = Path(text.removeprefix("file://")).expanduser().resolve()
        return Location(str(local), pafs.LocalFileSystem(), str(local))
    scheme, _, rest = str(target).partition("://")
    if scheme in ("s3", "s3a"):
        if not rest.strip("/"):
            raise ValueError(f"{target} names no bucket; write s3://BUCKET/PREFIX")
        return Location(f"s3://{rest.rstrip('/')}", s3_filesystem(), rest.rstrip("/"))
    try:
        filesystem, path = pafs.FileSystem.from_uri(str(target))
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"cannot open {target}: {error}; use a local path, s3://, gs:// or hdfs://") from error
    return Location(str(target).rstrip("/"), filesystem, path.rstrip("/"))
