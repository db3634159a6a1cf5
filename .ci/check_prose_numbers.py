#!/usr/bin/env python
"""Fail when a chapter's prose holds a measured number typed by hand.

A number in a chapter's markdown that a cell computed must be inserted from that cell's output with
myst-nb's ``glue`` (``{glue:text}`name:.1f``` in the text, ``glue("name", value, display=False)`` in the
cell), so that the text cannot drift from what the cell printed.

**Measured number** (what this check looks for in markdown cells, outside ``$…$``/``$$…$$`` math,
inline code, code fences, glue roles, links and citations):

* a decimal with a fractional part: ``22.9``, ``0.845``, ``.5``;
* any number followed by a unit of measurement: ``%``, ``dB``, ``s``, ``min``, ``ms``, ``MiB``, ``GiB``, ``MB``, ``×``;
* a ``±`` expression.

Integers without a unit (``1000 steps``, ``32 faces``, ``chapter 6``) are counts and settings, never
flagged. A setting or a published figure that is not measured by the chapter (σ_y = 0.05, t0 = 0.2, the
DPS paper's 25.67 dB) is allowed by listing it, exactly as written, in the notebook's metadata::

    "metadata": {"prose_constants": ["0.05", "0.2", "25.67 dB"]}

Run: ``python .ci/check_prose_numbers.py book/*.ipynb`` (exit 1 and a list of offending lines).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

UNITS = r"(?:%|dB|ms|s|min|MiB|GiB|MB|×)"
NUMBER = r"(?<![\w.])(?:\d+\.\d+|\.\d+|\d+)(?:e-?\d+)?"
MEASURED = re.compile(rf"±\s*{NUMBER}(?:\s*{UNITS}(?![\w]))?|{NUMBER}\s*{UNITS}(?![\w])|(?<![\w.])\d*\.\d+(?![\w.])")

# Parts of markdown whose numbers are not prose: math, code, glue roles, links, citations, HTML.
STRIP = [
    re.compile(r"```.*?```", re.S),
    re.compile(r"\$\$.*?\$\$", re.S),
    re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$"),
    re.compile(r"\{[\w:-]+\}`[^`]*`"),  # roles: {glue:text}`x:.1f`, {cite}`...`, {doc}`...`, {eq}`...`
    re.compile(r"`[^`\n]*`"),
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"<[^>\n]+>"),
    re.compile(r"https?://\S+"),
]


def normalise(token: str) -> str:
    return re.sub(r"\s+", " ", token.strip())


def measured_numbers(markdown: str) -> list[str]:
    """The measured numbers of one markdown text (after removing math, code, roles and links)."""
    text = markdown
    for pattern in STRIP:
        text = pattern.sub(" ", text)
    return [normalise(m.group(0)) for m in MEASURED.finditer(text)]


def check_notebook(path: Path) -> list[str]:
    """Problems of one notebook: ``'<file> cell <i>: <number> in "<line>"'`` for each hand-typed measured number."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    allowed = {normalise(c) for c in nb.get("metadata", {}).get("prose_constants", [])}
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        for pattern in STRIP[:2]:  # code fences and display maths may span lines: drop them from the whole cell first
            source = pattern.sub(" ", source)
        for line in source.splitlines():
            for token in measured_numbers(line):
                if token in allowed or token.replace(" ", "") in {a.replace(" ", "") for a in allowed}:
                    continue
                problems.append(f"{path} cell {i}: {token!r} in {line.strip()[:120]!r}")
    return problems


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(Path(__file__).resolve().parent.parent.glob("book/*.ipynb"))
    problems = [p for path in paths for p in check_notebook(path)]
    for p in problems:
        print(p)
    if problems:
        print(f"\n{len(problems)} measured number(s) typed by hand: glue them from the cell that computes them "
              "(myst_nb.glue), or list a setting in the notebook's metadata 'prose_constants'.", file=sys.stderr)
        return 1
    print(f"prose numbers: {len(paths)} notebook(s), no hand-typed measured number")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
