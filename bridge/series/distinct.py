"""Distinct values seen in a sliding window, in bounded memory: what a StatsD set (`|s`) becomes.

The window is cut in BUCKETS time buckets, numbered from the clock's zero (bucket `int(now / width)`), so
that the count is a function of the values seen and of the moment only: two scrapes in the same bucket
read the same number, and no scrape resets anything. A value counts from when it is seen until its
bucket leaves the window: between 9/10 of the window and the whole of it.

Up to EXACT_LIMIT distinct values, a series keeps each value's hash and the last bucket it was seen in,
and counts exactly. Past it, it keeps one HyperLogLog sketch per bucket (Apache DataSketches, 2^SKETCH_LG_K
registers: a relative standard error of 1.04/sqrt(4096), about 1.6%) and counts their union; it counts
exactly again once its last sketch has left the window.
"""

from __future__ import annotations

import hashlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasketches

BUCKETS = 10
EXACT_LIMIT = 1_000
SKETCH_LG_K = 12
# a member is known by 53 bits of its hash, so that it rides the ingest's float values exactly; two of
# a thousand members share one with a chance of about 1 in 10**10
HASH_MASK = (1 << 53) - 1

# What a worker hands over of a window (take()): the exact hashes by last bucket, or the sketches by bucket
Taken = tuple[dict[int, int], dict[int, bytes]]


def member_hash(member: str) -> float:
    """A set member's hash as the ingest carries values: a float, the same in every process (Python's
    hash() of a string is not)."""
    digest = hashlib.blake2b(member.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return float(int.from_bytes(digest, "little") & HASH_MASK)


def _datasketches() -> ModuleType:
    """DataSketches, imported when a set first passes EXACT_LIMIT: it brings numpy, 13 MiB of every process's
    memory that a bridge without such a set never needs."""
    import datasketches

    return datasketches


def new_sketch() -> datasketches.hll_sketch:
    library = _datasketches()
    return library.hll_sketch(SKETCH_LG_K, library.tgt_hll_type.HLL_8)


def union(sketches: list[datasketches.hll_sketch]) -> datasketches.hll_sketch:
    library = _datasketches()
    merged = library.hll_union(SKETCH_LG_K)
    for sketch in sketches:
        merged.update(sketch)
    return merged.get_result(library.tgt_hll_type.HLL_8)


class DistinctWindow:
    """The distinct values of one series over a sliding window of `window` seconds."""

    __slots__ = ("last_seen", "oldest", "sketches", "width")

    def __init__(self, window: float) -> None:
        self.width = window / BUCKETS
        self.last_seen: dict[int, int] = {}  # exact counting: hash -> the last bucket it was seen in
        # no bucket in last_seen is older: the values are walked only when this one leaves the window,
        # not at every count (every scrape counts every set)
        self.oldest = 0
        self.sketches: dict[int, datasketches.hll_sketch] = {}  # estimating: bucket -> its values' sketch

    def bucket(self, now: float) -> int:
        return int(now // self.width)

    def add(self, hashed: int, now: float) -> None:
        self.add_at(hashed, self.bucket(now))

    def add_at(self, hashed: int, bucket: int) -> None:
        if self.sketches and bucket not in self.sketches:
            self._expire(bucket)  # a new bucket: the sketches that left the window go, perhaps the last one
        if not self.sketches:
            last_seen = self.last_seen
            if hashed in last_seen or len(last_seen) < EXACT_LIMIT:
                if last_seen.get(hashed, bucket) <= bucket:
                    self._remember(hashed, bucket)
                return
            self._expire(bucket)  # values that left the window make room before the sketches take over
            if len(last_seen) < EXACT_LIMIT:
                self._remember(hashed, bucket)
                return
            self._to_sketches()
        self._sketch(bucket).update(hashed)

    def count(self, now: float) -> int:
        """The distinct values seen in the window that ends now; what left it is forgotten."""
        self._expire(self.bucket(now))
        if not self.sketches:
            return len(self.last_seen)
        return round(union(list(self.sketches.values())).get_estimate())

    def take(self) -> Taken:
        """What this window holds, handed over and forgotten (a worker's, between two hand-overs)."""
        taken = (self.last_seen, {bucket: sketch.serialize_compact() for bucket, sketch in self.sketches.items()})
        self.last_seen, self.sketches = {}, {}
        return taken

    def absorb(self, taken: Taken) -> None:
        """Another window's values (a worker's hand-over): the union of both, not their sum."""
        exact, sketches = taken
        for hashed, bucket in exact.items():
            self.add_at(hashed, bucket)
        if sketches and not self.sketches:
            self._to_sketches()
        for bucket, data in sketches.items():
            self.sketches[bucket] = union([self._sketch(bucket), _datasketches().hll_sketch.deserialize(data)])

    def _remember(self, hashed: int, bucket: int) -> None:
        if not self.last_seen or bucket < self.oldest:
            self.oldest = bucket
        self.last_seen[hashed] = bucket

    def _sketch(self, bucket: int) -> datasketches.hll_sketch:
        sketch = self.sketches.get(bucket)
        if sketch is None:
            sketch = self.sketches[bucket] = new_sketch()
        return sketch

    def _to_sketches(self) -> None:
        for hashed, bucket in self.last_seen.items():
            self._sketch(bucket).update(hashed)
        self.last_seen = {}

    def _expire(self, current: int) -> None:
        oldest = current - BUCKETS + 1
        if self.sketches:
            for bucket in [bucket for bucket in self.sketches if bucket < oldest]:
                del self.sketches[bucket]
        elif self.last_seen and self.oldest < oldest:
            self.last_seen = {hashed: bucket for hashed, bucket in self.last_seen.items() if bucket >= oldest}
            self.oldest = min(self.last_seen.values(), default=oldest)
