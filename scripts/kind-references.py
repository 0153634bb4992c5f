#!/usr/bin/env python3
"""How many source files outside a kind's own modules name the kind in code.

For Once, WaitGroup, Gate and RateLimit: the library and binary sources (`crates/*/src`, tests
and benches left out) that reference the kind's types, `kind::` paths or `mod kind`
lines — comments, string literals and `#[cfg(test)]` modules removed first ("at once"
is not the Once). A kind cheap to add touches few files beyond its own modules.

Usage: python3 scripts/kind-references.py [--list]
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# kind: (pattern naming it in code, the paths of its own modules)
KINDS = {
    "Once": (
        r"\b(?:Once(?!Lock|Cell)\w*|Onces|once::|mod once)\b",
        ["/once/", "/once.rs"],
    ),
    "WaitGroup": (
        r"\b(?:WaitGroup\w*|waitgroup::|mod waitgroup)\b",
        ["/waitgroup/", "/waitgroup.rs"],
    ),
    "Gate": (
        r"\b(?:Gate\w*|gate::|mod gate)\b",
        ["/gate/", "/gate.rs"],
    ),
    "RateLimit": (
        r"\b(?:RateLimit\w*|ratelimit::|mod ratelimit)\b",
        ["/ratelimit/", "/ratelimit.rs"],
    ),
}


def code_only(text: str) -> str:
    """The text without `#[cfg(test)]` modules, comments and string literals."""
    test_module = text.find("#[cfg(test)]")
    if test_module >= 0:
        text = text[:test_module]
    out = []
    i = 0
    while i < len(text):
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
        elif text.startswith('r#"', i):
            end = text.find('"#', i + 3)
            i = len(text) if end < 0 else end + 2
        elif text[i] == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def main() -> None:
    listing = "--list" in sys.argv
    sources = sorted(
        p
        for p in ROOT.glob("crates/*/src/**/*.rs")
        if "/tests/" not in str(p) and "/benches/" not in str(p)
    )
    code = {p: code_only(p.read_text()) for p in sources}
    for kind, (pattern, own) in KINDS.items():
        naming = re.compile(pattern)
        outside = [
            p.relative_to(ROOT)
            for p, text in code.items()
            if not any(part in str(p) for part in own) and naming.search(text)
        ]
        print(f"{kind}: {len(outside)} files outside its own modules")
        if listing:
            for path in outside:
                print(f"  {path}")


if __name__ == "__main__":
    main()
