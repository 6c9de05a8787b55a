"""Parsing the command line loads only the command line: ``regpack --help`` imports no engine, threads or JSON."""

from __future__ import annotations

import subprocess
import sys

import pytest

from regpack import archive, cli

# Modules (and their submodules) that only running a command may import.
HEAVY = (
    "regpack.engine",
    "regpack.verify",
    "regpack.analysis",
    "regpack.layouts",
    "regpack.archive",
    "regpack.transfer",
    "regpack.jobs",
    "regpack.bundle",
    "regpack.push",
    "regpack.pull",
    "json",
    "concurrent.futures",
    "threading",
    "dataclasses",
    "logging",
)

_DRIVER = """
import sys
import regpack.cli
heavy = {heavy!r}
try:
    regpack.cli.main({argv!r})
except SystemExit:
    pass
sys.stdout = sys.__stdout__
print(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy)))
"""


def _loaded_by(argv: list[str]) -> str:
    code = _DRIVER.format(heavy=HEAVY, argv=argv)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["frobnicate"], ["pack", "a"]]
    + [[c, "--help"] for c in ("inspect", "pack", "unpack", "verify", "diff", "inventory", "serve", "push", "pull")],
)
def test_parsing_alone_imports_no_engine(argv: list[str]) -> None:
    assert _loaded_by(argv) == "[]", f"regpack {' '.join(argv)}: parsing imported {_loaded_by(argv)}"


def test_python_m_regpack_help_imports_no_engine() -> None:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "regpack", "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and "usage: regpack" in run.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "regpack.cli" in imported  # the trace is read, not empty
    assert sorted(m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY)) == []


def test_level_default_is_the_archive_default() -> None:
    args = cli._parser().parse_args(["pack", "src", "-o", "out.tar.zst"])
    assert args.level == archive.DEFAULT_LEVEL


def test_commands_still_run_with_lazy_imports() -> None:
    for argv in (["inspect", "/nonexistent-bundle", "--json"], ["verify", "/nonexistent-bundle"]):
        run = subprocess.run([sys.executable, "-m", "regpack", *argv], capture_output=True, text=True, timeout=60)
        assert run.returncode == 1, run.stderr
        said = run.stdout + run.stderr
        assert "/nonexistent-bundle: no such file or folder" in said and "Traceback" not in said
    run = subprocess.run([sys.executable, "-m", "regpack", "pack", "x", "-o", "y", "--jobs", "z"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2 and 'not a number: "z"' in run.stderr, run.stderr
