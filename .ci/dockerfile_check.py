"""Check that the Dockerfile's build stage copies everything the wheel is built from.

The sources come from pyproject.toml: each package of `[tool.setuptools] packages` (through
`package-dir`), each `package-data` directory, the readme and the license files. Every one
must lie under the destination of a `COPY` (from the build context, not `--from=`) in the
stage that runs `pip install .`. No Docker daemon needed.

    python .ci/dockerfile_check.py [Dockerfile] [pyproject.toml]

Exits 1 naming each missing source.
"""

from __future__ import annotations

import fnmatch
import shlex
import sys
import tomllib
from pathlib import Path, PurePosixPath


def logical_lines(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


def build_stage_copies(text: str, context: Path) -> list[tuple[str, str]]:
    """(source, where it lands) of each context COPY/ADD in the stage that runs
    `pip install`, both relative (to the build context, and to the stage's WORKDIR)."""
    stages: list[list[str]] = []
    for line in logical_lines(text):
        keyword = line.split(None, 1)[0].upper()
        if keyword == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append(line)
    build = next((s for s in stages if any("pip install" in line for line in s)), None)
    if build is None:
        raise SystemExit("Dockerfile: no stage runs `pip install`")
    workdir = PurePosixPath("/")
    copies: list[tuple[str, str]] = []
    for line in build:
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "WORKDIR":
            workdir = workdir / rest.strip()
        if keyword.upper() not in ("COPY", "ADD"):
            continue
        words = shlex.split(rest)
        if any(w.startswith("--from") for w in words):
            continue  # from another stage, not from the context
        *sources, dest = [w for w in words if not w.startswith("--")]
        into_dir = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
        for source in sources:
            # Docker copies a directory's contents to the destination, and a file into
            # the destination directory (under its own name) when the destination is one.
            is_dir = (context / source).is_dir()
            landed = workdir / dest
            if into_dir and not is_dir:
                landed = landed / PurePosixPath(source).name
            copies.append((str(PurePosixPath(source)), str(landed.relative_to(workdir))))
    return copies


def required_sources(pyproject: dict[str, object]) -> list[str]:
    """The paths (relative to the project root) the wheel is built from."""
    project = pyproject["project"]
    tool = pyproject["tool"]
    assert isinstance(project, dict) and isinstance(tool, dict)
    setuptools = tool["setuptools"]
    needed: list[str] = ["pyproject.toml"]
    readme = project.get("readme")
    if isinstance(readme, str):
        needed.append(readme)
    needed += list(project.get("license-files", []))
    package_dir: dict[str, str] = setuptools.get("package-dir", {})

    def directory(package: str) -> str:
        for prefix in sorted(package_dir, key=len, reverse=True):
            if package == prefix or package.startswith(prefix + "."):
                tail = package[len(prefix) :].lstrip(".").replace(".", "/")
                return str(PurePosixPath(package_dir[prefix]) / tail)
        return package.replace(".", "/")

    needed += [directory(p) for p in setuptools.get("packages", [])]
    needed += [directory(p) for p in setuptools.get("package-data", {})]
    return sorted(set(needed))


def missing(dockerfile: str, pyproject: dict[str, object], context: Path) -> list[str]:
    """Sources of the wheel that no COPY of the build stage brings to the same place."""
    copies = [
        (PurePosixPath(src), PurePosixPath(dest))
        for src, dest in build_stage_copies(dockerfile, context)
    ]
    out = []
    for source in required_sources(pyproject):
        path = PurePosixPath(source)
        if not any(src == dest and (path == src or src in path.parents) for src, dest in copies):
            out.append(source)
    return out


def ignored(sources: list[str], context: Path) -> list[str]:
    """Sources of the wheel that `.dockerignore` keeps out of the build context."""
    path = context / ".dockerignore"
    if not path.exists():
        return []
    patterns = [
        line.strip().lstrip("/")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    return [
        source
        for source in sources
        if any(
            fnmatch.fnmatch(str(part), pattern)
            for pattern in patterns
            for part in [PurePosixPath(source), *PurePosixPath(source).parents]
        )
    ]


def main(argv: list[str]) -> int:
    dockerfile = argv[0] if argv else "Dockerfile"
    pyproject_path = argv[1] if len(argv) > 1 else "pyproject.toml"
    with open(pyproject_path, "rb") as f:
        pyproject = tomllib.load(f)
    with open(dockerfile, encoding="utf-8") as f:
        text = f.read()
    absent = missing(text, pyproject, Path(dockerfile).resolve().parent)
    context = Path(dockerfile).resolve().parent
    for source in ignored(required_sources(pyproject), context):
        print(f".dockerignore: excludes {source}, which the wheel needs")
        absent.append(source)
    for source in absent:
        print(f"{dockerfile}: the build stage does not copy {source} (the wheel needs it)")
    if not absent:
        print(f"{dockerfile}: the build stage copies every source of the wheel")
    return 1 if absent else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
