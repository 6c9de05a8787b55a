"""A docker-registry on 127.0.0.1 the way sites run one: TLS with a certificate of its own (self-signed, made
with openssl) and htpasswd logins (made with apache2-utils' htpasswd -B)."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import Registry, find_registry, free_port

USER = "siteadmin"
PASSWORD = "s3cret-Passw0rd"


def missing_secure_tools() -> list[str]:
    return [tool for tool in ("openssl", "htpasswd") if shutil.which(tool) is None]


@dataclass
class SecureRegistry:
    registry: Registry
    cert_dir: Path  # holds ca.crt: give to skopeo --cert-dir
    authfile: Path  # containers auth.json with the right login
    storage: Path

    @property
    def host(self) -> str:
        return self.registry.host

    def ref(self, name: str) -> str:
        return f"docker://{self.host}/{name}"

    def stop(self) -> None:
        self.registry.stop()


def make_certificate(folder: Path, key: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 as ``folder/ca.crt`` (the key outside it: skopeo's --cert-dir
    takes any *.key there for a client key)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert = folder / "ca.crt"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def make_htpasswd(path: Path, user: str, password: str) -> Path:
    # -i: the password comes on stdin, not on the command line
    result = subprocess.run(["htpasswd", "-Bin", user], input=password.encode(), check=True, capture_output=True)
    path.write_bytes(result.stdout)
    return path


def write_authfile(path: Path, host: str, user: str, password: str) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    path.chmod(0o600)
    return path


def start_secure_registry(work: Path) -> SecureRegistry:
    binary = find_registry()
    if binary is None:
        raise RuntimeError("docker-registry is not installed")
    work.mkdir(parents=True, exist_ok=True)
    certs = work / "certs"
    cert, key = make_certificate(certs, work / "server.key")
    htpasswd = make_htpasswd(work / "htpasswd", USER, PASSWORD)
    storage = work / "storage"
    context = ssl.create_default_context(cafile=str(cert))
    last = ""
    for _ in range(3):
        port = free_port()
        config = work / f"registry-{port}.yml"
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "info", "accesslog": {"disabled": True}},
                    "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
                    "auth": {"htpasswd": {"realm": "regpack-test", "path": str(htpasswd)}},
                    "http": {"addr": f"127.0.0.1:{port}", "tls": {"certificate": str(cert), "key": str(key)}},
                }
            )
        )
        log = work / f"registry-{port}.log"
        log_file = open(log, "wb")  # noqa: SIM115 - closed in Registry.stop
        process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        registry = Registry(storage, port, process, log, False, log_file)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            if f"listening on 127.0.0.1:{port}" in registry.log_text():
                try:
                    urllib.request.urlopen(f"https://127.0.0.1:{port}/v2/", timeout=5, context=context)
                except urllib.error.HTTPError as e:
                    if e.code == 401:  # TLS works and the registry asks for a login
                        authfile = write_authfile(work / "auth.json", registry.host, USER, PASSWORD)
                        return SecureRegistry(registry, certs, authfile, storage)
                except OSError:
                    pass
            time.sleep(0.05)
        registry.stop()
        last = registry.log_text()[-3000:]
    raise RuntimeError(f"secure docker-registry did not start: {last}")
