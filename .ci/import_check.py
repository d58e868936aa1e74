"""Check that every third-party import of a wheel's modules is a declared dependency.

Walks each `.py` module in the wheel with `ast`, maps each top-level import name to the
distributions that provide it in the running environment
(`importlib.metadata.packages_distributions()`), and fails naming every import whose
distribution is not among the wheel's `Requires-Dist` (without extra; modules under
`bench/` may also use the `bench` extra, and the source checkout's `tests` package, which
they import only after finding a checkout beside them and say so when there is none).
Run it with the Python of an environment where the wheel was installed with its
dependencies (and the bench extra): a module installed only as a dependency of a
dependency is not declared, and fails.

    python .ci/import_check.py dist/promptrelay-*.whl

Exits 1 naming each undeclared import, with the module that makes it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import zipfile
from email.parser import Parser

EXTRA_PREFIXES = {"bench": ("bench/",)}
# Packages of the source checkout (not of any distribution) that modules under these
# prefixes may import, found on a path they add themselves.
CHECKOUT_IMPORTS = {"tests": ("bench/",)}


def normalize(name: str) -> str:
    """A distribution name in its PEP 503 form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(metadata: str) -> dict[str | None, set[str]]:
    """Declared distributions by extra (None: the main dependencies), from METADATA."""
    out: dict[str | None, set[str]] = {None: set()}
    for requirement in Parser().parsestr(metadata).get_all("Requires-Dist") or []:
        name = normalize(re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0])
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
        out.setdefault(extra.group(1) if extra else None, set()).add(name)
    return out


def top_level_imports(source: str) -> set[str]:
    """Top-level names of the absolute imports in a module (relative ones are ours)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def undeclared(wheel: str) -> list[str]:
    """One line per (module, import) whose distribution the wheel does not declare."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        deps = declared(zf.read(meta).decode())
        modules = {n: zf.read(n).decode() for n in names if n.endswith(".py")}
    ours = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    ours = {n.removesuffix(".py") for n in ours}
    providers = importlib.metadata.packages_distributions()
    problems: list[str] = []
    for path, source in sorted(modules.items()):
        allowed = set(deps[None])
        for extra, prefixes in EXTRA_PREFIXES.items():
            if path.startswith(prefixes):
                allowed |= deps.get(extra, set())
        for name in sorted(top_level_imports(source)):
            if name in sys.stdlib_module_names or name in ours or name == "__future__":
                continue
            if path.startswith(CHECKOUT_IMPORTS.get(name, ())):
                continue
            dists = {normalize(d) for d in providers.get(name, [])}
            if not dists:
                problems.append(f"{path}: imports {name}, which no installed distribution provides")
            elif not dists & allowed:
                problems.append(
                    f"{path}: imports {name} (from {', '.join(sorted(dists))}), "
                    "not declared in [project.dependencies]"
                )
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    problems = undeclared(argv[0])
    for line in problems:
        print(line)
    if not problems:
        print(f"{argv[0]}: every third-party import is a declared dependency")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
