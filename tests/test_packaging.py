"""The wheel and the image are built from what pyproject.toml lists: the checks `.ci/run`
makes (through `.ci/package-check`), here on the sources and on a freshly built wheel."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def ci_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / ".ci" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_dockerfile_copies_every_source_of_the_wheel() -> None:
    check = ci_module("dockerfile_check")
    text = (ROOT / "Dockerfile").read_text()
    assert check.missing(text, pyproject(), ROOT) == []
    assert check.ignored(check.required_sources(pyproject()), ROOT) == []


def test_dockerfile_check_names_each_source_left_out() -> None:
    check = ci_module("dockerfile_check")
    text = (ROOT / "Dockerfile").read_text()
    text = text.replace("COPY bench ./bench\n", "").replace(" LICENSE ./", " ./")
    text = text.replace("COPY clients/typescript/src ./clients/typescript/src", "")
    assert check.missing(text, pyproject(), ROOT) == ["LICENSE", "bench", "clients/typescript/src"]


def test_dockerfile_check_requires_the_same_place_in_the_image() -> None:
    """`COPY bench ./` puts bench's modules at the top, not in a `bench` package."""
    check = ci_module("dockerfile_check")
    text = (ROOT / "Dockerfile").read_text().replace("COPY bench ./bench", "COPY bench ./")
    assert check.missing(text, pyproject(), ROOT) == ["bench"]
    whole = "FROM x\nWORKDIR /s\nCOPY . .\nRUN pip install .\n"
    assert check.missing(whole, pyproject(), ROOT) == []


def fake_wheel(path: Path, requires: list[str], modules: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        meta = "Metadata-Version: 2.4\nName: demo\nVersion: 1\n"
        meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
        zf.writestr("demo-1.dist-info/METADATA", meta)
        for name, source in modules.items():
            zf.writestr(name, source)
    return path


def test_import_check_names_each_undeclared_import(tmp_path: Path) -> None:
    check = ci_module("import_check")
    wheel = fake_wheel(
        tmp_path / "demo-1-py3-none-any.whl",
        ["aiohttp>=3.9", 'rich>=13; extra == "bench"'],
        {
            "server/a.py": "import json\nimport aiohttp\nimport yarl\nfrom server import b\n",
            "server/b.py": "from . import a\nimport rich\n",
            "bench/c.py": "import rich.table\nimport no_such_module_anywhere\n",
        },
    )
    assert check.undeclared(str(wheel)) == [
        "bench/c.py: imports no_such_module_anywhere, which no installed distribution provides",
        "server/a.py: imports yarl (from yarl), not declared in [project.dependencies]",
        "server/b.py: imports rich (from rich), not declared in [project.dependencies]",
    ]


def test_the_wheel_declares_every_third_party_import(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("promptrelay-*.whl")
    assert ci_module("import_check").undeclared(str(wheel)) == []


def test_pre_commit_runs_the_checks_ci_runs() -> None:
    """Each hook's command is a line of `.ci/run`, and `.ci/run`'s lint, format and type
    commands are all hooks, so a clean commit is a clean CI."""
    hooks = re.findall(r"^\s+entry: (.+)$", (ROOT / ".pre-commit-config.yaml").read_text(), re.M)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    checks = [line for line in ci if line.startswith(("python -m ruff", "python -m mypy"))]
    assert (
        hooks
        == checks
        == [
            "python -m ruff check .",
            "python -m ruff format --check .",
            "python -m mypy",
        ]
    )


def test_ci_runs_the_readme_test_command_literally() -> None:
    readme = (ROOT / "README.md").read_text()
    command = "pip install -e '.[test]' && python -m pytest"
    assert f"```sh\n{command}\n```" in readme
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()
