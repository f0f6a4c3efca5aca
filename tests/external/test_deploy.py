"""deploy/: each file checked by the tool made for it, and the bridge flags in it by the bridge itself."""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.conftest import Prometheus, free_port, promtool, require

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
    analyze = require("systemd-analyze", "apt-get install systemd")
    # systemd-analyze checks that the program exists: point ExecStart at the installed one, change nothing else
    installed = shutil.which("statsd-bridge") or str(Path(sys.executable).parent / "statsd-bridge")
    unit = tmp_path / "statsd-bridge.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/statsd-bridge", installed))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "statsd-bridge" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_systemd_unit_flags_are_the_bridges(tmp_path):
    command = exec_start(UNIT.read_text())
    assert command[0] == "/usr/local/bin/statsd-bridge"
    mapping = (DEPLOY.parent / "mappings" / "concourse.yml").read_text()
    bridge_accepts(command[1:], mapping, tmp_path)


def kubernetes_documents() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [(path.name, document) for document in yaml.safe_load_all(path.read_text()) if document]
    return documents


@pytest.mark.parametrize("name,document", kubernetes_documents(), ids=lambda value: str(value)[:30])
def test_kubernetes_manifests_validate(name, document):
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises on an unknown or bad field


def test_kubernetes_daemonset_runs_the_bridge_with_the_configmaps_mapping(tmp_path):
    documents = {document["kind"]: document for _, document in kubernetes_documents()}
    assert set(documents) == {"ConfigMap", "DaemonSet", "Service"}
    pod = documents["DaemonSet"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    bridge_accepts(container["args"], documents["ConfigMap"]["data"]["mapping.yml"], tmp_path)
    # the Service and the scrape config find the pods by the labels the DaemonSet gives them
    assert documents["Service"]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert documents["Service"]["spec"]["internalTrafficPolicy"] == "Local"
    port_names = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in documents["Service"]["spec"]["ports"]} <= port_names


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
    prometheus = Prometheus(require("prometheus", "apt-get install prometheus"), rewritten.read_text(), tmp_path)
    try:
        up = prometheus.wait_for("up", lambda result: result and all(value == 1 for value in result.values()))
    finally:
        prometheus.stop()
    assert list(up) == [
        frozenset(
            {("job", "statsd-bridge"), ("instance", f"{host}:{port}"), ("node", "node-a"), ("pod", "statsd-bridge-x7k")}
        )
    ], up
