"""RESULTS.md's sections: each benchmark script owns a `## title` section and replaces only it."""

import re

DIST = "Multi-process (gloo)"  # bench/dist.py's section


def section(text, title):
    """The `## title` section of `text` (up to the next `## ` heading), None when absent."""
    m = re.search(rf"^## {re.escape(title)}\n.*?(?=^## (?!#)|\Z)", text, re.S | re.M)
    return m.group(0).rstrip("\n") + "\n" if m else None


def splice(text, title, body, before=None):
    """`text` with its `## title` section replaced by `body` (which starts with that heading);
    when absent, placed before the `## before` section, else at the end."""
    pat = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## (?!#)|\Z)", re.S | re.M)
    body = body.rstrip("\n") + "\n"
    if pat.search(text):
        return pat.sub(lambda _: body + "\n", text, count=1).rstrip("\n") + "\n"
    at = text.find(f"\n## {before}\n") if before else -1
    if at < 0:
        return text.rstrip("\n") + "\n\n" + body
    return text[: at + 1] + body + "\n" + text[at + 1 :]
