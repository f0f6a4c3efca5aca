"""The CPUs this process may use: its affinity, and the cgroup's CPU quota (a container's CPU limit)."""

from __future__ import annotations

import math
import os
from pathlib import Path

# --statsd.workers auto takes no more than this: past it, the main process's store (one core) limits
# what more workers could add (docs/performance.md)
AUTO_MAX_WORKERS = 8
MAX_WORKERS = 256  # what --statsd.workers takes at most


def usable_cpus(cgroup_root: str = "/sys/fs/cgroup", own_cgroup: str = "/proc/self/cgroup") -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, own_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def cgroup_cpu_quota(cgroup_root: str = "/sys/fs/cgroup", own_cgroup: str = "/proc/self/cgroup") -> float | None:
    """CPUs' worth of time this process's cgroup or an ancestor allows: cgroup v2's cpu.max, or v1's
    cfs quota over its period; None: no limit."""
    try:
        lines = Path(own_cgroup).read_text().splitlines()
    except OSError:
        return None
    root = Path(cgroup_root)
    quotas = []  # of this cgroup and every ancestor: the smallest is the limit
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue  # not a cgroup line
        _, controllers, path = fields
        if controllers == "":  # v2: one hierarchy
            places = [(root, "cpu.max")]
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own hierarchy
            places = [(root / controllers, "cpu.cfs_quota_us"), (root / "cpu", "cpu.cfs_quota_us")]
        else:
            continue
        for mount, name in places:
            directory = mount / path.lstrip("/")
            for place in (directory, *directory.parents):
                quota = _quota(place, name)
                if quota is not None:
                    quotas.append(quota)
                if place == mount:
                    break
    return min(quotas) if quotas else None


def _quota(directory: Path, name: str) -> float | None:
    try:
        text = (directory / name).read_text().split()
        if name == "cpu.max":
            return None if text[0] == "max" else int(text[0]) / int(text[1])
        quota = int(text[0])
        return None if quota <= 0 else quota / int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError, IndexError):
        return None


def workers_for(setting: str) -> int:
    """The worker count --statsd.workers asks for: a number, or auto (the usable CPUs, at most AUTO_MAX_WORKERS)."""
    if setting == "auto":
        return min(usable_cpus(), AUTO_MAX_WORKERS)
    return int(setting)
