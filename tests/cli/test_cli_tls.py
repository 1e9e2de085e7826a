"""TLS from the command line: the ``--tls*`` options build the ``ssl.SSLContext`` the client
gets, and the commands work through stunnel in front of a real beanstalkd (the TLS test
setup of tests/reliability: throw-away certificates, stunnel on a free loopback port)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clikit import jackstalk_cli, load_tlskit, show

import jackstalk
from jackstalk.__main__ import build_parser, main
from jackstalk._app.cli import EXIT_USAGE, CliError, tls_context
from jackstalk.testing import BeanstalkdServer

tlskit = load_tlskit()


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A test CA, and server certificates signed by it (for 127.0.0.1) and by another CA."""
    made: Any = tlskit.make_material(tmp_path_factory.mktemp("cli-tls"))
    return made


@pytest.fixture
def tls_address(
    beanstalkd: BeanstalkdServer, material: Any, tmp_path: Path
) -> Iterator[tuple[str, int]]:
    """stunnel, with the good certificate, in front of the test's beanstalkd."""
    address = beanstalkd.address
    assert isinstance(address, tuple)
    with tlskit.stunnel(address, material.good, tmp_path) as front:
        yield front


def context_for(*options: str) -> ssl.SSLContext | None:
    """The context ``jackstalk stats OPTIONS`` would connect with (no connection made)."""
    args = build_parser().parse_args(["stats", *options])
    return tls_context(args)


# ------------------------------------------------------------------------ no network


def test_no_tls_option_means_plain_tcp() -> None:
    assert context_for() is None
    assert context_for("--address", "127.0.0.1:11300") is None


def test_tls_verifies_against_the_system_cas_and_the_host_name() -> None:
    context = context_for("--tls")
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_tls_ca_trusts_only_the_given_ca(material: Any) -> None:
    context = context_for("--tls-ca", str(material.ca))  # implies --tls
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    certificates: list[Any] = context.get_ca_certs()
    subjects = [dict(pair[0] for pair in cert["subject"]) for cert in certificates]
    assert subjects == [{"commonName": "jackstalk test CA"}]


def test_tls_insecure_checks_nothing() -> None:
    context = context_for("--tls-insecure")
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)


def test_a_client_certificate_is_loaded(material: Any, tmp_path: Path) -> None:
    cert, key = material.good.cert, material.good.key
    assert context_for("--tls-cert", str(cert), "--tls-key", str(key)) is not None
    both = tmp_path / "both.pem"  # the key in the certificate's file
    both.write_bytes(Path(cert).read_bytes() + Path(key).read_bytes())
    assert context_for("--tls-cert", str(both)) is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tls-key", "client.key"], "--tls-key needs --tls-cert"),
        (["--tls-insecure", "--tls-ca", "ca.pem"], "--tls-insecure checks no certificate"),
        (["--tls-ca", "/nonexistent/ca.pem"], "cannot load --tls-ca /nonexistent/ca.pem: No such"),
        (["--tls-cert", "/nonexistent/c.pem"], "cannot load --tls-cert /nonexistent/c.pem: No"),
    ],
)
def test_contradictions_and_missing_files_are_usage_errors(
    options: list[str], message: str
) -> None:
    with pytest.raises(CliError) as raised:
        context_for(*options)
    assert raised.value.status == EXIT_USAGE
    assert str(raised.value).startswith(message)


def test_a_file_that_is_not_pem_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    for option in ("--tls-ca", "--tls-cert"):
        assert main(["stats", option, str(junk), "--address", "127.0.0.1:1"]) == EXIT_USAGE
        _, err = capsys.readouterr()
        assert err.startswith("usage: jackstalk stats ")
        assert f"cannot load {option} {junk}: " in err.splitlines()[-1]
        assert "Traceback" not in err


def test_tls_to_a_unix_socket_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tubes", "--tls", "--address", "/nonexistent/beanstalkd.sock"]) == EXIT_USAGE
    _, err = capsys.readouterr()
    assert err.splitlines()[-1].endswith(
        "TLS needs a HOST:PORT address, not /nonexistent/beanstalkd.sock"
    )


def test_help_says_tls_insecure_is_insecure() -> None:
    text = " ".join(jackstalk_cli(None, "stats", "--help").stdout.split())
    for option in ("--tls ", "--tls-ca FILE", "--tls-cert FILE", "--tls-key FILE"):
        assert option in text
    assert "--tls-insecure INSECURE: " in text


# ------------------------------------------------------------------------ through stunnel


def test_commands_over_tls(tls_address: tuple[str, int], material: Any) -> None:
    tls = ["--address", show(tls_address), "--tls-ca", str(material.ca)]
    result = jackstalk_cli(None, "put", "secure", "over tls", *tls)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")
    result = jackstalk_cli(None, "peek", "ready", "secure", "--json", *tls)
    assert json.loads(result.stdout) == {"id": 1, "body": "over tls"}
    result = jackstalk_cli(None, "top", "--json", *tls)
    assert json.loads(result.stdout)["tubes"]["secure"]["current-jobs-ready"] == 1


def test_an_unverified_certificate_cannot_connect(
    tls_address: tuple[str, int], material: Any, beanstalkd: BeanstalkdServer
) -> None:
    """The test CA is not among the system's: ``--tls`` refuses the server (status 3), and
    nothing reaches beanstalkd."""
    result = jackstalk_cli(None, "put", "secure", "leak?", "--tls", "--address", show(tls_address))
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr.startswith(f"jackstalk: cannot connect to {show(tls_address)}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    with jackstalk.Client(beanstalkd.address) as client:
        assert client.stats()["cmd-put"] == 0


def test_tls_insecure_connects_without_checking(tls_address: tuple[str, int]) -> None:
    result = jackstalk_cli(
        None, "tubes", "--json", "--tls-insecure", "--address", show(tls_address)
    )
    assert (result.returncode, json.loads(result.stdout)) == (0, ["default"])


def test_plain_tcp_to_the_tls_port_fails_cleanly(tls_address: tuple[str, int]) -> None:
    """Forgetting ``--tls``: stunnel hangs up on the plain command; status 3, one line."""
    result = jackstalk_cli(None, "tubes", "--address", show(tls_address))
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr.startswith(f"jackstalk: connection to {show(tls_address)} lost: ")
    assert len(result.stderr.splitlines()) == 1
