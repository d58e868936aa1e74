"""The house rules, checked on the source: imports run one way (`bench → server → engine →
db`; the clients stand apart), no two modules import each other (directly or in a longer
circle), no module imports another module's private name, and the architecture document
lists every module of the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "server", "engine", "db", "sql", "promptrelay_client")
# What each top-level package may import of the others.
MAY_IMPORT = {
    "bench": {"bench", "server", "engine", "db", "promptrelay_client"},
    "server": {"server", "engine", "db", "sql"},
    "engine": {"engine", "db"},
    "db": {"db", "sql"},
    "sql": {"sql"},
    "promptrelay_client": {"promptrelay_client"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import of one of our packages, at any depth of the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [alias.name for alias in node.names]))
    return [(m, n) for m, n in out if m.split(".")[0] in PACKAGES]


def _target(module: str, name: str) -> str:
    """`from a.b import c`: the module a.b.c when it is one, else a.b."""
    return f"{module}.{name}" if f"{module}.{name}" in MODULES else module


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for imported, names in _imports(path):
            targets = {_target(imported, n) for n in names} or {imported}
            graph[module] |= {t for t in targets if t in MODULES and t != module}
    return graph


def test_imports_run_one_way() -> None:
    wrong = [
        f"{module} imports {imported}"
        for module, path in MODULES.items()
        for imported, _ in _imports(path)
        if imported.split(".")[0] not in MAY_IMPORT[module.split(".")[0]]
    ]
    assert wrong == []


def test_no_import_circles() -> None:
    graph = _graph()
    # Packages' __init__ re-exports are not edges of the design; only modules count.
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert circles == []


def test_no_private_name_crosses_a_module() -> None:
    wrong = [
        f"{module} imports {imported}.{name}"
        for module, path in MODULES.items()
        for imported, names in _imports(path)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert wrong == []


def test_architecture_document_names_every_module() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*(?:\.py|/))`", doc))
    missing = []
    for path in MODULES.values():
        rel = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py" or rel.startswith(("sql/", "tests/")):
            continue
        folder = rel.rsplit("/", 1)[0] + "/"
        # a module is named by its path, or by its file name in its folder's row
        if rel not in named and not (folder in named and f"`{path.name}`" in doc):
            missing.append(rel)
    assert missing == []


def test_the_wheel_lists_every_package() -> None:
    """A package missing from pyproject's list is missing from the wheel (and the image):
    the installed server then fails to import it."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for path in (ROOT / package).rglob("__init__.py")
    }
    assert found - listed == set()
