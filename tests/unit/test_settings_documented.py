"""Every environment variable the service reads is documented, and nothing else is.

The variables are found in the code, not listed here: each `env.<type>("NAME", ...)`,
`env("NAME", ...)` call of identity_playground/settings.py, plus the process options the
cluster runner reads with `os.environ.get("NAME")` (PORT, WEB_CONCURRENCY). Each document
that lists the variables gets a parser in DOCUMENTS.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "identity_playground" / "settings.py"
# runcluster's own options, read before Django's settings matter (Heroku sets both)
RUNNER_SOURCES = [
    *(ROOT / "rooms" / "runner").glob("*.py"),
    *(ROOT / "rooms" / "management").rglob("*.py"),
]

# `NAME=value` or `# NAME=value` (commented out: the default applies)
ENV_LINE = re.compile(r"^#?\s?(?P<name>[A-Z][A-Z0-9_]*)=")


def _string_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def settings_variables(source: str) -> set[str]:
    """Names passed to `env(...)` or `env.<anything>(...)` (env = environ.Env())."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        is_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
        )
        name = _string_arg(node) if is_env else None
        if name:
            names.add(name)
    return names


def environ_get_variables(source: str) -> set[str]:
    """Names passed to `os.environ.get(...)`."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and ast.unparse(node.func.value) == "os.environ"
        ):
            name = _string_arg(node)
            if name:
                names.add(name)
    return names


def variables_read() -> set[str]:
    names = settings_variables(SETTINGS.read_text())
    for path in RUNNER_SOURCES:
        names |= environ_get_variables(path.read_text())
    return names


def env_example_variables(text: str) -> dict[str, str]:
    """.env.example: variable -> the comment line right above it ("" when there is none)."""
    found: dict[str, str] = {}
    previous = ""
    for line in text.splitlines():
        match = ENV_LINE.match(line)
        if match:
            found[match["name"]] = previous if not ENV_LINE.match(previous) else ""
        previous = line if line.startswith("#") else ""
    return found


def configuration_table_variables(text: str) -> dict[str, str]:
    """docs/configuration.md's table: variable -> its "meaning" column. A row may name
    several variables in its first column (`A`, `B`); rows without one are headings."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3:
            continue
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
            found[name] = cells[2]
    return found


# document (path from the root) -> parser giving variable -> its one-line description
DOCUMENTS: dict[str, Callable[[str], dict[str, str]]] = {
    ".env.example": env_example_variables,
    "docs/configuration.md": configuration_table_variables,
}


def test_the_scan_finds_what_the_settings_read() -> None:
    """The scan of settings.py sees every call shape the settings use (a scan that found
    nothing would make the tests below pass vacuously)."""
    names = variables_read()
    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "LOG_LEVEL"} <= names
    assert {"PORT", "WEB_CONCURRENCY"} <= names
    assert settings_variables('env.db("A", default=1); env("B"); env.list("C"); x("D")') == {
        "A",
        "B",
        "C",
    }


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_variable_read_is_documented_and_nothing_else(document: str) -> None:
    """The document lists exactly the variables the code reads."""
    listed = set(DOCUMENTS[document]((ROOT / document).read_text()))
    read = variables_read()
    assert sorted(read - listed) == [], f"read but not in {document}"
    assert sorted(listed - read) == [], f"in {document} but read nowhere"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_variable_has_a_description(document: str) -> None:
    """Each variable comes with a line saying what it does (in .env.example: a comment
    line right above it)."""
    listed = DOCUMENTS[document]((ROOT / document).read_text())
    assert sorted(name for name, text in listed.items() if not text.strip("# ")) == []
