"""jackstalk.testing: the servers it starts, their addresses, and their errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import jackstalk
from jackstalk.testing import BeanstalkdServer, embedded_server, run_beanstalkd


def test_real_server_addresses(beanstalkd: BeanstalkdServer, tmp_path: Path) -> None:
    assert beanstalkd.host == "127.0.0.1"
    assert beanstalkd.port > 0
    path = str(tmp_path / "b.sock")
    with run_beanstalkd(unix_path=path) as server:
        assert (server.host, server.port, server.address) == ("", 0, path)
        with jackstalk.Client(server.address) as client:
            assert client.tubes() == ["default"]
    assert not Path(path).exists()  # the socket file is removed afterwards


def test_missing_binary_is_a_clear_error() -> None:
    with (
        pytest.raises(FileNotFoundError, match="not on PATH"),
        run_beanstalkd(binary="no-such-beanstalkd"),
    ):
        pass  # pragma: no cover - never reached


def test_embedded_server_addresses_drain_and_bind_errors(tmp_path: Path) -> None:
    with embedded_server() as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        with jackstalk.Client(server.address) as client:
            client.put("before")
            server.drain()
            with pytest.raises(jackstalk.DrainingError):
                client.put("after")
            assert client.stats()["draining"] is True
        # The port is taken: a second server on it fails at once, with the OS's error.
        with pytest.raises(OSError, match="in use"), embedded_server(port=server.port):
            pass  # pragma: no cover - never reached
    path = str(tmp_path / "e.sock")
    with embedded_server(unix_path=path) as unix:
        assert (unix.host, unix.port) == ("", 0)
        with jackstalk.Client(unix.address) as client:
            assert client.using() == "default"


def test_listener_handed_over_is_left_open() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with run_beanstalkd(listener=listener) as server:
            assert server.address == listener.getsockname()[:2]
        assert listener.fileno() != -1
