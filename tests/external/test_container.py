"""The Dockerfile, built and run for real: a Debian base made by mmdebstrap (no registry image can be
pulled here), the image built on it by buildah, the bridge run inside it with the argument list of the
prometheus-community Helm chart, fed over UDP from outside and scraped, then stopped as Kubernetes stops a
pod. The build runs once per session (every test here is in one xdist group)."""

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

import bridge
from tests.conftest import extra_distributions, free_port, parse_samples, require

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("container")
# Kubernetes' default terminationGracePeriodSeconds: SIGTERM, then SIGKILL after this long
GRACE_SECONDS = 30
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SOURCE, REVISION = "https://example.org/statsd-bridge.git", "0123456789abcdef"


def run(*command: str, timeout: float = 600) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


class Image(NamedTuple):
    name: str
    summary: str  # how long the build took and what the image weighs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The image built from the Dockerfile on a local Debian base; removed afterwards. Built as docs/deployment.md
    builds it: the context alone, the file found by its name (Docker reads only `Dockerfile`; buildah and podman
    would take a `Containerfile` first, so there must be none)."""
    assert not (ROOT / "Containerfile").exists(), "buildah would build it, Docker the Dockerfile"
    mmdebstrap = require("mmdebstrap")
    buildah = require("buildah")
    podman = require("podman")
    workdir = tmp_path_factory.mktemp("image")
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    base, built = f"localhost/statsd-bridge-test-base:{tag}", f"localhost/statsd-bridge-test:{tag}"
    run(mmdebstrap, "--quiet", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
        "bookworm", str(workdir / "rootfs.tar"))  # fmt: skip
    run(podman, "import", str(workdir / "rootfs.tar"), base)
    # the build reaches the package index with the host's certificate authorities (a proxy may sit between)
    certificates = ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro", f"--build-arg=PIP_CERT={CA_BUNDLE}"]
    started = time.monotonic()
    run(buildah, "bud", "--isolation", "chroot", "--layers=false", *(certificates if CA_BUNDLE.exists() else []),
        f"--build-arg=BASE={base}", f"--build-arg=SOURCE={SOURCE}", f"--build-arg=REVISION={REVISION}",
        "-t", built, str(ROOT))  # fmt: skip
    build_seconds = time.monotonic() - started
    sizes = {name: json.loads(run(podman, "image", "inspect", name))[0]["Size"] for name in (base, built)}
    summary = (
        f"container image: built in {build_seconds:.0f} s; {sizes[built] / 1e6:.0f} MB, of which the bridge and its "
        f"dependencies {(sizes[built] - sizes[base]) / 1e6:.0f} MB on a {sizes[base] / 1e6:.0f} MB Debian base"
    )
    yield Image(built, summary)
    subprocess.run([podman, "rmi", "--force", built, base], capture_output=True, timeout=120)


@pytest.fixture
def image(built: Image) -> str:
    return built.name


def inspect(image: str) -> dict:
    return json.loads(run(require("podman"), "image", "inspect", image))[0]["Config"]


def test_the_image_runs_the_bridge_as_nobody_with_its_labels(built, record_property):
    record_property("summary", built.summary)
    config = inspect(built.name)
    assert config["Entrypoint"] == ["statsd-bridge"]
    assert config["User"] == "65534:65534"
    assert {"9125/udp", "9125/tcp", "9102/tcp"} <= set(config["ExposedPorts"])
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == bridge.__version__
    assert labels["org.opencontainers.image.source"] == SOURCE
    assert labels["org.opencontainers.image.revision"] == REVISION


def in_container(image: str, *command: str, volumes: tuple[str, ...] = ()) -> list[str]:
    """The buildah command that runs `command` in a new container of `image` on the host's network."""
    return ["buildah", "run", "--isolation", "chroot", *(f"-v={volume}" for volume in volumes), image, "--", *command]


def normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


LIST_DISTRIBUTIONS = "import importlib.metadata as m; print(*(d.metadata['Name'].lower() for d in m.distributions()))"


def test_the_image_holds_the_runtime_dependencies_only(image):
    container = run("buildah", "from", image).strip()
    try:
        listing = run(*in_container(container, "python3", "-c", LIST_DISTRIBUTIONS))
        compilers = subprocess.run(
            in_container(container, "sh", "-c", "command -v gcc cc"), capture_output=True, text=True, timeout=60
        )
    finally:
        run("buildah", "rm", container)
    installed = {normalized(name) for name in listing.split()}
    assert "statsd-bridge" in installed and "prometheus-client" in installed
    assert not installed & {"pip", "setuptools", "wheel", *extra_distributions()}, installed
    assert compilers.stdout == "", compilers.stdout


def helm_chart_args(web_port: int, statsd_port: int) -> list[str]:
    """What the prometheus-community chart's Deployment passes (its defaults, a mapping file set), with the ports
    its values choose."""
    return [
        f"--web.listen-address=:{web_port}",
        "--web.telemetry-path=/metrics",
        f"--statsd.listen-udp=:{statsd_port}",
        f"--statsd.listen-tcp=:{statsd_port}",
        "--statsd.cache-size=1000",
        "--statsd.event-queue-size=10000",
        "--statsd.event-flush-threshold=1000",
        "--statsd.event-flush-interval=200ms",
        "--statsd.mapping-config=/etc/prometheus-statsd-exporter/statsd-mapping.conf",
    ]


def bridge_under(ancestor: int) -> int | None:
    """The bridge's process among the descendants of `ancestor` (buildah runs it under a helper of its own)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not (argv[0].endswith(b"/python3") and argv[1:2] == [b"/opt/statsd-bridge/bin/statsd-bridge"]):
                continue
            pid = int(entry.name)
            while pid > 1:
                pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if pid == ancestor:
                    return int(entry.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_the_helm_charts_args_run_the_bridge_in_the_image(image, tmp_path, record_property):
    mapping = tmp_path / "statsd-mapping.conf"
    mapping.write_text('mappings:\n- match: "deploys.*"\n  name: deploys_total\n  labels:\n    service: "$1"\n')
    mapping.chmod(0o644)
    web_port, statsd_port = free_port(), free_port()
    container = run("buildah", "from", image).strip()
    entrypoint = inspect(image)["Entrypoint"]
    started = time.monotonic()
    process = subprocess.Popen(
        in_container(container, *entrypoint, *helm_chart_args(web_port, statsd_port),
                     volumes=(f"{mapping}:/etc/prometheus-statsd-exporter/statsd-mapping.conf:ro",)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = started + 60
        while True:
            try:
                first_scrape = get(f"http://127.0.0.1:{web_port}/metrics")
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the bridge did not start"
                time.sleep(0.05)
        to_first_scrape = time.monotonic() - started
        assert "statsd_bridge_build_info" in first_scrape
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"deploys.api:1|c\ndeploys.api:2|c\ndeploys.web:1|c", ("127.0.0.1", statsd_port))
        with socket.create_connection(("127.0.0.1", statsd_port)) as tcp:
            tcp.sendall(b"deploys.web:4|c\n")
        deadline = time.monotonic() + 10
        while True:
            samples = parse_samples(get(f"http://127.0.0.1:{web_port}/metrics"))
            if samples.get(("deploys_total", frozenset({("service", "web")}))) == 5 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert samples[("deploys_total", frozenset({("service", "api")}))] == 3
        assert samples[("deploys_total", frozenset({("service", "web")}))] == 5
        assert get(f"http://127.0.0.1:{web_port}/-/healthy").strip() == "OK"
        # Kubernetes sends SIGTERM to the container's process, the bridge itself (the entry point, no shell)
        bridge_pid = bridge_under(process.pid)
        assert bridge_pid is not None
        assert Path(f"/proc/{bridge_pid}/status").read_text().count("\t65534") >= 2  # Uid: and Gid: lines
        stopping = time.monotonic()
        os.kill(bridge_pid, signal.SIGTERM)
        returncode = process.wait(timeout=GRACE_SECONDS)
        stopped_in = time.monotonic() - stopping
        output = process.stdout.read() if process.stdout else ""
    finally:
        if process.poll() is None:
            process.kill()
        subprocess.run(["buildah", "rm", container], capture_output=True, timeout=60)
    assert returncode == 0, output
    assert 'msg="shutting down"' in output
    record_property(
        "summary",
        f"container image: first scrape {to_first_scrape:.2f} s after start, exit {stopped_in:.2f} s after SIGTERM",
    )
