"""The status page at /, loaded by a real headless browser (Debian's chromium) and a terminal browser (w3m)."""

import subprocess
import time
from html.parser import HTMLParser

from tests.conftest import require, sample

MAPPING = """
reaper:
  label: worker
  after: 1h
  interval: 1s
mappings:
- match: jobs.*.done
  name: jobs_done
  labels:
    worker: $1
"""

# headless, and without the background connections this machine's closed network refuses
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


class Tables(HTMLParser):
    """Every table row's cell texts, and every link, of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self._cell: list[str] | None = None
        self.has_script = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self.links.append(dict(attrs)["href"])
        elif tag == "script":
            self.has_script = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def chromium_dom(url: str, tmp_path) -> str:
    browser = require("chromium")
    result = subprocess.run(
        [
            browser,
            *HEADLESS,
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_status_page_in_a_real_browser(bridge_factory, tmp_path):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(MAPPING)
    bridge = bridge_factory("--mapping-config", str(mapping), "--max-series", "1000")
    # traffic over a few seconds, so the last minute's rates have readings to work from
    for _ in range(3):
        bridge.send_udp(
            *(f"jobs.w{i}.done:1|c" for i in range(10)),
            "big.metric:1|c|#k:a",
            "big.metric:1|c|#k:b",
            "big.metric:1|c|#k:c",
            "not a line",
            "neg:-1|c",
        )
        time.sleep(1.0)
    samples = bridge.wait_for(lambda s: sample(s, "statsd_bridge_lines_total") == 45)
    assert samples is not None, bridge.metrics()
    time.sleep(1.2)  # a reaper pass after the traffic
    page = Tables()
    page.feed(chromium_dom(bridge.web + "/", tmp_path))
    assert not page.has_script
    assert "/metrics" in page.links
    rows = {row[0]: row[1:] for row in page.rows if row}
    assert rows["version"] == ["0.1.0"]
    udp_host, udp_port = bridge.addresses["udp"]
    assert rows["listener udp"] == [f"{udp_host}:{udp_port}"]
    assert rows["listener tcp"] == [f"{bridge.addresses['tcp'][0]}:{bridge.addresses['tcp'][1]}"]
    lines_per_second = float(rows["lines/s (last minute)"][0].replace(",", ""))
    errors_per_second = float(rows["errors/s (last minute)"][0].replace(",", ""))
    # 45 lines (6 rejected) in about 3 s, all within the last minute; where the once-a-second readings
    # fall, and how long the browser took to start, move the figures but not past these bounds
    assert 15 / 60 <= lines_per_second <= 45
    assert 2 / 60 <= errors_per_second <= 6
    assert errors_per_second < lines_per_second
    assert rows["lines since start"] == ["45"]
    assert rows["series"] == ["13"]
    assert rows["series cap"] == ["13 of 1,000 (1.3 %)"]
    assert rows["mapping file"] == [str(mapping)]
    assert rows["mapping rules"] == ["1"]
    assert rows["malformed_line"] == ["3"]
    assert rows["illegal_negative_counter"] == ["3"]
    assert rows["jobs_done"] == ["counter", "10"]  # the largest metric, listed first
    largest = [row[0] for row in page.rows if len(row) == 3 and row[1] in ("counter", "gauge", "type")]
    assert largest[:3] == ["metric", "jobs_done", "big_metric"]
    assert rows["label"] == ["worker"]
    assert rows["sources tracked"] == ["10"]
    assert rows["last sweep"][0] != "not yet"


def test_status_page_reads_in_a_terminal_browser(bridge_factory):
    w3m = require("w3m")
    bridge = bridge_factory()
    bridge.send_udp("hello:1|c")
    assert bridge.wait_for(lambda s: sample(s, "hello") == 1) is not None
    text = subprocess.run([w3m, "-dump", bridge.web + "/"], capture_output=True, text=True, timeout=60).stdout
    assert "statsd-bridge" in text and "Metrics (/metrics)" in text
    assert any(line.split() == ["series", "1"] for line in text.splitlines()), text
    assert "off (no reap label)" in text


class Charts(HTMLParser):
    """Each chart's caption, declared point count and polyline points."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[dict] = []
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure" and "chart" in attrs.get("class", ""):
            self.charts.append({"declared": int(attrs["data-points"]), "caption": "", "points": []})
        elif tag == "figcaption":
            self._in_caption = True
        elif tag == "polyline" and self.charts:
            self.charts[-1]["points"] = [tuple(map(float, p.split(","))) for p in attrs["points"].split()]

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data):
        if self._in_caption and self.charts:
            self.charts[-1]["caption"] += data


def test_status_page_charts_the_last_hour(bridge_factory, tmp_path):
    from PIL import Image

    bridge = bridge_factory()
    started = time.monotonic()
    for second in range(5):  # traffic that grows each second: a line that climbs, not a flat one
        bridge.send_udp(*(f"trend.n{second}_{i}:1|c" for i in range(10 * (second + 1))), "not a line")
        time.sleep(1.0)
    assert bridge.wait_for(lambda s: sample(s, "statsd_bridge_lines_total") == 155) is not None
    page = Charts()
    page.feed(chromium_dom(bridge.web + "/", tmp_path))
    elapsed = time.monotonic() - started
    titles = [chart["caption"].split(":")[0] for chart in page.charts]
    assert titles == ["lines/s", "rejections/s", "kernel drops/s", "series"]
    for chart in page.charts:
        # one point per second of readings (a reading a second, each point the change between two)
        assert len(chart["points"]) == chart["declared"]
        assert 3 <= chart["declared"] <= elapsed + 1
    lines_y = {y for _, y in page.charts[0]["points"]}
    series_y = {y for _, y in page.charts[3]["points"]}
    assert len(lines_y) > 1 and len(series_y) > 1  # traffic moved both lines
    assert {y for _, y in page.charts[2]["points"]} == {58.0}  # no kernel drops: flat at the bottom

    # the page as a person sees it: Chromium's screenshot shows the charts' lines
    browser = require("chromium")
    screenshot = tmp_path / "status.png"
    subprocess.run(
        [
            browser,
            *HEADLESS,
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-shot'}",
            f"--screenshot={screenshot}",
            "--window-size=1000,900",
            bridge.web + "/",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1000, 900)
    data = image.tobytes()
    line_blue = sum(
        1
        for red, green, blue in zip(data[0::3], data[1::3], data[2::3], strict=True)
        if abs(red - 0x1F) < 40 and abs(green - 0x77) < 40 and abs(blue - 0xB4) < 40
    )
    assert line_blue > 100, "no chart line drawn"
