"""A unit test starts no program and opens no network socket: those tests belong in tests/integration
(the bridge and real sockets) or tests/external (other programs). Enforced here, for every unit test."""

import socket
import subprocess

import pytest


def _refuse(what: str):
    def refused(*args, **kwargs):
        raise AssertionError(f"a unit test {what}: move it to tests/integration or tests/external")

    return refused


@pytest.fixture(autouse=True)
def no_process_and_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("starts no program"))
    # an event loop's own socket pair stays allowed: it neither binds nor connects
    for method in ("bind", "connect", "connect_ex", "sendto", "listen"):
        monkeypatch.setattr(socket.socket, method, _refuse("opens no network socket"))
