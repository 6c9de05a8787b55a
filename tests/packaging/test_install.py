"""regpack as a user installs it: the built wheel and sdist, a clean environment, the desktop entry.

The wheel is built from this checkout with `python -m build` (as a release is made), installed into a new
virtual environment next to a decoy package that claims the generic names `gui`, `core` and `resources`
(as an unrelated distribution might), and run from there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import regpack

ROOT = Path(__file__).resolve().parents[2]
VERSION = regpack.__version__


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    out = tmp_path_factory.mktemp("dist")
    src = tmp_path_factory.mktemp("src") / "regpack"
    # build from a clean copy of the tracked files, as a release is built from a fresh clone
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    run = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    return next(out.glob("*.whl")), next(out.glob("*.tar.gz")), log


def test_build_is_warning_free(dist: tuple[Path, Path, str]) -> None:
    warnings = [line for line in dist[2].splitlines() if "warning" in line.lower()]
    assert warnings == []


def test_the_wheel_claims_only_regpack_names_and_carries_the_licence(dist: tuple[Path, Path, str]) -> None:
    names = zipfile.ZipFile(dist[0]).namelist()
    assert {n.split("/")[0] for n in names} == {"regpack", f"regpack-{VERSION}.dist-info"}
    assert f"regpack-{VERSION}.dist-info/licenses/LICENSE" in names
    assert "regpack/py.typed" in names and "regpack/gui/app.py" in names
    assert "regpack/resources/sample/demo/base:3.19/manifest.json" in names
    assert not [n for n in names if n.endswith(("/synth.py", "/make_sample.py"))], "test-data builders stay out"
    metadata = zipfile.ZipFile(dist[0]).read(f"regpack-{VERSION}.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11" in metadata


def test_the_sdist_has_tests_licence_and_readme_pictures(dist: tuple[Path, Path, str]) -> None:
    with tarfile.open(dist[1]) as sdist:
        names = sdist.getnames()
    top = f"regpack-{VERSION}"
    assert f"{top}/LICENSE" in names
    assert f"{top}/tests/packaging/test_install.py" in names
    pictures = [n for n in names if n.startswith(f"{top}/resources/") and n.endswith(".png")]
    readme = (ROOT / "README.md").read_text()
    assert pictures and all(Path(n).name in readme for n in pictures)


def test_a_clean_environment_with_a_decoy_gui_package_runs_regpack(
    dist: tuple[Path, Path, str], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", dist[0]],
        check=True,
        timeout=300,
        env=_env(),
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for decoy in ("gui", "core", "resources"):  # another distribution's generic top-level packages
        (site / decoy).mkdir()
        (site / decoy / "__init__.py").write_text("raise SystemExit('decoy package imported')\n")
        (site / decoy / "app.py").write_text("raise SystemExit('decoy package imported')\n")
    # PySide6 and humanize come from the test environment, after the new environment's own packages
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = _env(QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))

    for argv in ([str(venv / "bin" / "regpack"), "--version"], [str(python), "-m", "regpack", "--version"]):
        run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        assert (run.returncode, run.stdout.strip()) == (0, f"regpack {VERSION}"), run.stderr

    where = subprocess.run(
        [str(python), "-c", "import regpack.gui.app as a, regpack.resources as r; print(a.__file__, r.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(site / "regpack") for p in where)

    inspect = subprocess.run(
        [str(venv / "bin" / "regpack"), "inspect", str(site / "regpack" / "resources" / "sample"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert inspect.returncode == 0, inspect.stderr
    assert len(json.loads(inspect.stdout)["images"]) == 4

    window = subprocess.run(
        [str(venv / "bin" / "regpack-gui"), "--exit-after-load"], capture_output=True, text=True, env=env, timeout=120
    )
    assert window.returncode == 0, window.stderr
    assert json.loads(window.stdout.splitlines()[-1])["images"] == 4


def test_desktop_entry_installs_validates_and_uninstalls(tmp_path: Path) -> None:
    data = tmp_path / "share"
    env = _env(XDG_DATA_HOME=str(data))
    env.pop("DISPLAY", None)
    env.pop("QT_QPA_PLATFORM", None)  # no display needed: plain files
    gui = Path(sys.executable).parent / "regpack-gui"
    run = subprocess.run([str(gui), "--install-desktop-entry"], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    entry = data / "applications" / "regpack.desktop"
    icon = data / "icons" / "hicolor" / "scalable" / "apps" / "regpack.svg"
    assert entry.is_file() and icon.read_bytes().startswith(b"<")
    keys = dict(line.split("=", 1) for line in entry.read_text().splitlines() if "=" in line)
    program = keys["Exec"].removesuffix(" %f")
    assert Path(program).is_file() and os.access(program, os.X_OK)
    validate = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert validate.returncode == 0 and validate.stdout == "", validate.stdout + validate.stderr
    run = subprocess.run([str(gui), "--uninstall-desktop-entry"], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0 and not entry.exists() and not icon.exists()


def test_exec_quoting_follows_the_desktop_entry_spec() -> None:
    from regpack.gui.desktop import exec_quote

    assert exec_quote("/opt/regpack/bin/regpack-gui") == "/opt/regpack/bin/regpack-gui"
    assert exec_quote("/home/a b/bin/regpack-gui") == '"/home/a b/bin/regpack-gui"'
    assert exec_quote('/x/$HOME"`\\') == '"/x/\\$HOME\\"\\`\\\\"'
