"""The allocator setting made at import, and its opt-out."""

import os
import subprocess
import sys

import ktorch as kt


def test_import_tunes_glibc_malloc():
    assert kt._malloc_tuned is True


def test_opt_out_keeps_glibc_settings():
    code = "import ktorch as kt; print(kt._malloc_tuned)"
    env = dict(os.environ, KTORCH_MALLOC="system")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
