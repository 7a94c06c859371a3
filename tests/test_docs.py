"""The documentation site builds with ``mkdocs build --strict``, and every ```python
block in ``docs/*.md`` runs.

A page's blocks run in order in one namespace (a later block may use an earlier
block's names). A block whose first line is ``# doc-test: skip`` is not run; use it
rarely, only for code that cannot run in seconds.
"""

import glob
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SKIP = "# doc-test: skip"


def python_blocks(text):
    """The ```python blocks of a Markdown text, without those marked to skip."""
    blocks = [m.group(1) for m in BLOCK.finditer(text)]
    return [b for b in blocks if not b.lstrip().startswith(SKIP)]


def test_python_blocks_are_found():
    text = ("x\n```python\na = 1\n```\n```bash\nls\n```\n"
            f"```python\n{SKIP}\nb = 2\n```\n```python\nc = a\n```\n")
    assert python_blocks(text) == ["a = 1\n", "c = a\n"]


PAGES_WITH_CODE = [p for p in PAGES if python_blocks(open(p, encoding="utf-8").read())]


@pytest.mark.parametrize("page", PAGES_WITH_CODE,
                         ids=[os.path.relpath(p, ROOT) for p in PAGES_WITH_CODE])
def test_code_blocks_run(page):
    namespace = {"__name__": "__docs__"}
    with open(page, encoding="utf-8") as fh:
        blocks = python_blocks(fh.read())
    for i, block in enumerate(blocks):
        code = compile(block, f"{os.path.relpath(page, ROOT)}[block {i}]", "exec")
        exec(code, namespace)  # noqa: S102


@pytest.mark.backend_independent
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed")
def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                          "-f", os.path.join(ROOT, "mkdocs.yml"), "-d", str(tmp_path / "site")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert (tmp_path / "site" / "method" / "index.html").is_file()
    html = (tmp_path / "site" / "api" / "ops" / "index.html").read_text(encoding="utf-8")
    assert "deer_solve" in html  # the API page was generated from the docstrings
    assert (tmp_path / "site" / "experiments" / "ssm_vs_gtf_deer" / "free_runs.png").is_file()
