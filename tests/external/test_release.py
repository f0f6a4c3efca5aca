"""A release a user can install: sdist and wheel build, their metadata renders, and the wheel installed
into a fresh venv outside the checkout runs: lines in, scrape out, through the installed console script."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from bridge import __version__
from tests.conftest import _listening, extra_distributions, free_port, require

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_the_wheel_builds_installs_and_serves(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], capture_output=True, text=True, timeout=400
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert [w.name for w in wheels] == [f"statsd_bridge-{__version__}-py3-none-any.whl"] and len(sdists) == 1
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in licence
    with zipfile.ZipFile(wheels[0]) as wheel:
        assert wheel.read(f"statsd_bridge-{__version__}.dist-info/licenses/LICENSE").decode() == licence
    with tarfile.open(sdists[0]) as sdist:
        packed = sdist.extractfile(f"statsd_bridge-{__version__}/LICENSE")
        assert packed is not None and packed.read().decode() == licence
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    home = tmp_path / "venv"  # a fresh venv, outside the checkout
    venv.create(home, with_pip=True)
    installed = subprocess.run(
        [str(home / "bin" / "pip"), "install", "--quiet", str(wheels[0])], capture_output=True, text=True, timeout=400
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    program = str(home / "bin" / "statsd-bridge")
    version = subprocess.run([program, "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.stdout.startswith(f"statsd-bridge {__version__} (Python ")

    process = subprocess.Popen(
        [program, "--statsd.listen-udp=127.0.0.1:0", "--statsd.listen-tcp=", "--web.listen-address=127.0.0.1:0"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        addresses: dict[str, tuple[str, int]] = {}
        started = threading.Event()

        def read_log() -> None:
            for line in process.stderr:
                listener, address = _listening(line)
                if listener:
                    host, _, port = address.rpartition(":")
                    addresses[listener] = (host, int(port))
                if "statsd-bridge started" in line:
                    started.set()

        threading.Thread(target=read_log, daemon=True).start()
        assert started.wait(30), "the installed bridge did not start"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"release.smoke:2|c|#from:wheel", addresses["udp"])
        deadline, page = time.monotonic() + 10, ""
        while 'release_smoke{from="wheel"} 2' not in page and time.monotonic() < deadline:
            host, port = addresses["web"]
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
                page = response.read().decode()
            time.sleep(0.1)
        assert 'release_smoke{from="wheel"} 2' in page
        (build_info,) = [line for line in page.splitlines() if line.startswith("statsd_bridge_build_info{")]
        assert build_info.endswith(f'version="{__version__}"}} 1')
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.timeout(600)
def test_make_run_on_a_fresh_clone_installs_the_runtime_only(tmp_path, record_property):
    """`make run` in a fresh copy of the tracked files: the bridge answers, and its venv holds no tool of any extra
    (test, lint, release)."""
    make = require("make")
    clone = tmp_path / "clone"  # the tracked files, as a clone has them
    for path in subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split():
        if (ROOT / path).is_file():
            (clone / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, clone / path)
    web_port = free_port()
    args = f"--web.listen-address=127.0.0.1:{web_port} --statsd.listen-udp=127.0.0.1:0 --statsd.listen-tcp="
    started = time.monotonic()
    process = subprocess.Popen(
        [make, "run", "VENV=.venv", f"PYTHON={sys.executable}", f"ARGS={args}"],
        cwd=clone,
        # not the settings of a make this test may run under (make test-pythons passes VENV down)
        env={name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # make and the bridge it starts, stopped together
    )
    try:
        page = ""
        while not page:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=5) as response:
                    page = response.read().decode()
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() - started < 300, "make run served nothing in 5 minutes"
                time.sleep(0.2)
        answered = time.monotonic() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert "statsd_bridge_build_info" in page
    listing = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    installed = {re.sub(r"[-_.]+", "-", line.split("==")[0].lower()) for line in listing.split()}
    assert "statsd-bridge" in installed
    tools = extra_distributions()
    assert {"pytest", "ruff", "twine"} <= tools
    assert not installed & tools, installed & tools
    record_property("summary", f"make run on a fresh clone: first scrape after {answered:.1f} s, downloads included")
