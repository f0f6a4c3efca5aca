"""The unit tests' guard (tests/unit/conftest.py) holds: a unit test that starts a program or opens a
network socket fails, whatever the program or the address."""

import asyncio
import socket
import subprocess
import sys

import pytest


def test_a_unit_test_can_start_no_program():
    with pytest.raises(AssertionError, match="starts no program"):
        subprocess.run([sys.executable, "-c", "pass"])

    async def start() -> None:
        await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")

    with pytest.raises(AssertionError, match="starts no program"):
        asyncio.run(start())


@pytest.mark.parametrize("use", [lambda s: s.bind(("127.0.0.1", 0)), lambda s: s.connect(("127.0.0.1", 9))])
def test_a_unit_test_can_open_no_network_socket(use):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(AssertionError, match="no network"):
        use(sock)


def test_an_event_loop_still_runs():
    assert asyncio.run(asyncio.sleep(0, "ran")) == "ran"
