"""A registry that is not there yet when the push starts (restarting, a network blip): skopeo's own retries,
which regpack asks for (--retries, default 3), carry the push through; with --retries 0 the push fails at once,
naming each image and the reason."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.test_transfer import dir_digests
from tests.support.catalog import Generated
from tests.support.tools import find_registry, free_port, registry_config, run_cli

pytestmark = pytest.mark.integration


def test_a_registry_that_comes_up_late_gets_every_image(generated: Generated, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(registry_config(tmp_path / "storage", port, readonly=False))
    host = f"127.0.0.1:{port}"

    at_once = run_cli("push", generated.dir_root, f"{host}/site", "--tls-verify", "false", "--retries", "0")
    assert at_once.returncode == 1
    assert "connection refused" in at_once.stderr and "Traceback" not in at_once.stderr
    assert all(f"{ref} -> docker://{host}/site/{ref}" in at_once.stderr for ref in dir_digests(generated.dir_root))

    started: list[subprocess.Popen[bytes]] = []

    def start_later() -> None:
        time.sleep(1.5)
        binary = find_registry()
        assert binary is not None
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
        started.append(subprocess.Popen([binary, "serve", str(config)], **quiet))  # type: ignore[call-overload]

    later = threading.Thread(target=start_later)
    later.start()
    try:
        pushed = run_cli("push", generated.dir_root, f"{host}/site", "--tls-verify", "false")  # default: 3 retries
        later.join()
        assert pushed.returncode == 0, pushed.stderr
        n = len(dir_digests(generated.dir_root))
        assert f"{n} images: {n} pushed, 0 already there, 0 failed" in pushed.stdout
        for ref, digest in dir_digests(generated.dir_root).items():
            repository, _, tag = ref.rpartition(":")
            tags = tmp_path / f"storage/docker/registry/v2/repositories/site/{repository}/_manifests/tags"
            link = tags / tag / "current" / "link"
            assert link.read_text() == digest, ref
    finally:
        later.join()
        for process in started:
            process.terminate()
            process.wait(timeout=10)
