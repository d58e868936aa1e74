"""The playground's one third-party asset: the official `socket.io-client` browser bundle.

It is not copied into the repository. `python -m server.web.assets` (run by `.ci/run`, and by
`promptrelay serve` when the file is missing) downloads the pinned tarball from the npm
registry, checks it against the pinned `dist.integrity` (sha512, as `npm install` does) and
extracts `dist/socket.io.min.js` into server/web/vendor/ (gitignored), which the server
serves. Offline, serve goes on and the page says how to get the file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "4.8.4"  # npm view socket.io-client@4 dist
TARBALL_URL = f"https://registry.npmjs.org/socket.io-client/-/socket.io-client-{VERSION}.tgz"
INTEGRITY = (
    "sha512-7wjKAvVXYOJsbmUgkWbnhPD4bFpkqrUR0++XOjpGFmqDqsqV1CI93VTraeExLxpjxEqrWgFoS"
    "RZu1ihjLWfkAA=="
)
MEMBER = "package/dist/socket.io.min.js"
VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
BUNDLE = VENDOR_DIR / "socket.io.min.js"
INSTALL_HINT = "python -m server.web.assets"


class AssetError(Exception):
    """The bundle could not be fetched or did not match its pinned integrity."""


def integrity_of(data: bytes) -> str:
    """Subresource-integrity string (`sha512-<base64>`) of `data`."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def extract_bundle(tarball: bytes, expected: str = INTEGRITY) -> bytes:
    """The minified bundle out of a verified npm tarball."""
    if integrity_of(tarball) != expected:
        raise AssetError("socket.io-client tarball does not match its pinned integrity")
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise AssetError(f"{MEMBER} missing from the tarball")
        return member.read()


def install(target: Path = BUNDLE, url: str = TARBALL_URL, timeout_s: float = 30.0) -> Path:
    """Download, verify and write the bundle (atomically) unless it is already there."""
    if target.exists():
        return target
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            tarball = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise AssetError(f"cannot download socket.io-client {VERSION}: {exc}") from exc
    bundle = extract_bundle(tarball)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(bundle)
    partial.replace(target)
    return target


def ensure_installed() -> str | None:
    """Install when missing; a message for the operator when that failed, else None."""
    try:
        install()
    except AssetError as exc:
        return f"playground: {exc}; the page will say so (retry with: {INSTALL_HINT})"
    return None


def main() -> int:
    try:
        path = install()
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"socket.io-client {VERSION}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
