"""deploy/: each file checked by the tool made for it, and the bridge flags in it by the bridge itself."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import bridge
from tests.conftest import Prometheus, free_port, free_udp_and_tcp_port, promtool, require

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
UNIT = DEPLOY / "systemd" / "statsd-bridge.service"
KUBERNETES_VERSION = "1.30.0"  # internalTrafficPolicy is GA since 1.26


def bridge_accepts(args: list[str], mapping_text: str, tmp_path: Path) -> None:
    """The flags, with the mapping file swapped for a local copy, pass the bridge's own --check-config."""
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(mapping_text)
    args = [f"--mapping-config={mapping}" if arg.startswith("--mapping-config=") else arg for arg in args]
    result = subprocess.run(
        [sys.executable, "-m", "bridge", *args, "--check-config"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def exec_start(unit_text: str) -> list[str]:
    joined = unit_text.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_systemd_unit_verifies(tmp_path):
    analyze = require("systemd-analyze")
    result = subprocess.run(
        [analyze, "verify", str(installed_unit(tmp_path))], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "statsd-bridge" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_systemd_unit_flags_are_the_bridges(tmp_path):
    command = exec_start(UNIT.read_text())
    assert command[0] == "/usr/local/bin/statsd-bridge"
    mapping = (DEPLOY.parent / "mappings" / "concourse.yml").read_text()
    bridge_accepts(command[1:], mapping, tmp_path)


def installed_unit(tmp_path: Path) -> Path:
    """The unit as shipped, its ExecStart pointed at the installed program (systemd-analyze checks it exists)."""
    installed = shutil.which("statsd-bridge") or str(Path(sys.executable).parent / "statsd-bridge")
    unit = tmp_path / "statsd-bridge.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/statsd-bridge", installed))
    return unit


def test_systemd_unit_is_hardened(tmp_path, record_property):
    """systemd-analyze security rates the unit's sandbox from 0 (locked down) to 10 (exposed)."""
    analyze = require("systemd-analyze")
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(installed_unit(tmp_path))], capture_output=True, text=True
    )
    score = re.search(r"Overall exposure level for statsd-bridge.service: ([0-9.]+) (\w+)", result.stdout)
    assert score, result.stdout + result.stderr
    record_property(
        "summary", f"systemd-analyze security: exposure {score[1]} {score[2]} (0 is locked down, 10 exposed)"
    )
    assert float(score[1]) <= 2.0, result.stdout
    unit = UNIT.read_text()
    for setting in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "RestrictAddressFamilies=",
                    "ExecReload=/bin/kill -HUP $MAINPID", "SystemCallFilter=@system-service"):  # fmt: skip
        assert f"\n{setting}" in unit, setting


def system_calls_of(group: str, analyze: str) -> set[str]:
    """The system calls a SystemCallFilter= group allows, its nested groups expanded."""
    groups: dict[str, list[str]] = {}
    for line in subprocess.run([analyze, "syscall-filter"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("@"):
            members = groups[line.split()[0]] = []
        elif line.strip() and not line.strip().startswith("#"):
            members.append(line.strip())
    calls, pending = set(), [group]
    while pending:
        for member in groups[pending.pop()]:
            (pending.append if member.startswith("@") else calls.add)(member)
    return calls


def test_the_bridge_makes_only_the_system_calls_its_unit_allows(tmp_path):
    """The unit's SystemCallFilter= holds the bridge to @system-service. No systemd runs the unit here, so the
    bridge runs under strace with the unit's flags instead, through everything it does (start, UDP, TCP and
    Unix datagrams, scrapes, the status page, a SIGHUP reload, SIGTERM), and every call it made must be allowed."""
    analyze = require("systemd-analyze")
    strace = require("strace")
    allowed = system_calls_of("@system-service", analyze)
    udp, web = free_udp_and_tcp_port(), free_port()
    socket_path, mapping = tmp_path / "dsd.socket", tmp_path / "mapping.yml"
    mapping.write_text((DEPLOY.parent / "mappings" / "concourse.yml").read_text())
    replaced = {"--statsd-listen-udp": f"127.0.0.1:{udp}", "--statsd-listen-tcp": f"127.0.0.1:{udp}",
                "--statsd-listen-unixgram": str(socket_path), "--web-listen-address": f"127.0.0.1:{web}",
                "--mapping-config": str(mapping)}  # fmt: skip
    args = [f"{arg.split('=')[0]}={replaced[arg.split('=')[0]]}" if arg.split("=")[0] in replaced else arg
            for arg in exec_start(UNIT.read_text())[1:]]  # fmt: skip
    trace = tmp_path / "trace"
    process = subprocess.Popen(
        [strace, "-f", "-qq", "-o", str(trace), sys.executable, "-m", "bridge", *args],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "stderr").open("w"),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{web}/-/ready", timeout=5).read()
                break
            except OSError:
                started = process.poll() is None and time.monotonic() < deadline
                assert started, "the bridge did not start: " + (tmp_path / "stderr").read_text()[-2000:]
                time.sleep(0.2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"concourse.builds.finished:1|c|#team:main", ("127.0.0.1", udp))
        with socket.create_connection(("127.0.0.1", udp)) as tcp:
            tcp.sendall(b"concourse.builds.finished:1|c|#team:other\n")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unix:
            unix.sendto(b"concourse.builds.finished:1|c|#team:unix", str(socket_path))
        (bridge_pid,) = map(int, Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split())
        os.kill(bridge_pid, signal.SIGHUP)
        for path in ("/metrics", "/", "/-/healthy"):
            urllib.request.urlopen(f"http://127.0.0.1:{web}{path}", timeout=10).read()
        time.sleep(1)  # a periodic step or two: the sweep, the reaper
        os.kill(bridge_pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # strace exits with the status of the program it traced
    finally:
        if process.poll() is None:
            process.kill()
    made = set(re.findall(r"^\d+ +(\w+)\(", trace.read_text(), re.M))
    assert {"epoll_wait", "recvmmsg", "sendto", "bind"} & made, made  # strace saw the bridge work
    assert made <= allowed, f"outside @system-service: {sorted(made - allowed)}"


def kubernetes_documents() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [(path.name, document) for document in yaml.safe_load_all(path.read_text()) if document]
    return documents


def by_kind(kind: str) -> list[dict]:
    return [document for _, document in kubernetes_documents() if document["kind"] == kind]


# The Prometheus Operator's ServiceMonitor is a custom resource, which kubernetes-validate has no schema for;
# test_the_servicemonitor_scrapes_every_bridge checks it against the Services.
BUILT_IN = [(name, document) for name, document in kubernetes_documents() if document["kind"] != "ServiceMonitor"]


@pytest.mark.parametrize("name,document", BUILT_IN, ids=lambda value: str(value)[:30])
def test_kubernetes_manifests_validate(name, document):
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises on an unknown or bad field


def test_the_manifests_are_a_per_node_and_a_central_bridge():
    kinds = sorted(document["kind"] for _, document in kubernetes_documents())
    assert kinds == ["ConfigMap", "DaemonSet", "Deployment", "Service", "Service", "ServiceMonitor"]


WORKLOADS = by_kind("DaemonSet") + by_kind("Deployment")


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda workload: workload["kind"])
def test_the_workload_runs_the_image_with_the_configmaps_mapping(workload, tmp_path):
    (configmap,) = by_kind("ConfigMap")
    pod = workload["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == f"statsd-bridge:{bridge.__version__}"  # what the docs' `docker build -t` names
    bridge_accepts(container["args"], configmap["data"]["mapping.yml"], tmp_path)
    # the ConfigMap mounted as a directory (a subPath mount never sees an update), and watched
    (mapping_volume,) = [volume for volume in pod["spec"]["volumes"] if "configMap" in volume]
    assert mapping_volume["configMap"]["name"] == configmap["metadata"]["name"]
    (mount,) = [mount for mount in container["volumeMounts"] if mount["name"] == mapping_volume["name"]]
    assert "subPath" not in mount and "--watch-mapping-config" in container["args"]
    assert f"--mapping-config={mount['mountPath']}/mapping.yml" in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert {"requests", "limits"} <= set(container["resources"]) and "memory" in container["resources"]["limits"]
    # each workload's Service selects its pods, and only those
    services = [
        service
        for service in by_kind("Service")
        if service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    ]
    (service,) = services
    port_names = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    assert workload["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda workload: workload["kind"])
def test_the_workload_runs_unprivileged_on_a_read_only_root(workload):
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert not security.get("privileged") and "add" not in security["capabilities"]
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")


def test_the_per_node_service_keeps_traffic_on_the_node():
    (daemonset,) = by_kind("DaemonSet")
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    (service,) = [service for service in by_kind("Service") if service["spec"]["selector"].items() <= labels.items()]
    assert service["spec"]["internalTrafficPolicy"] == "Local"


def test_the_servicemonitor_scrapes_every_bridge():
    (monitor,) = by_kind("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [
        service
        for service in by_kind("Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ]
    assert len(selected) == len(WORKLOADS)
    (endpoint,) = monitor["spec"]["endpoints"]
    for service in selected:
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def promtool_check_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), "check", "config", str(path)], capture_output=True, text=True, timeout=60)


KUBERNETES_SD_MISSING = "field kubernetes_sd_configs not found"  # Debian builds Prometheus without it


def test_prometheus_scrape_config_checks_and_keeps_only_bridge_pods(tmp_path, bridge_factory):
    """promtool checks the file as shipped where its build knows Kubernetes discovery. Debian's does
    not, so the same relabelling then runs in a real Prometheus over file-discovered targets that
    carry the labels Kubernetes discovery gives a pod: only the bridge's metrics port is scraped."""
    original = KUBERNETES / "prometheus.yml"
    checked = promtool_check_config(original)
    if KUBERNETES_SD_MISSING not in checked.stdout + checked.stderr:
        assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(original.read_text())
    job = config["scrape_configs"][0]
    (discovery,) = job.pop("kubernetes_sd_configs")
    assert discovery["role"] == "pod" and discovery["namespaces"]["names"] == ["monitoring"]
    bridge = bridge_factory()
    host, port = bridge.addresses["web"]
    pod = {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "statsd-bridge",
        "__meta_kubernetes_pod_node_name": "node-a",
        "__meta_kubernetes_pod_name": "statsd-bridge-x7k",
    }
    targets = [
        {"targets": [f"{host}:{port}"], "labels": {**pod, "__meta_kubernetes_pod_container_port_name": "metrics"}},
        {
            "targets": [f"{host}:{free_port()}"],
            "labels": {**pod, "__meta_kubernetes_pod_container_port_name": "statsd-tcp"},
        },
        {
            "targets": [f"{host}:{free_port()}"],
            "labels": {
                **pod,
                "__meta_kubernetes_pod_label_app_kubernetes_io_name": "some-app",
                "__meta_kubernetes_pod_container_port_name": "metrics",
            },
        },
    ]
    (tmp_path / "pods.json").write_text(json.dumps(targets))
    job["file_sd_configs"] = [{"files": [str(tmp_path / "pods.json")]}]
    config["global"] = {"scrape_interval": "500ms", "scrape_timeout": "400ms"}
    rewritten = tmp_path / "prometheus.yml"
    rewritten.write_text(yaml.safe_dump(config))
    checked = promtool_check_config(rewritten)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    prometheus = Prometheus(require("prometheus"), rewritten.read_text(), tmp_path)
    try:
        up = prometheus.wait_for("up", lambda result: result and all(value == 1 for value in result.values()))
    finally:
        prometheus.stop()
    assert list(up) == [
        frozenset(
            {("job", "statsd-bridge"), ("instance", f"{host}:{port}"), ("node", "node-a"), ("pod", "statsd-bridge-x7k")}
        )
    ], up
