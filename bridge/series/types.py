"""Series, the values one label set of a metric holds, and How a value changes one.

Plain slotted objects rather than prometheus_client children: an update is an attribute write, and
the exposition renders them at scrape time.
"""

from __future__ import annotations

import bisect
import math
from enum import Enum

from bridge.series.distinct import DistinctWindow
from bridge.series.native_histogram import NativeHistogram
from bridge.series.quantiles import QuantileWindow, SummaryOptions

LabelKey = tuple[tuple[str, str], ...]

# client_golang adds a whole increment below 2**64 to an integer and any other to a float: CounterSeries
# keeps the same split
WHOLE_LIMIT = 2.0**64
# A series with fewer pending values than this takes them one by one: cheaper than sorting (instructions
# counted under cachegrind on the production load).
FOLD_ONE_BY_ONE_BELOW = 8


class How(Enum):
    """How a value changes a series. The ingest compares members with `is`: an Enum's `==` is a Python
    call, and the hot loop compares one for every line."""

    ADD = "add"  # a counter's increment (CounterSeries): whole increments and fractions summed apart
    SET = "set"  # a gauge (Scalar): set to the value, or changed by it when the value is relative
    OBSERVE = "observe"  # an observation at once: a summary's, or a histogram's of weight > 1
    DEFER = "defer"  # a histogram observation of weight 1, into the buckets at the next fold
    COLLECT = "collect"  # a set's member (its hash) into a gauge of distinct values (SetSeries)

    @property
    def allows_negative(self) -> bool:
        """A counter can't go down: statsd_exporter refuses a negative increment (illegal_negative_counter)."""
        return self is not How.ADD


def escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def render_labels(key: LabelKey) -> str:
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in key)


class Scalar:
    """A gauge series, and the base of a counter's."""

    __slots__ = ("key", "label_text", "set_at", "source", "updated", "value")

    def __init__(self, key: LabelKey, now: float) -> None:
        self.key = key
        self.source: str | None = None  # the reap label's value, set by the store
        self.label_text = render_labels(key)
        self.value = 0.0
        self.updated = now
        # when a gauge was last set to a value (not changed by one): with several receiving processes, the
        # latest set wins, whichever hands it over first
        self.set_at = -math.inf

    @property
    def total(self) -> float:
        return self.value


class CounterSeries(Scalar):
    """A counter series. client_golang adds a whole increment (below 2**64) to an integer and any other
    to a float, and reports their sum; `value` holds the whole increments (exactly, up to 2**53) and
    `fraction` the others, so that the total is statsd_exporter's to the last bit (0.1 + 1 + 0.2 is
    1.3 there, where one float gives 1.3000000000000003)."""

    __slots__ = ("created", "fraction")

    def __init__(self, key: LabelKey, now: float) -> None:
        super().__init__(key, now)
        self.fraction = 0.0
        self.created = 0.0  # wall-clock seconds the store made it: its start timestamp (gauges have none)

    @property
    def total(self) -> float:
        return self.fraction + self.value


class SetSeries(Scalar):
    """A gauge of the distinct values a StatsD set sent in a sliding window: `value` is the count as of the
    store's last refresh (Store.refresh_sets, before every render)."""

    __slots__ = ("window",)

    def __init__(self, key: LabelKey, now: float, window: float) -> None:
        super().__init__(key, now)
        self.window = DistinctWindow(window)

    def observe(self, hashed: float, weight: int, now: float) -> None:
        """A member, by its hash (bridge.series.distinct.member_hash); a sample rate changes nothing."""
        self.window.add(int(hashed), now)


class Histogram:
    __slots__ = ("bounds", "counts", "created", "key", "label_text", "native", "pending", "source", "sum", "updated")

    def __init__(self, key: LabelKey, now: float, bounds: tuple[float, ...], native: tuple[int, int] | None) -> None:
        self.key = key
        self.created = 0.0
        self.source: str | None = None
        self.label_text = render_labels(key)
        self.updated = now
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0
        # the native part beside the classic buckets, from (schema, max buckets); None: classic only
        self.native = NativeHistogram(*native) if native is not None else None
        # finite observations of weight 1 not yet in the buckets, in arrival order (How.DEFER; the store
        # folds them before a render)
        self.pending: list[float] = []

    def observe(self, value: float, weight: int, now: float = 0.0) -> None:
        """`now` is unused: it is there so that any observer series takes the same call (a summary's
        window needs it)."""
        if self.pending:
            self.fold()  # keep the arrival order: the sum's rounding and the native schema depend on it
        # Prometheus buckets are upper-inclusive: le="0.5" counts 0.5
        self.counts[bisect.bisect_left(self.bounds, value)] += weight
        self.sum += value * weight
        if self.native is not None:
            self.native.observe(value, weight)

    def fold(self) -> None:
        """Put the pending observations into the buckets, as observing them one by one would.

        Sorted, the values of one bucket are a run: a bisection per bucket bound counts them, so a
        batch costs about a sort and a few bisections rather than a bucket search per value.
        """
        values = self.pending
        if not values:
            return
        self.pending = []
        if len(values) < FOLD_ONE_BY_ONE_BELOW:
            for value in values:
                self.observe(value, 1)
            return
        total = self.sum
        for value in values:  # in arrival order, so the sum rounds exactly as one by one
            total += value
        self.sum = total
        ordered = sorted(values)
        counts, start, end = self.counts, 0, len(ordered)
        for index, bound in enumerate(self.bounds):
            stop = bisect.bisect_right(ordered, bound, start)
            counts[index] += stop - start
            start = stop
            if start == end:
                break
        counts[-1] += end - start
        if self.native is not None:
            self.native.observe_many(values, ordered)


class Summary:
    __slots__ = ("count", "created", "key", "label_text", "quantiles", "source", "sum", "updated", "window")

    def __init__(self, key: LabelKey, now: float, options: SummaryOptions) -> None:
        self.key = key
        self.created = 0.0
        self.source: str | None = None
        self.label_text = render_labels(key)
        self.updated = now
        self.quantiles = tuple(quantile for quantile, _ in options.quantiles)
        self.window = QuantileWindow(options.max_age, options.age_buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float, weight: int, now: float) -> None:
        self.window.observe(value, weight, now)
        self.count += weight
        self.sum += value * weight


Series = Scalar | CounterSeries | SetSeries | Histogram | Summary
