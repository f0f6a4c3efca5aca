"""Native histograms: sparse exponential buckets, kept as client_golang (so statsd_exporter) keeps them.

A bucket's boundaries are powers of 2**(2**-schema). Each observation lands in one bucket by its
index (its "key"); values within the zero threshold of 0 land in the zero bucket. Past
`max_buckets` populated buckets the schema drops by one, merging pairs of neighbours: resolution
halves, down to schema -4. The exposition is spans and deltas (protobuf only; the text format has
no place for them). The facts come from client_golang's prometheus/histogram.go (1.14): the key
arithmetic (including Go's integer division, which truncates toward zero), one schema reduction
per observation past the limit, and the span encoding that fills gaps of up to two buckets.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from math import frexp, ldexp

# 2**-128: a bucket boundary at every schema (client_golang's DefNativeHistogramZeroThreshold)
ZERO_THRESHOLD = 2.938735877055719e-39
MIN_SCHEMA, MAX_SCHEMA = -4, 8

# The fractions of the 256 bucket boundaries between 0.5 and 1 at schema 8, bit for bit as
# client_golang's nativeHistogramBounds holds them (its values are not all correctly rounded, and a
# value on a boundary must land where statsd_exporter puts it). Schema s uses every 2**(8-s)th.
_SCHEMA_8_BOUNDS = (
    0.5,
    0.5013556375251013,
    0.5027149505564014,
    0.5040779490592088,
    0.5054446430258502,
    0.5068150424757447,
    0.5081891574554764,
    0.509566998038869,
    0.5109485743270583,
    0.5123338964485679,
    0.5137229745593818,
    0.5151158188430205,
    0.5165124395106142,
    0.5179128468009786,
    0.5193170509806894,
    0.520725062344158,
    0.5221368912137069,
    0.5235525479396449,
    0.5249720429003435,
    0.526395386502313,
    0.5278225891802786,
    0.5292536613972564,
    0.5306886136446309,
    0.5321274564422321,
    0.5335702003384117,
    0.5350168559101208,
    0.5364674337629877,
    0.5379219445313954,
    0.5393803988785598,
    0.5408428074966075,
    0.5423091811066545,
    0.5437795304588847,
    0.5452538663326288,
    0.5467321995364429,
    0.5482145409081883,
    0.549700901315111,
    0.5511912916539204,
    0.5526857228508706,
    0.5541842058618393,
    0.5556867516724088,
    0.5571933712979462,
    0.5587040757836845,
    0.5602188762048033,
    0.5617377836665098,
    0.5632608093041209,
    0.564787964283144,
    0.5663192597993595,
    0.5678547070789026,
    0.5693943173783458,
    0.5709381019847808,
    0.572486072215902,
    0.5740382394200894,
    0.5755946149764913,
    0.5771552102951081,
    0.5787200368168754,
    0.5802891060137493,
    0.5818624293887887,
    0.5834400184762408,
    0.585021884841625,
    0.5866080400818185,
    0.5881984958251406,
    0.5897932637314379,
    0.5913923554921704,
    0.5929957828304968,
    0.5946035575013605,
    0.5962156912915756,
    0.5978321960199137,
    0.5994530835371903,
    0.6010783657263515,
    0.6027080545025619,
    0.6043421618132907,
    0.6059806996384005,
    0.6076236799902344,
    0.6092711149137041,
    0.6109230164863786,
    0.6125793968185725,
    0.6142402680534349,
    0.6159056423670379,
    0.6175755319684665,
    0.6192499490999082,
    0.620928906036742,
    0.622612415087629,
    0.6243004885946023,
    0.6259931389331581,
    0.6276903785123455,
    0.6293922197748583,
    0.6310986751971253,
    0.6328097572894031,
    0.6345254785958666,
    0.6362458516947014,
    0.637970889198196,
    0.6397006037528346,
    0.6414350080393891,
    0.6431741147730128,
    0.6449179367033329,
    0.6466664866145447,
    0.6484197773255048,
    0.6501778216898253,
    0.6519406325959679,
    0.6537082229673385,
    0.6554806057623822,
    0.6572577939746774,
    0.659039800633032,
    0.6608266388015788,
    0.6626183215798706,
    0.6644148621029772,
    0.6662162735415805,
    0.6680225691020727,
    0.6698337620266515,
    0.6716498655934177,
    0.6734708931164728,
    0.6752968579460171,
    0.6771277734684463,
    0.6789636531064505,
    0.6808045103191123,
    0.6826503586020058,
    0.6845012114872953,
    0.6863570825438342,
    0.688217985377265,
    0.690083933630119,
    0.6919549409819159,
    0.6938310211492645,
    0.6957121878859629,
    0.6975984549830999,
    0.6994898362691555,
    0.7013863456101023,
    0.7032879969095076,
    0.7051948041086352,
    0.7071067811865475,
    0.7090239421602076,
    0.7109463010845827,
    0.7128738720527471,
    0.7148066691959849,
    0.7167447066838943,
    0.718687998724491,
    0.7206365595643126,
    0.7225904034885232,
    0.7245495448210174,
    0.7265139979245261,
    0.7284837772007218,
    0.7304588970903234,
    0.7324393720732029,
    0.7344252166684908,
    0.7364164454346837,
    0.7384130729697496,
    0.7404151139112358,
    0.7424225829363761,
    0.7444354947621984,
    0.7464538641456323,
    0.7484777058836176,
    0.7505070348132126,
    0.7525418658117031,
    0.7545822137967112,
    0.7566280937263048,
    0.7586795205991071,
    0.7607365094544071,
    0.762799075372269,
    0.7648672334736434,
    0.7669409989204777,
    0.7690203869158282,
    0.7711054127039704,
    0.7731960915705107,
    0.7752924388424999,
    0.7773944698885442,
    0.7795022001189185,
    0.7816156449856788,
    0.7837348199827764,
    0.7858597406461707,
    0.7879904225539431,
    0.7901268813264122,
    0.7922691326262467,
    0.7944171921585818,
    0.7965710756711334,
    0.7987307989543135,
    0.8008963778413465,
    0.8030678282083853,
    0.805245165974627,
    0.8074284071024302,
    0.8096175675974316,
    0.8118126635086642,
    0.8140137109286738,
    0.8162207259936375,
    0.8184337248834821,
    0.820652723822003,
    0.8228777390769823,
    0.8251087869603088,
    0.8273458838280969,
    0.8295890460808079,
    0.8318382901633681,
    0.8340936325652911,
    0.8363550898207981,
    0.8386226785089391,
    0.8408964152537144,
    0.8431763167241966,
    0.8454623996346523,
    0.8477546807446661,
    0.8500531768592616,
    0.8523579048290255,
    0.8546688815502312,
    0.8569861239649629,
    0.8593096490612387,
    0.8616394738731368,
    0.8639756154809185,
    0.8663180910111553,
    0.8686669176368529,
    0.871022112577578,
    0.8733836930995842,
    0.8757516765159389,
    0.8781260801866495,
    0.8805069215187917,
    0.8828942179666361,
    0.8852879870317771,
    0.8876882462632604,
    0.890095013257712,
    0.8925083056594671,
    0.8949281411607002,
    0.8973545375015533,
    0.8997875124702672,
    0.9022270839033115,
    0.9046732696855155,
    0.9071260877501991,
    0.909585556079304,
    0.9120516927035263,
    0.9145245157024483,
    0.9170040432046711,
    0.9194902933879467,
    0.9219832844793128,
    0.9244830347552253,
    0.9269895625416926,
    0.92950288621441,
    0.9320230241988943,
    0.9345499949706191,
    0.9370838170551498,
    0.93962450902828,
    0.9421720895161669,
    0.9447265771954693,
    0.9472879907934827,
    0.9498563490882775,
    0.9524316709088368,
    0.9550139751351947,
    0.9576032806985735,
    0.9601996065815236,
    0.9628029718180622,
    0.9654133954938133,
    0.9680308967461471,
    0.9706554947643201,
    0.9732872087896164,
    0.9759260581154889,
    0.9785720620876999,
    0.9812252401044634,
    0.9838856116165875,
    0.9865531961276168,
    0.9892280131939752,
    0.9919100824251095,
    0.9945994234836328,
    0.9972960560854698,
)
BOUNDS = tuple(_SCHEMA_8_BOUNDS[:: 2 ** (8 - schema)] for schema in range(MAX_SCHEMA + 1))


def pick_schema(factor: float) -> int:
    """The largest schema n in [-4, 8] whose bucket growth 2**(2**-n) is at most `factor` (> 1)."""
    floor = math.floor(math.log2(math.log2(factor)))
    return 8 if floor <= -8 else -4 if floor >= 4 else -floor


def _go_div(numerator: int, denominator: int) -> int:
    """Go's integer division: truncates toward zero."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def bucket_key(value: float, schema: int) -> int:
    """The index of the bucket a finite non-zero value falls in, at `schema`."""
    fraction, exponent = math.frexp(abs(value))
    if schema > 0:
        bounds = BOUNDS[schema]
        return bisect_left(bounds, fraction) + (exponent - 1) * len(bounds)
    key = exponent - 1 if fraction == 0.5 else exponent
    divisor = 1 << -schema
    return _go_div(key + divisor - 1, divisor)


class NativeHistogram:
    """The native part of one histogram series."""

    __slots__ = ("max_buckets", "negative", "positive", "schema", "zero_count")

    def __init__(self, schema: int, max_buckets: int) -> None:
        self.schema = schema
        self.max_buckets = max_buckets  # 0: no limit
        self.zero_count = 0
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}

    def observe(self, value: float, weight: int = 1) -> None:
        """`weight` observations of `value` (a sampled observer's line stands for several).

        The hot path of every histogram line: bucket_key's arithmetic is inlined for the positive
        schemas that factors from 1.0027 to 2 give (statsd_exporter's default 1.1 is schema 3).
        """
        if value > ZERO_THRESHOLD:
            buckets = self.positive
        elif value < -ZERO_THRESHOLD:
            buckets = self.negative
            value = -value
        else:
            self.zero_count += weight
            return
        schema = self.schema
        if schema > 0:
            fraction, exponent = frexp(value)
            bounds = BOUNDS[schema]
            key = bisect_left(bounds, fraction) + (exponent - 1) * len(bounds)
        else:
            key = bucket_key(value, schema)
        buckets[key] = buckets.get(key, 0) + weight
        max_buckets = self.max_buckets
        if max_buckets and len(self.positive) + len(self.negative) > max_buckets:
            # client_golang checks the limit after each observation and halves at most once each
            # time, so `weight` observations can halve up to `weight` times
            for _ in range(weight):
                if len(self.positive) + len(self.negative) <= max_buckets or self.schema == MIN_SCHEMA:
                    break
                self._halve()

    def observe_many(self, values: list[float], ordered: list[float]) -> None:
        """`values` observed once each, in that order; `ordered` is the same values sorted.

        The same buckets as observing them one by one, for a cost per populated bucket rather than
        per value: at a positive schema, the values of one bucket are a run of `ordered`, ending at
        the bucket's upper bound. Where the new buckets would pass `max_buckets`, the schema halves
        part-way, so the values are observed one by one in their order instead, as client_golang does.
        """
        low = bisect_left(ordered, -ZERO_THRESHOLD)  # ordered[:low] negative, ordered[high:] positive
        high = bisect_right(ordered, ZERO_THRESHOLD, low)
        populated = len(self.positive) + len(self.negative)
        if not self.max_buckets or populated + len(values) <= self.max_buckets:  # room for any new buckets
            self._count_into(self.positive, ordered, high, len(ordered))
            self._count_into(self.negative, ordered, 0, low)
            self.zero_count += high - low
            return
        positive: dict[int, int] = {}
        negative: dict[int, int] = {}
        self._count_into(positive, ordered, high, len(ordered))
        self._count_into(negative, ordered, 0, low)
        new = sum(key not in self.positive for key in positive) + sum(key not in self.negative for key in negative)
        if populated + new > self.max_buckets:
            for value in values:
                self.observe(value)
            return
        self.zero_count += high - low
        for side, counts in ((self.positive, positive), (self.negative, negative)):
            for key, count in counts.items():
                side[key] = side.get(key, 0) + count

    def _count_into(self, buckets: dict[int, int], ordered: list[float], start: int, end: int) -> None:
        """Add the observations ordered[start:end], all positive or all negative, to `buckets`."""
        schema = self.schema
        if start == end:
            return
        if schema <= 0 or ordered[start] < 0:  # rare: factors over 2, negative observations
            for value in ordered[start:end]:
                key = bucket_key(value, schema)
                buckets[key] = buckets.get(key, 0) + 1
            return
        bounds = BOUNDS[schema]
        width = len(bounds)
        while start < end:
            fraction, exponent = frexp(ordered[start])
            index = bisect_left(bounds, fraction)
            # the bucket's upper bound, inclusive: a fraction of 0.5 is its own bound (index 0)
            upper = ldexp(bounds[index] if index < width else 1.0, exponent)
            stop = bisect_right(ordered, upper, start, end)
            key = index + (exponent - 1) * width
            buckets[key] = buckets.get(key, 0) + stop - start
            start = stop

    def _halve(self) -> None:
        """One schema down: bucket k merges into bucket ceil(k / 2)."""
        self.schema -= 1
        for side in (self.positive, self.negative):
            merged: dict[int, int] = {}
            for key, count in side.items():
                wider = -((-key) // 2)
                merged[wider] = merged.get(wider, 0) + count
            side.clear()
            side.update(merged)

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.positive.values()) + sum(self.negative.values())


def spans_and_deltas(buckets: dict[int, int]) -> tuple[list[tuple[int, int]], list[int]]:
    """(spans as (offset, length), deltas) of populated buckets, as client_golang encodes them.

    A gap of one or two buckets is filled with empty buckets rather than a new span.
    """
    spans: list[list[int]] = []
    deltas: list[int] = []
    previous_count = 0
    next_key = 0
    for n, key in enumerate(sorted(buckets)):
        gap = key - next_key
        if n == 0 or gap > 2:
            spans.append([gap, 0])
        else:
            for _ in range(gap):
                spans[-1][1] += 1
                deltas.append(-previous_count)
                previous_count = 0
        spans[-1][1] += 1
        count = buckets[key]
        deltas.append(count - previous_count)
        previous_count = count
        next_key = key + 1
    return [(offset, length) for offset, length in spans], deltas
