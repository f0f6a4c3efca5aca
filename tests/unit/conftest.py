"""A unit test starts no program and opens no network socket: those tests belong in tests/integration
(the bridge and real sockets) or tests/external (other programs). Enforced here, for every unit test."""

import asyncio
import os
import socket
import subprocess

import pytest

_getaddrinfo = socket.getaddrinfo


def _refuse(what: str):
    def refused(*args, **kwargs):
        raise AssertionError(f"a unit test {what}: move it to tests/integration or tests/external")

    return refused


def _numeric_only(host, *args, **kwargs):
    """An address written as numbers is read without asking anyone; a name would ask a resolver."""
    try:
        return _getaddrinfo(host, *args[:3], flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        raise AssertionError(f"a unit test resolves no name ({host!r}): move it to tests/integration") from None


@pytest.fixture(autouse=True)
def no_process_and_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    starts_no_program = _refuse("starts no program")
    monkeypatch.setattr(subprocess.Popen, "__init__", starts_no_program)
    for name in ("system", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve", "execvp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, starts_no_program)
    # uvloop starts its processes through libuv, not subprocess: refused where asyncio is asked
    for name in ("create_subprocess_exec", "create_subprocess_shell"):
        monkeypatch.setattr(asyncio, name, starts_no_program)
    # an event loop's own socket pair stays allowed: it neither binds nor connects
    for method in ("bind", "connect", "connect_ex", "sendto", "sendmsg", "listen"):
        monkeypatch.setattr(socket.socket, method, _refuse("opens no network socket"))
    monkeypatch.setattr(socket, "getaddrinfo", _numeric_only)
