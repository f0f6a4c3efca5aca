"""Every fenced block in README.md and docs/ is run by a test. This file runs those no other test runs
(Prometheus configurations through promtool, the web config through the bridge, the shell commands),
and fails on a block that no test claims, naming it."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

import bridge
from tests.conftest import promtool, require, sample, start_bridge
from tests.external.test_deploy import exec_start

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Commands of other programs, which the docs show but no test can run here
OTHER_PROGRAMS = {"concourse"}


class Block(NamedTuple):
    where: str  # file:line of the opening fence
    lang: str
    text: str
    section: str  # the heading above it


def blocks() -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
            before = text[: match.start()]
            headings = re.findall(r"^#+ (.*)$", before, re.M)
            line = before.count("\n") + 1
            found.append(Block(f"{doc.relative_to(ROOT)}:{line}", match[1], match[2], headings[-1] if headings else ""))
    return found


def claim(block: Block) -> str:
    """The test that runs this block, or "" when none does."""
    doc, text = block.where.split(":")[0], block.text
    if block.lang == "yaml" and re.search(r"^(mappings|statsd_bridge_extensions):", text, re.M):
        return "tests/external/test_compat.py: statsd_exporter and the bridge load it"
    if block.lang == "yaml" and "scrape_configs:" in text:
        return "test_prometheus_configurations_pass_promtool"
    if block.lang == "yaml" and "tls_server_config:" in text:
        return "test_the_web_config_example_is_served"
    if block.lang == "console" and doc == "docs/operations.md" and block.section == "Clearing series":
        return "test_the_clear_example_runs"
    if block.lang == "console" and doc == "docs/operations.md" and block.section == "Explain a line":
        return "tests/integration/test_explain_cli.py: the command prints what the block shows"
    if block.lang == "console" and doc == "README.md" and block.section == "Quick start":
        return "tests/external/test_readme.py: the commands print what the block shows"
    if doc == "docs/deployment.md" and block.lang == "sh":
        return {
            "Container image": "tests/external/test_container.py: builds this Dockerfile (with buildah) and runs "
            "the image as shown, a mapping file mounted in",
            "Kubernetes": "tests/external/test_deploy.py: validates and checks the manifests these commands apply",
            "systemd": "test_the_systemd_install_steps_run",
        }.get(block.section, "")
    if block.lang == "yaml" and re.search(r"^image:\n  repository:", text):
        return "test_the_helm_values_name_the_image"
    if block.lang == "sh":
        return "test_the_documented_commands_run"
    if doc == "docs/migrating.md" and text.startswith("mapping.yml:"):
        return "tests/external/test_compat.py: --check-config prints this for the mapping above it"
    if doc == "docs/architecture.md" and "bridge/main.py" in text:
        return "tests/unit/test_docs.py: every module is listed, and only those"
    if doc == "docs/architecture.md" and "->" in text:
        return "a picture of the data flow, with the package of each stage (the module list is tested)"
    return ""


def test_every_block_in_the_docs_is_run_by_a_test():
    unclaimed = [block.where for block in blocks() if not claim(block)]
    assert not unclaimed, f"no test runs these blocks: {unclaimed}"


def blocks_claimed_by(test: str) -> list[Block]:
    return [block for block in blocks() if claim(block) == test]


@pytest.mark.parametrize(
    "block", blocks_claimed_by("test_prometheus_configurations_pass_promtool"), ids=lambda block: block.where
)
def test_prometheus_configurations_pass_promtool(block, tmp_path):
    """Checked against Prometheus's schema. The files they name are the reader's, so their contents are not
    checked (--syntax-only); a line marked `# 3.x` is a Prometheus 3 key, which the promtool here (Debian's
    Prometheus 2) does not know."""
    config = tmp_path / "prometheus.yml"
    config.write_text("".join(line + "\n" for line in block.text.splitlines() if "# 3.x" not in line))
    result = subprocess.run(
        [promtool(), "check", "config", "--syntax-only", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, block.where + "\n" + result.stdout + result.stderr


def make_certificates(directory: Path, tool: str) -> None:
    """The files the web config example names: a CA, a server certificate it signed, and the CA as the clients'."""

    def run(*args: str) -> None:
        subprocess.run([tool, *args], cwd=directory, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "clients-ca.pem",
        "-days", "2", "-subj", "/CN=docs example CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "clients-ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip


def test_the_web_config_example_is_served(tmp_path):
    (block,) = blocks_claimed_by("test_the_web_config_example_is_served")
    make_certificates(tmp_path, require("openssl"))
    config = tmp_path / "web.yml"
    config.write_text(block.text)
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "--check-config", f"--web.config.file={config}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, block.where + "\n" + result.stderr
    assert "configuration OK" in result.stdout


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) of every command in the sh blocks; comments and continuation lines joined."""
    commands = []
    for block in blocks_claimed_by("test_the_documented_commands_run"):
        for line in block.text.replace("\\\n", " ").splitlines():
            command = line.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                commands.append((block.where, command))
    return commands


def serves_metrics(command: list[str], port: int = 9102) -> str:
    """Start a command that starts the bridge with its default addresses, fetch /metrics, stop it."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"{command} exited: {process.stderr.read() if process.stderr else ''}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    return response.read().decode()
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{command} served no /metrics on port {port} within a minute")
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_command(command: str, workdir: Path) -> None:
    """One documented command, as written. A file it names that is the reader's (`mapping.yml`) is one of
    the shipped mapping files; where it would run for minutes, the numbers are smaller, as said here."""
    words = shlex.split(command)
    environment = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    words = [word for word in words if not re.match(r"^[A-Z_]+=", word)]
    if words == ["make", "run"]:
        require("make")
        assert "statsd_bridge_build_info" in serves_metrics(["make", "run"])
    elif words[0] == "statsd-bridge" and "--check-config" in words:
        shutil.copy(ROOT / "mappings" / "example.yml", workdir / "mapping.yml")
        result = subprocess.run(
            [sys.executable, "-m", "bridge", *words[1:]], cwd=workdir, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and "configuration OK" in result.stdout, result.stderr
    elif words[0] == "statsd-bridge":
        assert "statsd_bridge_build_info" in serves_metrics([sys.executable, "-m", "bridge", *words[1:]])
    elif words[0] in ("python", ".venv/bin/python"):
        if "GENERATED_MAPPINGS" in environment:
            environment["GENERATED_MAPPINGS"] = "2"  # the guide's 600 take minutes; `make test` runs 12
        result = subprocess.run(
            [sys.executable, *words[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **environment},
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    else:
        raise AssertionError("the test does not know how to run it")


def test_the_documented_commands_run(tmp_path):
    """In one test, one after the other: two of them start a bridge on the default ports."""
    ran = []
    for where, command in documented_commands():
        if command.split()[0] in OTHER_PROGRAMS:
            continue
        try:
            run_command(command, tmp_path)
        except AssertionError as error:
            raise AssertionError(f"{where}: {command}: {error}") from None
        ran.append(command)
    assert len(ran) >= 4, ran


def test_the_clear_example_runs():
    """The curl commands as written, against a bridge that holds the workload's two series and one more
    (the only change: the port the test's bridge got instead of 9102)."""
    (block,) = blocks_claimed_by("test_the_clear_example_runs")
    steps = re.findall(r"^\$ (.*)\n((?:[^$].*\n)*)", block.text, re.M)
    assert len(steps) == 2, block.text
    require("curl")
    bridge = start_bridge("--web.enable-lifecycle")
    try:
        bridge.send_udp("checkout.orders:1|c|#job_name:checkout\ncheckout.failures:1|c|#job_name:checkout")
        bridge.send_udp("auth.logins:1|c|#job_name:auth")
        assert bridge.wait_for(lambda s: sample(s, "auth_logins", job_name="auth") == 1) is not None
        assert bridge.wait_for(lambda s: sample(s, "checkout_failures", job_name="checkout") == 1) is not None
        host, port = bridge.addresses["web"]
        for command, printed in steps:
            words = shlex.split(command.replace("localhost:9102", f"{host}:{port}"))
            result = subprocess.run(words, capture_output=True, text=True, timeout=30)
            assert (result.returncode, result.stdout) == (0, printed), f"{command}: {result.stderr}"
        assert not [name for name, _ in bridge.samples() if name.startswith(("checkout_", "auth_"))]
    finally:
        bridge.stop()


def test_the_helm_values_name_the_image():
    (block,) = blocks_claimed_by("test_the_helm_values_name_the_image")
    values = yaml.safe_load(block.text)
    assert values["image"]["repository"].rsplit("/", 1)[-1] == "statsd-bridge"
    assert str(values["image"]["tag"]) == bridge.__version__  # the tag the Dockerfile's build command gives


# Steps that need the machine's systemd (not PID 1 here): the unit itself is checked by tests/external/test_deploy.py
NEEDS_SYSTEMD = {"sysctl", "systemctl"}


@pytest.mark.timeout(600)
def test_the_systemd_install_steps_run(tmp_path):
    """The install steps as written, into a scratch root (every absolute path under it), from a checkout with
    the wheel `make dist` makes; then the installed bridge passes --check-config with the unit's flags."""
    (block,) = blocks_claimed_by("test_the_systemd_install_steps_run")
    checkout, root = tmp_path / "checkout", tmp_path / "root"
    checkout.mkdir()
    for name in ("mappings", "deploy"):
        (checkout / name).symlink_to(ROOT / name)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(checkout / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    ran = []
    for line in block.text.splitlines():
        command = line.split(" #", 1)[0].strip()
        words = shlex.split(command)
        if not words or words[0] in NEEDS_SYSTEMD:
            continue
        words = [str(root) + word if word.startswith(("/opt/", "/etc/", "/usr/")) else word for word in words]
        if words[0] == "ln":  # the link's parent exists on a real system
            Path(words[-1]).parent.mkdir(parents=True, exist_ok=True)
        words[0] = sys.executable if words[0] == "python3" else words[0]
        result = subprocess.run(words, cwd=checkout, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
        ran.append(words[0])
    assert len(ran) == 6, ran
    flags = [
        f"--mapping-config={root}/etc/statsd-bridge/mapping.yml" if flag.startswith("--mapping-config=") else flag
        for flag in exec_start((root / "etc/systemd/system/statsd-bridge.service").read_text())[1:]
    ]
    assert (root / "etc/sysctl.d/90-statsd-bridge.conf").read_text() == (
        ROOT / "deploy/systemd/sysctl.conf"
    ).read_text()
    checked = subprocess.run(
        [str(root / "usr/local/bin/statsd-bridge"), *flags, "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0 and "configuration OK" in checked.stdout, checked.stderr


# Commands named in the prose, in `code` spans. The long ones (`make bench`: 12 minutes) are not run here;
# each is checked to be what it says: a make target that exists (make -n), a script or module that
# starts (--help), a flag the bridge takes, a pytest selection that collects.
INLINE_COMMAND = re.compile(r"`((?:make|statsd-bridge|python3?|\.venv/bin/python) [^`]*|make|statsd-bridge)`")


def inline_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            found += [(f"{doc.relative_to(ROOT)}:{number}", match) for match in INLINE_COMMAND.findall(line)]
    return found


def check_inline(command: str) -> list[str]:
    """The command to run to check `command`; [] where another test runs it as written."""
    words = shlex.split(command.replace("production|mixed|batched|single [--profile]", "mixed"))
    if words[0] == "make":
        return ["make", "-n", *words[1:]] if len(words) > 1 else []
    if words[0] == "statsd-bridge":
        words = [sys.executable, "-m", "bridge", *words[1:]]
        if "FILE" in words:
            return [word.replace("FILE", str(ROOT / "mappings" / "example.yml")) for word in words]
        return words if "--help" in words else [*words, "--help"]
    if words[1:2] == ["-m"] and words[2] == "pytest":
        return [sys.executable, *words[1:], "--collect-only", "-q"]
    if words[1:2] == ["-m"] and words[2] == "build":
        return []  # tests/integration/test_release.py builds the wheel and the sdist
    if words[1].endswith(".py"):
        return [sys.executable, words[1], "--help"]  # a script of bench/: its options are checked below
    return [sys.executable, *words[1:3], "--help"]  # a module of bench/


def test_the_commands_named_in_the_prose_are_real():
    require("make")
    commands = inline_commands()
    assert len(commands) >= 20, commands
    for where, command in commands:
        check = check_inline(command)
        if not check:
            continue
        result = subprocess.run(check, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{where}: `{command}` ({check}): {result.stdout[-1000:]}{result.stderr[-1000:]}"
        if check[-1] == "--help":  # and the options the prose gives are the program's
            for option in re.findall(r"(?<= )--[a-z][a-z.-]*", command):
                assert option in result.stdout, f"{where}: `{command}`: {option} is not in its --help"
