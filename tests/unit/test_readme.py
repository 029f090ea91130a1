"""The README stays what a user needs: short, its examples the files CI runs, its links
inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_client_examples_are_quoted_verbatim() -> None:
    blocks = re.findall(r"```(?:js|python)\n(.*?)```", README, re.S)
    for example in ("examples/client.mjs", "examples/client.py"):
        assert (ROOT / example).read_text() in blocks, f"{example} is not quoted as it is"


def test_it_is_short() -> None:
    assert README.count("\n") <= 280


def test_every_link_and_path_it_names_is_inside_the_repository() -> None:
    assert "../" not in README and "shared/" not in README
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    for path in re.findall(r"`((?:docs|bench|examples|rooms|tests)/[\w./-]+)`", README):
        assert (ROOT / path).exists(), path
