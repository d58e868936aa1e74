"""The README's configuration table lists every setting once, with its true default, and
cites no path outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic_core import PydanticUndefined

from engine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
UNSET_WORDS = ("unset", "embedded")


def _config_rows() -> list[tuple[list[str], list[str]]]:
    """(variable names, default cells) of each row of the README's configuration table."""
    text = README.read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", re.sub(r"\(or `[A-Z_]+`\)", "", cells[0]))
        rows.append((names, [d.strip() for d in cells[1].split(", ")]))
    return rows


def _env_names(name: str) -> set[str]:
    field = Settings.model_fields[name]
    names = {name.upper()}
    if isinstance(field.validation_alias, AliasChoices):
        names |= {str(c).upper() for c in field.validation_alias.choices}
    return names


def _same(default: Any, written: str) -> bool:
    written = written.strip("`")
    if default is None:
        return written.startswith(UNSET_WORDS)
    if isinstance(default, bool):
        return written == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(written) == float(default)
        except ValueError:
            return False
    return written == str(default)


def test_every_setting_is_in_the_configuration_table_once_with_its_default() -> None:
    rows = _config_rows()
    assert len(rows) > 20
    listed: dict[str, list[str]] = {}
    for names, defaults in rows:
        assert len(defaults) == len(names), f"one default per variable: {names} {defaults}"
        for env, written in zip(names, defaults, strict=True):
            listed.setdefault(env, []).append(written)
    problems = []
    for name, field in Settings.model_fields.items():
        primary = name.upper()
        hits = [env for env in _env_names(name) if env in listed]
        if hits != [primary] or len(listed[primary]) != 1:
            problems.append(f"{primary}: listed {sum(len(listed.get(h, [])) for h in hits)}x")
            continue
        if field.default is not PydanticUndefined and not _same(field.default, listed[primary][0]):
            problems.append(f"{primary}: README says {listed[primary][0]}, code {field.default}")
    unknown = sorted(set(listed) - {n.upper() for n in Settings.model_fields})
    assert problems == [] and unknown == [], (problems, unknown)


def test_no_document_or_module_cites_a_path_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.js", "*.html", "*.ts", "*.toml", "*.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # written in pieces so that this file does not match itself
    outside = re.compile(
        "|".join([r"PROTOCOL\.md", r"DESIGN\.md", r"\.\./" + "shared", r"\bissue \d+\b"])
    )
    hits = []
    for rel in tracked:
        path = ROOT / rel
        if path.is_file():
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if outside.search(line):
                    hits.append(f"{rel}:{n}")
    assert hits == [], f"paths outside the repository or work-item numbers: {hits}"
