"""The unit tests' guard (tests/unit/conftest.py) holds: a unit test that starts a program, opens a network
socket or resolves a name fails, by whichever door it tries."""

import asyncio
import os
import socket
import subprocess
import sys

import pytest


async def _start_through_asyncio() -> None:
    await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")


@pytest.mark.parametrize(
    "start",
    [
        lambda: subprocess.run([sys.executable, "-c", "pass"]),
        lambda: asyncio.run(_start_through_asyncio()),
        lambda: os.system("true"),
        lambda: os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], os.environ),
        lambda: os.fork(),
    ],
    ids=["subprocess", "asyncio", "system", "posix_spawn", "fork"],
)
def test_a_unit_test_can_start_no_program(start):
    with pytest.raises(AssertionError, match="starts no program"):
        start()


def test_a_unit_test_can_start_no_program_on_uvloop():
    uvloop = pytest.importorskip("uvloop")
    with pytest.raises(AssertionError, match="starts no program"):
        uvloop.run(_start_through_asyncio())


@pytest.mark.parametrize(
    "use",
    [
        lambda s: s.bind(("127.0.0.1", 0)),
        lambda s: s.connect(("127.0.0.1", 9)),
        lambda s: s.sendto(b"x:1|c", ("127.0.0.1", 9)),
        lambda s: s.sendmsg([b"x:1|c"], [], 0, ("127.0.0.1", 9)),
    ],
    ids=["bind", "connect", "sendto", "sendmsg"],
)
def test_a_unit_test_can_open_no_network_socket(use):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(AssertionError, match="no network"):
        use(sock)


def test_a_unit_test_resolves_no_name_but_reads_a_numeric_address():
    with pytest.raises(AssertionError, match="resolves no name"):
        socket.getaddrinfo("example.com", 80)
    assert socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_DGRAM)[0][4] == ("127.0.0.1", 80)


def test_an_event_loop_still_runs():
    assert asyncio.run(asyncio.sleep(0, "ran")) == "ran"
