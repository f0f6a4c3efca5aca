"""Series selectors as Prometheus's parser reads them (the vectors are promql/parser's parse_test.go
where they apply to a lone selector), and which series each selects."""

import pytest

from bridge.series.selectors import SelectorError, parse_selector, selects


def matchers(text: str) -> set[tuple[str, str, str]]:
    return {(matcher.label, matcher.operator, matcher.value) for matcher in parse_selector(text)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo", {("__name__", "=", "foo")}),
        ("job:rate5m", {("__name__", "=", "job:rate5m")}),
        ("sum", {("__name__", "=", "sum")}),  # a keyword is a metric name here
        ("foo{bar='}'}", {("__name__", "=", "foo"), ("bar", "=", "}")}),
        (
            'foo{a="b", foo!="bar", test=~"test", bar!~"baz"}',
            {
                ("__name__", "=", "foo"),
                ("a", "=", "b"),
                ("foo", "!=", "bar"),
                ("test", "=~", "test"),
                ("bar", "!~", "baz"),
            },
        ),
        ('foo{a="b",}', {("__name__", "=", "foo"), ("a", "=", "b")}),
        ('{a="b", foo!="bar", "foo"}', {("a", "=", "b"), ("foo", "!=", "bar"), ("__name__", "=", "foo")}),
        ('{__name__=~"bar", __name__!~"baz"}', {("__name__", "=~", "bar"), ("__name__", "!~", "baz")}),
        ('{__name__="bar", __name__="baz"}', {("__name__", "=", "bar"), ("__name__", "=", "baz")}),
        ('{"bar", __name__="baz"}', {("__name__", "=", "bar"), ("__name__", "=", "baz")}),
        ('{"my.metric", "service.name"="api"}', {("__name__", "=", "my.metric"), ("service.name", "=", "api")}),
        (' \tfoo {\n a = "b" , } ', {("__name__", "=", "foo"), ("a", "=", "b")}),
        ('{job_name="x"}', {("job_name", "=", "x")}),
        ('http_requests_total{code=~"5.."}', {("__name__", "=", "http_requests_total"), ("code", "=~", "5..")}),
    ],
)
def test_selectors_prometheus_reads(text, expected):
    assert matchers(text) == expected


@pytest.mark.parametrize(
    ("quoted", "value"),
    [
        (r'"double-quoted string \" with escaped quote"', 'double-quoted string " with escaped quote'),
        (r"'single-quoted string \' with escaped quote'", "single-quoted string ' with escaped quote"),
        ("`backtick-quoted string`", "backtick-quoted string"),
        ("`raw \\d+ \\n`", "raw \\d+ \\n"),
        (r'"\a\b\f\n\r\t\v\\\" - \u1234\U00010111\U0001011111☺"', '\a\b\f\n\r\t\v\\" - \u1234\U00010111\U0001011111☺'),
        (r'"caf\xc3\xa9 caf\303\251 \101"', "café café A"),
    ],
)
def test_strings_unquote_as_promql_does(quoted, value):
    assert matchers(f"x{{a={quoted}}}") == {("__name__", "=", "x"), ("a", "=", value)}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{}", "at least one non-empty matcher"),
        ('{x=""}', "at least one non-empty matcher"),
        ('{x=~".*"}', "at least one non-empty matcher"),
        ('{x!~".+"}', "at least one non-empty matcher"),
        ('{x!="a"}', "at least one non-empty matcher"),
        ('foo{__name__="bar"}', 'metric name must not be set twice: "foo" or "bar"'),
        ("{", "end of input"),
        ("}", "unexpected '}'"),
        ("some{", "end of input"),
        ("some}", "unexpected '}'"),
        ("some_metric{a=b}", "expected a quoted string"),
        ('some_metric{a:b="b"}', "expected a label matching operator"),
        ('foo{a*"b"}', "expected a label matching operator"),
        ('foo{a>="b"}', "expected a label matching operator"),
        ("foo{gibberish}", "expected a label matching operator"),
        ("foo{1}", "expected a label name"),
        ("foo{__name__= =}", "expected a quoted string"),
        ("foo{,}", "expected a label name"),
        ('foo{__name__ == "bar"}', "expected a quoted string"),
        ('foo{__name__="bar" lol}', 'expected "," or "}"'),
        ('foo{"a"=}', "expected a quoted string"),
        ('foo{a="b"} offset 5m', "unexpected 'offset 5m'"),
        ("test[1m]", "unexpected '[1m]'"),
        ('rate(foo{a="b"}[1m])', "unexpected '(foo"),
        ("", "empty selector"),
        ('{a="b}', "unterminated quoted string"),
        ('{a="b\nc"}', "unterminated quoted string"),
        ('{a="\\', "unterminated quoted string"),
        (r'{a="\c"}', r"unknown escape sequence \c"),
        (r'{a="\'"}', r"unknown escape sequence \'"),
        (r'{a="\x."}', "illegal character in escape sequence"),
        (r'{a="\u12"}', "illegal character in escape sequence"),
        (r'{a="\uD800"}', "invalid Unicode code point"),
        (r'{a="\U00110000"}', "invalid Unicode code point"),
        (r'{a="\xff"}', "invalid UTF-8"),
        ('{a=~"("}', "invalid regular expression"),
        ('{a=~"x(?=y)"}', "invalid regular expression"),  # RE2, as Go: no lookahead
    ],
)
def test_selectors_prometheus_refuses(text, reason):
    with pytest.raises(SelectorError) as refused:
        parse_selector(text)
    assert reason in str(refused.value), str(refused.value)


def test_regexes_are_anchored_re2_with_dot_matching_newlines():
    selector = parse_selector('{code=~"5.."}')
    assert selects([selector], "x", (("code", "500"),))
    assert not selects([selector], "x", (("code", "5000"),)) and not selects([selector], "x", (("code", "1500"),))
    assert selects([parse_selector('{a=~"x.y"}')], "m", (("a", "x\ny"),))
    assert selects([parse_selector(r'{a=~"\\pL+"}')], "m", (("a", "été"),))  # RE2's Unicode classes
    assert not selects([parse_selector('m{a!~"b|c"}')], "m", (("a", "c"),))


def test_a_missing_label_is_the_empty_string_and_any_selector_may_select():
    absent = parse_selector('{job="x", env!="prod"}')
    assert selects([absent], "m", (("job", "x"),))
    assert not selects([absent], "m", (("job", "x"), ("env", "prod")))
    by_name = parse_selector('{__name__=~"db_.*"}')
    assert selects([by_name], "db_queries", ()) and not selects([by_name], "web_db_queries", ())
    named = parse_selector("http_requests_total")
    assert selects([by_name, named], "http_requests_total", (("code", "200"),))
    assert not selects([by_name, named], "http_errors_total", ())
    assert not selects([], "anything", ())
