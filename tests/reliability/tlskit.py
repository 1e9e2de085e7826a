"""TLS for the tests: throw-away certificates, and stunnel in front of a real beanstalkd.

Certificates come from the ``cryptography`` package when it is installed, else from the
``openssl`` command line. :func:`stunnel` starts stunnel on a free loopback port and waits
for it by trying to connect (a bounded number of attempts, no sleeping).
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

READY_ATTEMPTS = 200_000
"""Connection attempts to wait for stunnel's port (each refused one returns at once)."""


def stunnel_binary() -> str | None:
    return shutil.which("stunnel4") or shutil.which("stunnel")


def require_stunnel() -> str:
    binary = stunnel_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("stunnel is not installed, and CI must run the TLS tests")
        pytest.skip("stunnel is not on PATH (apt-get install stunnel4 to run the TLS tests)")
    return binary


@dataclass(frozen=True)
class Identity:
    """A server certificate (PEM) and its key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Material:
    """What the TLS tests need: a CA to trust, and server identities."""

    ca: Path
    """The CA the clients trust."""
    good: Identity
    """Signed by ``ca``, for 127.0.0.1 and localhost."""
    untrusted: Identity
    """For 127.0.0.1 too, but signed by another CA."""
    wrong_name: Identity
    """Signed by ``ca``, for another host name only."""

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA (hostnames checked)."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_material(directory: Path) -> Material:
    directory.mkdir(parents=True, exist_ok=True)
    if importlib.util.find_spec("cryptography") is not None:
        return _with_cryptography(directory)
    return _with_openssl(directory)


# ------------------------------------------------------------------------ openssl CLI


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.skip("neither the cryptography package nor the openssl command is available")
    subprocess.run(
        [binary, *args], cwd=cwd, check=True, capture_output=True, timeout=60, stdin=None
    )


def _openssl_ca(directory: Path, name: str, subject: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-keyout", key.name, "-out", cert.name, "-days", "2",
        "-subj", f"/CN={subject}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return cert, key


def _openssl_server(
    directory: Path, name: str, ca: tuple[Path, Path], alt_names: str, serial: int
) -> Identity:
    cert, key, csr = (directory / f"{name}{ext}" for ext in (".pem", ".key", ".csr"))
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        f"subjectAltName={alt_names}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _openssl(
        "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr.name, "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-set_serial", str(serial), "-days", "2", "-extfile", extensions.name,
        "-out", cert.name,
        cwd=directory,
    )  # fmt: skip
    return Identity(cert, key)


def _with_openssl(directory: Path) -> Material:
    # The same subjects as the cryptography path's, so tests see one set of names.
    ca = _openssl_ca(directory, "ca", "jackstalk test CA")
    rogue = _openssl_ca(directory, "rogue-ca", "jackstalk rogue CA")
    local = "IP:127.0.0.1,DNS:localhost"
    return Material(
        ca=ca[0],
        good=_openssl_server(directory, "good", ca, local, 1001),
        untrusted=_openssl_server(directory, "untrusted", rogue, local, 1002),
        wrong_name=_openssl_server(directory, "wrong-name", ca, "DNS:elsewhere.invalid", 1003),
    )


# ------------------------------------------------------------------------ cryptography


def _with_cryptography(directory: Path) -> Material:
    # Imported by name so that type checking does not need the package installed.
    x509: Any = importlib.import_module("cryptography.x509")
    oid: Any = importlib.import_module("cryptography.x509.oid")
    hashes: Any = importlib.import_module("cryptography.hazmat.primitives.hashes")
    ec: Any = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ec")
    serialization: Any = importlib.import_module("cryptography.hazmat.primitives.serialization")
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> Any:
        return x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, common)])

    def write(stem: str, cert: Any, key: Any) -> Identity:
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Identity(cert_path, key_path)

    def builder(subject: Any, issuer: Any, public_key: Any) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
        )

    def ca(common: str) -> tuple[Any, Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = name(common)
        cert = (
            builder(subject, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cert, key, subject

    def server(stem: str, issuer: tuple[Any, Any, Any], alt_names: list[Any]) -> Identity:
        _, issuer_key, issuer_name = issuer
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            builder(name(stem), issuer_name, key.public_key())
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                False,
            )
            .sign(issuer_key, hashes.SHA256())
        )
        return write(stem, cert, key)

    trusted = ca("jackstalk test CA")
    rogue = ca("jackstalk rogue CA")
    write("ca", trusted[0], trusted[1])
    write("rogue-ca", rogue[0], rogue[1])
    local = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    return Material(
        ca=directory / "ca.pem",
        good=server("good", trusted, local),
        untrusted=server("untrusted", rogue, local),
        wrong_name=server("wrong-name", trusted, [x509.DNSName("elsewhere.invalid")]),
    )


# ------------------------------------------------------------------------ stunnel


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> bool:
    """Try to connect until stunnel accepts (True) or exits (False); bounded in attempts."""
    for _ in range(READY_ATTEMPTS):
        if process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            continue
        return True
    return False


@contextmanager
def stunnel(
    upstream: tuple[str, int], identity: Identity, directory: Path
) -> Iterator[tuple[str, int]]:
    """Run stunnel on a free loopback port, terminating TLS in front of ``upstream``;
    yield its address."""
    binary = require_stunnel()
    for _attempt in range(5):  # another process may take the port before stunnel binds it
        port = _free_port()
        config = directory / f"stunnel-{port}.conf"
        config.write_text(
            "foreground = yes\n"
            "pid =\n"
            "syslog = no\n"
            f"output = {directory / f'stunnel-{port}.log'}\n"
            "debug = 4\n"
            "socket = l:TCP_NODELAY=1\n"
            "socket = r:TCP_NODELAY=1\n"
            "[beanstalkd]\n"
            f"accept = 127.0.0.1:{port}\n"
            f"connect = {upstream[0]}:{upstream[1]}\n"
            f"cert = {identity.cert}\n"
            f"key = {identity.key}\n"
        )
        process = subprocess.Popen(
            [binary, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if _wait_listening(process, port):
                yield ("127.0.0.1", port)
                return
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    raise RuntimeError(f"stunnel did not start; see the logs in {directory}")
