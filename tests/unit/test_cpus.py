"""--statsd.workers auto: the CPU quota of the cgroup a process is in, read from files laid out as the
kernel lays them out (cgroup v2 and v1), and the worker count it gives."""

from pathlib import Path

import pytest

from bridge.workers.cpus import AUTO_MAX_WORKERS, cgroup_cpu_quota, usable_cpus, workers_for


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v2_the_smallest_quota_of_the_cgroup_and_its_ancestors(tmp_path):
    root = tmp_path / "cgroup"
    write(tmp_path / "self", "0::/kubepods/pod1/bridge\n")
    write(root / "kubepods/pod1/bridge/cpu.max", "400000 100000\n")  # 4 CPUs for the container
    write(root / "kubepods/pod1/cpu.max", "150000 100000\n")  # 1.5 for the pod
    write(root / "kubepods/cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(str(root), str(tmp_path / "self")) == 1.5


def test_v2_without_a_limit(tmp_path):
    root = tmp_path / "cgroup"
    write(tmp_path / "self", "0::/user.slice\n")
    write(root / "user.slice/cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(str(root), str(tmp_path / "self")) is None


def test_v1_quota_over_period(tmp_path):
    root = tmp_path / "cgroup"
    write(tmp_path / "self", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    write(root / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n")
    write(root / "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(str(root), str(tmp_path / "self")) == 2.5
    write(root / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_quota(str(root), str(tmp_path / "self")) is None


def test_a_quota_rounds_up_and_auto_is_capped(tmp_path):
    root = tmp_path / "cgroup"
    write(tmp_path / "self", "0::/c\n")
    write(root / "c/cpu.max", "50000 100000\n")  # half a CPU still gets one process
    assert usable_cpus(str(root), str(tmp_path / "self")) == 1
    assert 1 <= workers_for("auto") <= AUTO_MAX_WORKERS
    assert workers_for("3") == 3


@pytest.mark.parametrize("text", ["", "garbage\n", "0::\n"])
def test_unreadable_cgroup_files_mean_no_limit(tmp_path, text):
    write(tmp_path / "self", text)
    assert cgroup_cpu_quota(str(tmp_path / "none"), str(tmp_path / "self")) is None
