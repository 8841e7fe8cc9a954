"""The documentation's examples run, print what the pages say, and the site builds.

Every ```python block of a page in docs/ runs, in page order, in one namespace per page.
A block that prints shows its output in the ```text block right after it, or line by line
in `# -> output` comments; `...` in an expected line matches any text.
"""

import contextlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import ktorch as kt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
PAGES = sorted(f for f in os.listdir(DOCS) if f.endswith(".md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def blocks(page):
    """(python source, expected output lines or None, line number) for each python block."""
    with open(os.path.join(DOCS, page)) as f:
        text = f.read()
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for i, (lang, body, start, end) in enumerate(found):
        if lang != "python":
            continue
        line = text.count("\n", 0, start) + 1
        want = [m.group(1) for m in re.finditer(r"#\s*->\s?(.*)$", body, re.M)] or None
        nxt = found[i + 1] if i + 1 < len(found) else None
        if nxt and nxt[0] == "text" and not text[end:nxt[2]].strip():
            want = nxt[1].rstrip("\n").split("\n")
        out.append((body, want, line))
    return out


def matches(got, want):
    pattern = ".*".join(re.escape(p) for p in want.rstrip().split("..."))
    return re.fullmatch(pattern, got.rstrip()) is not None


@pytest.fixture
def one_thread():
    """The examples are small: with one libtorch thread they take 0.2 s, not 25 s, on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)])
def test_page_examples_run_and_print_what_they_show(page, one_thread):
    ns = {"__name__": "__docs__"}
    kt.seed(42)
    for src, want, line in blocks(page):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(src, f"{page}:{line}", "exec"), ns)
        got = buf.getvalue().rstrip("\n").split("\n") if buf.getvalue() else []
        where = f"{page}, block at line {line}"
        if want is None:
            assert not got, f"{where} prints but shows no expected output:\n" + "\n".join(got)
            continue
        assert len(got) == len(want), f"{where}: printed\n" + "\n".join(got)
        for g, w in zip(got, want, strict=True):
            assert matches(g, w), f"{where}: printed {g!r}, the page shows {w!r}"


def test_api_page_and_stub_docstrings_are_generated_from_the_docstrings():
    """help(kt.f), docs/api.md and the stubs show one text: the #[pyfunction]'s doc comment."""
    spec = importlib.util.spec_from_file_location("gen_api", os.path.join(DOCS, "gen_api.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with open(os.path.join(DOCS, "api.md")) as f:
        assert f.read() == gen.page(), "docs/api.md is stale: run `make docs` (docs/gen_api.py)"
    for path, module in gen.STUBS:
        with open(path) as f:
            assert f.read() == gen.stub(path, module), f"{path} docstrings are stale: run `make docs`"


def test_every_function_has_a_reference_entry():
    with open(os.path.join(DOCS, "api.md")) as f:
        page = f.read()
    for name in kt._ktorch.__all__:
        if not name.startswith("_"):
            assert f"### `{name}`" in page, name


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs builds the site")
def test_site_builds_strict(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()
    shutil.rmtree(tmp_path / "site")
