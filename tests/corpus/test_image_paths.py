"""Image references resolve only to files inside the raw directory; one test per kind of bad
reference (remote, absolute, `..` escape, symlink out, missing, %-encoded)."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import socket
from pathlib import Path

import pytest

from m6_pipeline.corpus.image_paths import RejectedReference, resolve_image_reference
from m6_pipeline.corpus.reasons import Reason


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """raw/pairs/shop/{img.png, 产品 图.png, sub/}, and a secret file outside raw."""
    root = tmp_path / "raw"
    (root / "pairs/shop/sub").mkdir(parents=True)
    (root / "pairs/shop/img.png").write_bytes(b"png")
    (root / "pairs/shop/产品 图.png").write_bytes(b"png")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret.png").write_bytes(b"secret")
    return root


def _resolve(ref: str, raw: Path) -> Path:
    return resolve_image_reference(ref, raw / "pairs/shop", raw)


def _rejected(ref: str, raw: Path) -> RejectedReference:
    with pytest.raises(RejectedReference) as info:
        _resolve(ref, raw)
    return info.value


def test_plain_relative_reference_resolves_to_the_real_file(raw: Path):
    assert _resolve("img.png", raw) == (raw / "pairs/shop/img.png").resolve()
    assert _resolve("./sub/../img.png", raw) == (raw / "pairs/shop/img.png").resolve()


@pytest.mark.parametrize("ref", [
    "http://cdn.example.com/a.png", "https://cdn.example.com/a.png", "HTTPS://CDN.EXAMPLE.COM/A.PNG",
    "//cdn.example.com/a.png", "\\\\cdn.example.com\\a.png", "ftp://files.example.com/a.png",
    "data:image/png;base64,iVBORw0KGgo=", "  https://cdn.example.com/padded.png  ",
])
def test_remote_references_are_never_fetched(raw: Path, ref: str, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"network access while resolving {ref!r}")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    rejected = _rejected(ref, raw)
    assert rejected.reason is Reason.REMOTE_URL_NOT_FETCHED
    assert "not fetched" in rejected.detail


@pytest.mark.parametrize("ref", ["/etc/passwd", "C:/Windows/win.ini", "C:\\Windows\\win.ini", "c:img.png",
                                 "file:///etc/passwd", "%2Fetc%2Fpasswd"])
def test_absolute_paths_are_outside_raw(raw: Path, ref: str):
    assert _rejected(ref, raw).reason is Reason.PATH_OUTSIDE_RAW


def test_absolute_path_is_refused_even_when_it_points_inside_raw(raw: Path):
    assert _rejected(str((raw / "pairs/shop/img.png").resolve()), raw).reason is Reason.PATH_OUTSIDE_RAW


@pytest.mark.parametrize("ref", ["../../../outside/secret.png", "sub/../../../../outside/secret.png",
                                 "%2e%2e/%2e%2e/%2e%2e/outside/secret.png", "..\\..\\..\\outside\\secret.png"])
def test_dotdot_escape_is_outside_raw(raw: Path, ref: str):
    rejected = _rejected(ref, raw)
    assert rejected.reason is Reason.PATH_OUTSIDE_RAW
    assert "'..'" in rejected.detail


def _forbid_reading(monkeypatch, target: Path) -> None:
    """Any open/read of `target` (by any name that resolves to it) fails the test."""
    target = target.resolve()

    def guard(name):
        if isinstance(name, (str, bytes, os.PathLike)) and Path(os.fsdecode(name)).resolve() == target:
            raise AssertionError(f"{target} was opened")

    real_open, real_os_open, real_io_open = builtins.open, os.open, io.open

    def checked_open(file, *args, **kwargs):
        guard(file)
        return real_open(file, *args, **kwargs)

    def checked_os_open(path, *args, **kwargs):
        guard(path)
        return real_os_open(path, *args, **kwargs)

    def checked_io_open(file, *args, **kwargs):
        guard(file)
        return real_io_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", checked_open)
    monkeypatch.setattr(io, "open", checked_io_open)
    monkeypatch.setattr(os, "open", checked_os_open)


def test_symlink_pointing_outside_is_refused_without_opening_the_target(raw: Path, monkeypatch):
    secret = raw.parent / "outside/secret.png"
    os.symlink(secret, raw / "pairs/shop/link.png")  # a file link
    os.symlink(secret.parent, raw / "pairs/shop/linkdir")  # a directory link on the way
    os.symlink(raw / "pairs/shop/link.png", raw / "pairs/shop/chain.png")  # link -> link -> out
    _forbid_reading(monkeypatch, secret)
    with pytest.raises(AssertionError, match="was opened"):  # the guard itself works
        (raw / "pairs/shop/link.png").open("rb")
    for ref in ("link.png", "linkdir/secret.png", "chain.png",
                "linkdir/../raw/pairs/shop/img.png"):  # `..` after a link follows the link's target
        rejected = _rejected(ref, raw)
        assert rejected.reason is Reason.PATH_OUTSIDE_RAW, ref
        assert "symlink" in rejected.detail


def test_symlink_inside_raw_resolves_to_its_target(raw: Path):
    os.symlink(raw / "pairs/shop/img.png", raw / "pairs/shop/alias.png")
    assert _resolve("alias.png", raw) == (raw / "pairs/shop/img.png").resolve()


def test_referrer_outside_raw_is_refused(raw: Path):
    with pytest.raises(RejectedReference) as info:
        resolve_image_reference("secret.png", raw.parent / "outside", raw)
    assert info.value.reason is Reason.PATH_OUTSIDE_RAW


@pytest.mark.parametrize("ref", ["missing.png", "sub", "", "sub/", "img.png/inside.png", "a%00b.png"])
def test_missing_files_and_non_files_are_missing(raw: Path, ref: str):
    assert _rejected(ref, raw).reason is Reason.IMAGE_MISSING


def test_percent_encoding_query_and_fragment(raw: Path):
    expected = (raw / "pairs/shop/产品 图.png").resolve()
    assert _resolve("%E4%BA%A7%E5%93%81%20%E5%9B%BE.png?w=200&h=200#zoom", raw) == expected
    assert _resolve("%B2%FA%C6%B7%20%CD%BC.png", raw) == expected  # GBK bytes escaped
    assert _resolve("img.png#%2e%2e/%2e%2e/secret", raw) == (raw / "pairs/shop/img.png").resolve()


def test_rejection_pickles_with_reason_and_detail():
    rejected = pickle.loads(pickle.dumps(RejectedReference(Reason.IMAGE_MISSING, "x.png: gone")))
    assert (rejected.reason, rejected.detail) == (Reason.IMAGE_MISSING, "x.png: gone")
