"""The `regpack` process as a shell sees it: version, exit status on signals, a reader that goes away."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import regpack

# Runs the real CLI, but raises the given signal in this very process the moment the bundle has been read: the
# job is then under way, deterministically, with nothing yet written.
SIGNAL_AFTER_READ = textwrap.dedent(
    """
    import os, signal, sys
    import regpack.layouts as layouts

    real_read = layouts.read

    def read(*args, **kwargs):
        bundle = real_read(*args, **kwargs)
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        return bundle

    layouts.read = read
    import regpack.cli
    sys.exit(regpack.cli.main(sys.argv[2:]))
    """
)


def test_version_from_both_entry_points() -> None:
    script = Path(sys.executable).parent / "regpack"
    for argv in ([sys.executable, "-m", "regpack"], [str(script)]):
        run = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == f"regpack {regpack.__version__}"


@pytest.mark.parametrize(("name", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_cancels_and_exits_as_the_shell_expects(
    dir_bundle: Path, tmp_path: Path, name: str, status: int
) -> None:
    script = tmp_path / "driver.py"
    script.write_text(SIGNAL_AFTER_READ)
    dest = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, str(script), name, "pack", str(dir_bundle), "-o", str(dest), "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == status, run.stderr
    assert "cancelled; nothing was written" in run.stderr
    assert "Traceback" not in run.stderr
    assert not dest.exists()
    assert not list(tmp_path.glob("out.partial-*"))


def test_a_reader_that_goes_away_is_no_error(dir_bundle: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "regpack", "inspect", str(dir_bundle)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: every write regpack makes meets a closed pipe
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE
    assert err == ""
