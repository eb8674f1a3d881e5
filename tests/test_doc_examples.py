"""Every Python and shell block of README.md and docs/*.md runs here, on the bundled digits, or
says in the markdown why it cannot: an HTML comment on the line before the block,

    <!-- illustrative: needs the full MNIST download -->

The blocks of one file run in document order in one fresh process, in a temporary working
directory: Python blocks share one namespace (a later block uses what an earlier one defined, as
a reader would in one session), shell blocks run in ``bash -e`` there (files they write are what
the next blocks read). A file whose blocks import a package that is not installed is skipped with
its name."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python": "python", "py": "python", "bash": "shell", "sh": "shell", "shell": "shell",
             "console": "shell"}
ILLUSTRATIVE = re.compile(r"<!--\s*illustrative:\s*(.*?)\s*-->")


@dataclass
class Block:
    path: str
    line: int  # of the opening fence, 1-based
    kind: str  # "python" or "shell"
    code: str
    reason: str | None  # why it is not run, or None


def blocks(path: str) -> list[Block]:
    """The Python and shell blocks of a markdown file, with their illustrative marks."""
    lines = (ROOT / path).read_text().splitlines()
    found, k = [], 0
    while k < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[k])
        if not fence:
            k += 1
            continue
        end = next(j for j in range(k + 1, len(lines)) if lines[j].startswith("```"))
        kind = LANGUAGES.get(fence.group(1))
        if kind:
            before = next((lines[j] for j in range(k - 1, -1, -1) if lines[j].strip()), "")
            mark = ILLUSTRATIVE.fullmatch(before.strip())
            found.append(Block(path, k + 1, kind, "\n".join(lines[k + 1:end]) + "\n",
                               mark.group(1) if mark else None))
        k = end + 1
    return found


def _imports(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


# Runs in the child: each block in order, Python in one namespace, shell through bash.
_RUNNER = """
import json, subprocess, sys
namespace = {"__name__": "__main__"}
for block in json.load(sys.stdin):
    where = f"{block['path']}:{block['line']}"
    print(f"--- {where}", flush=True)
    if block["kind"] == "python":
        exec(compile(block["code"], where, "exec"), namespace)
    else:
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block["code"]])
        if done.returncode:
            sys.exit(f"{where}: the shell block exited with {done.returncode}")
"""


def test_every_illustrative_block_says_why():
    marked = [b for path in DOCS for b in blocks(path) if b.reason is not None]
    assert marked, "no illustrative blocks found: is the marker convention still read?"
    for b in marked:
        assert len(b.reason) >= 10, f"{b.path}:{b.line}: an illustrative block needs its reason"


@pytest.mark.parametrize("path", [p for p in DOCS if any(b.reason is None for b in blocks(p))])
def test_code_blocks_run(path, tmp_path):
    runnable = [b for b in blocks(path) if b.reason is None]
    needed = set().union(*(_imports(b.code) for b in runnable if b.kind == "python"))
    missing = sorted(n for n in needed if importlib.util.find_spec(n) is None)
    if missing:
        pytest.skip(f"{path}: its examples need {', '.join(missing)}")
    scripts = Path(sys.executable).parent  # hm2bp-train and friends of this environment
    env = {**os.environ, "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps([b.__dict__ for b in runnable]),
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    if done.returncode:
        pytest.fail(f"{path}: a code block failed\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}", pytrace=False)
