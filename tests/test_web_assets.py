"""The socket.io-client installer: only a tarball matching the pinned integrity is used."""

from __future__ import annotations

import io
import socket
import tarfile
from pathlib import Path

import pytest

from server.web.assets import MEMBER, AssetError, extract_bundle, install, integrity_of


def tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_bundle_is_extracted_from_a_matching_tarball() -> None:
    data = tarball({MEMBER: b"window.io = 1;", "package/package.json": b"{}"})
    assert extract_bundle(data, integrity_of(data)) == b"window.io = 1;"


def test_tampered_tarball_is_refused() -> None:
    data = tarball({MEMBER: b"window.io = 1;"})
    with pytest.raises(AssetError, match="integrity"):
        extract_bundle(data + b"x", integrity_of(data))


def test_tampered_download_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "evil.tgz"
    source.write_bytes(tarball({MEMBER: b"alert(1)"}))
    target = tmp_path / "vendor" / "socket.io.min.js"
    with pytest.raises(AssetError, match="integrity"):
        install(target, url=source.as_uri())
    assert not target.exists()


def test_unreachable_registry_is_an_asset_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = tmp_path / "socket.io.min.js"
    with pytest.raises(AssetError, match="cannot download"):
        install(target, url=f"http://127.0.0.1:{port}/x.tgz", timeout_s=5)
    assert not target.exists()
