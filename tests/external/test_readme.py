"""The README's Quick start, run as shown: bash sends two lines over UDP, python3 fetches the page, and
grep prints exactly what the README prints (the bridge on free ports, put in place of 9125 and 9102).
bash and grep are programs beside the bridge, hence an external test."""

import re
import subprocess
from pathlib import Path

from tests.conftest import sample

ROOT = Path(__file__).resolve().parents[2]


def quick_start() -> tuple[list[str], str]:
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```console\n(.*?)```", section, re.S)
    commands = [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    output = "".join(line + "\n" for line in block.splitlines() if not line.startswith("$ "))
    return commands, output


def test_the_quick_start_prints_what_the_readme_shows(bridge):
    commands, expected = quick_start()
    udp_port, web_port = bridge.addresses["udp"][1], bridge.addresses["web"][1]
    commands = [c.replace("/9125", f"/{udp_port}").replace(":9102", f":{web_port}") for c in commands]
    *sends, fetch = commands
    for command in sends:
        subprocess.run(["bash", "-c", command], check=True, timeout=10)
    assert bridge.wait_for(lambda s: sample(s, "request_time_count") == 1) is not None
    result = subprocess.run(["bash", "-c", fetch], capture_output=True, text=True, timeout=10, check=True)
    assert result.stdout == expected
