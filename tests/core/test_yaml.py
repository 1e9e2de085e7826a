"""Tests for the core's YAML subset: beanstalkd's stats and lists, parsed by key and written back.

The captures are the raw 1.12 replies from protocol-notes §5. PyYAML is the oracle on the
documents it reads correctly (it misreads 1.12's ``os`` and tube names such as ``true``).
"""

from __future__ import annotations

import importlib
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jackstalk._protocol.errors import ProtocolError
from jackstalk._protocol.yaml_subset import format_dict, format_list, parse_list, parse_stats

# PyYAML is imported by name so the file type-checks with or without types-PyYAML.
_pyyaml = importlib.import_module("yaml")

Value = int | float | bool | str


def yaml_load(text: str) -> object:
    """``yaml.safe_load``: the oracle."""
    result: object = _pyyaml.safe_load(text)
    return result


def typed(mapping: object) -> object:
    """Pair each value of a dict with its type, so that ``True == 1`` cannot hide a bug."""
    assert isinstance(mapping, dict)
    return {key: (type(value), value) for key, value in mapping.items()}


def body(reply: bytes) -> bytes:
    """The ``<bytes>`` of an ``OK <bytes>\\r\\n<data>\\r\\n`` reply, checking the framing."""
    head, _, rest = reply.partition(b"\r\n")
    word, size = head.split(b" ")
    assert word == b"OK"
    data = rest[: int(size)]
    assert rest[int(size) :] == b"\r\n"
    return data


# --- raw captures (beanstalkd 1.12, protocol-notes §5) ------------------------------------

LIST_TUBES = b"OK 36\r\n---\n- default\n- emails\n- true\n- 123\n\r\n"
STATS_TUBE = (
    b"OK 268\r\n---\nname: emails\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 0\n"
    b"current-jobs-reserved: 1\ncurrent-jobs-delayed: 1\ncurrent-jobs-buried: 1\n"
    b"total-jobs: 3\ncurrent-using: 1\ncurrent-watching: 1\ncurrent-waiting: 0\n"
    b"cmd-delete: 0\ncmd-pause-tube: 1\npause: 600\npause-time-left: 598\n\r\n"
)
STATS_JOB_1 = (
    b"OK 151\r\n---\nid: 1\ntube: emails\nstate: reserved\npri: 100\nage: 4\ndelay: 0\n"
    b"ttr: 120\ntime-left: 116\nfile: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 0\n"
    b"kicks: 0\n\r\n"
)
STATS_JOB_2 = (
    b"OK 144\r\n---\nid: 2\ntube: emails\nstate: buried\npri: 5\nage: 4\ndelay: 0\nttr: 60\n"
    b"time-left: 0\nfile: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 1\nkicks: 0\n\r\n"
)
STATS_JOB_3 = (
    b"OK 149\r\n---\nid: 3\ntube: emails\nstate: delayed\npri: 0\nage: 4\ndelay: 300\n"
    b"ttr: 60\ntime-left: 295\nfile: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\n"
    b"kicks: 0\n\r\n"
)
STATS = (
    b"OK 955\r\n---\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 0\ncurrent-jobs-reserved: 1\n"
    b"current-jobs-delayed: 1\ncurrent-jobs-buried: 1\ncmd-put: 3\ncmd-peek: 0\n"
    b"cmd-peek-ready: 0\ncmd-peek-delayed: 0\ncmd-peek-buried: 0\ncmd-reserve: 2\n"
    b"cmd-reserve-with-timeout: 0\ncmd-delete: 0\ncmd-release: 0\ncmd-use: 1\ncmd-watch: 3\n"
    b"cmd-ignore: 0\ncmd-bury: 1\ncmd-kick: 0\ncmd-touch: 0\ncmd-stats: 1\ncmd-stats-job: 0\n"
    b"cmd-stats-tube: 0\ncmd-list-tubes: 0\ncmd-list-tube-used: 0\ncmd-list-tubes-watched: 0\n"
    b"cmd-pause-tube: 1\njob-timeouts: 0\ntotal-jobs: 3\nmax-job-size: 65535\n"
    b"current-tubes: 4\ncurrent-connections: 2\ncurrent-producers: 1\ncurrent-workers: 1\n"
    b'current-waiting: 0\ntotal-connections: 2\npid: 9090\nversion: "1.12"\n'
    b"rusage-utime: 0.000000\nrusage-stime: 0.003132\nuptime: 4\nbinlog-oldest-index: 0\n"
    b"binlog-current-index: 0\nbinlog-records-migrated: 0\nbinlog-records-written: 0\n"
    b"binlog-max-size: 10485760\ndraining: false\nid: 16d1363b6eda206f\nhostname: vm\n"
    b"os: #1 SMP PREEMPT_DYNAMIC @0\nplatform: x86_64\n\r\n"
)

EXPECTED_LIST = ["default", "emails", "true", "123"]
EXPECTED_STATS_TUBE: dict[str, Value] = {
    "name": "emails",
    "current-jobs-urgent": 0,
    "current-jobs-ready": 0,
    "current-jobs-reserved": 1,
    "current-jobs-delayed": 1,
    "current-jobs-buried": 1,
    "total-jobs": 3,
    "current-using": 1,
    "current-watching": 1,
    "current-waiting": 0,
    "cmd-delete": 0,
    "cmd-pause-tube": 1,
    "pause": 600,
    "pause-time-left": 598,
}


def job_stats(
    job_id: int, state: str, pri: int, delay: int, ttr: int, **rest: int
) -> dict[str, Value]:
    """The expected stats-job dict, in output order, with the counters defaulting to 0."""
    counters = ["time-left", "file", "reserves", "timeouts", "releases", "buries", "kicks"]
    out: dict[str, Value] = {"id": job_id, "tube": "emails", "state": state, "pri": pri}
    out.update({"age": 4, "delay": delay, "ttr": ttr})
    out.update({name: rest.get(name.replace("-", "_"), 0) for name in counters})
    return out


EXPECTED_STATS_JOB_1 = job_stats(1, "reserved", 100, 0, 120, time_left=116, reserves=1)
EXPECTED_STATS_JOB_2 = job_stats(2, "buried", 5, 0, 60, reserves=1, buries=1)
EXPECTED_STATS_JOB_3 = job_stats(3, "delayed", 0, 300, 60, time_left=295)

# fmt: off
_STATS_COUNTS = [
    0, 0, 1, 1, 1, 3, 0, 0, 0, 0, 2, 0, 0, 0, 1, 3, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 3,
    65535, 4, 2, 1, 1, 0, 2, 9090,
]
# fmt: on
_STATS_COUNT_NAMES = [
    "current-jobs-urgent",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "cmd-put",
    "cmd-peek",
    "cmd-peek-ready",
    "cmd-peek-delayed",
    "cmd-peek-buried",
    "cmd-reserve",
    "cmd-reserve-with-timeout",
    "cmd-delete",
    "cmd-release",
    "cmd-use",
    "cmd-watch",
    "cmd-ignore",
    "cmd-bury",
    "cmd-kick",
    "cmd-touch",
    "cmd-stats",
    "cmd-stats-job",
    "cmd-stats-tube",
    "cmd-list-tubes",
    "cmd-list-tube-used",
    "cmd-list-tubes-watched",
    "cmd-pause-tube",
    "job-timeouts",
    "total-jobs",
    "max-job-size",
    "current-tubes",
    "current-connections",
    "current-producers",
    "current-workers",
    "current-waiting",
    "total-connections",
    "pid",
]
EXPECTED_STATS: dict[str, Value] = {
    **dict(zip(_STATS_COUNT_NAMES, _STATS_COUNTS, strict=True)),
    "version": "1.12",
    "rusage-utime": 0.0,
    "rusage-stime": 0.003132,
    "uptime": 4,
    "binlog-oldest-index": 0,
    "binlog-current-index": 0,
    "binlog-records-migrated": 0,
    "binlog-records-written": 0,
    "binlog-max-size": 10485760,
    "draining": False,
    "id": "16d1363b6eda206f",
    "hostname": "vm",
    "os": "#1 SMP PREEMPT_DYNAMIC @0",
    "platform": "x86_64",
}

CAPTURES = [
    pytest.param(STATS_TUBE, EXPECTED_STATS_TUBE, id="stats-tube"),
    pytest.param(STATS_JOB_1, EXPECTED_STATS_JOB_1, id="stats-job-1"),
    pytest.param(STATS_JOB_2, EXPECTED_STATS_JOB_2, id="stats-job-2"),
    pytest.param(STATS_JOB_3, EXPECTED_STATS_JOB_3, id="stats-job-3"),
    pytest.param(STATS, EXPECTED_STATS, id="stats"),
]


# --- the captures -------------------------------------------------------------------------


def test_list_tubes_capture() -> None:
    result = parse_list(body(LIST_TUBES))
    assert result == EXPECTED_LIST
    assert all(type(item) is str for item in result)


@pytest.mark.parametrize(("reply", "expected"), CAPTURES)
def test_stats_captures(reply: bytes, expected: dict[str, Value]) -> None:
    result = parse_stats(body(reply))
    assert typed(result) == typed(expected)
    assert list(result) == list(expected)  # document order is kept


def test_stats_field_count() -> None:
    assert len(parse_stats(body(STATS))) == 51


@pytest.mark.parametrize(("reply", "expected"), CAPTURES)
def test_format_dict_reproduces_captures(reply: bytes, expected: dict[str, Value]) -> None:
    assert format_dict(expected.items(), quoted={"version"}) == body(reply)


def test_format_list_reproduces_capture() -> None:
    assert format_list(EXPECTED_LIST) == body(LIST_TUBES)


def test_accepts_bytearray_and_memoryview() -> None:
    data = body(STATS)
    assert parse_stats(bytearray(data)) == EXPECTED_STATS  # type: ignore[arg-type]
    assert parse_stats(memoryview(data)) == EXPECTED_STATS  # type: ignore[arg-type]
    assert parse_list(bytearray(body(LIST_TUBES))) == EXPECTED_LIST  # type: ignore[arg-type]


# --- 1.13 quoting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v112", "v113"),
    [
        (b"name: true", b'name: "true"'),
        (b"tube: true", b'tube: "true"'),
        (b"hostname: vm", b'hostname: "vm"'),
        (b"os: #1 SMP PREEMPT_DYNAMIC @0", b'os: "#1 SMP PREEMPT_DYNAMIC @0"'),
        (b"platform: x86_64", b'platform: "x86_64"'),
        (b'version: "1.13"', b'version: "1.13"'),
    ],
)
def test_113_quoted_values_match_112(v112: bytes, v113: bytes) -> None:
    old = parse_stats(b"---\n" + v112 + b"\n")
    new = parse_stats(b"---\n" + v113 + b"\n")
    assert typed(old) == typed(new)


def test_113_full_stats_matches_112() -> None:
    data = body(STATS)
    for key in (b"hostname", b"os", b"platform"):
        start = data.index(b"\n" + key + b": ") + len(key) + 3
        end = data.index(b"\n", start)
        data = data[:start] + b'"' + data[start:end] + b'"' + data[end:]
    assert b'os: "#1 SMP PREEMPT_DYNAMIC @0"\n' in data
    assert typed(parse_stats(data)) == typed(EXPECTED_STATS)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'""', ""),
        (b'"', '"'),
        (b'""""', '""'),
        (b'"a"b"', 'a"b'),
        (b'"a', '"a'),
        (b'a"', 'a"'),
        (b'x "y"', 'x "y"'),
    ],
)
def test_exactly_one_pair_of_quotes_is_stripped(raw: bytes, value: str) -> None:
    assert parse_stats(b"---\nhostname: " + raw + b"\n") == {"hostname": value}


# --- typing by key, never by look ---------------------------------------------------------

TRICKY_NAMES = ["true", "false", "123", "null", "on", "off", "yes", "0x1F", "1.10", "1e3", "~"]


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_tricky_tube_names_stay_str(name: str) -> None:
    raw = name.encode()
    assert parse_list(b"---\n- default\n- " + raw + b"\n") == ["default", name]
    for text in (raw, b'"' + raw + b'"'):
        tube = parse_stats(b"---\nname: " + text + b"\ncurrent-jobs-ready: 1\n")
        assert typed(tube) == {"name": (str, name), "current-jobs-ready": (int, 1)}
        job = parse_stats(b"---\nid: 7\ntube: " + text + b"\nstate: ready\n")
        assert typed(job) == {"id": (int, 7), "tube": (str, name), "state": (str, "ready")}


def test_server_id_stays_str_even_when_all_digits() -> None:
    result = parse_stats(b"---\npid: 1\nid: 1234567890123456\n")
    assert typed(result) == {"pid": (int, 1), "id": (str, "1234567890123456")}


def test_job_id_is_int_only_next_to_tube() -> None:
    assert parse_stats(b"---\nid: 42\ntube: t\n")["id"] == 42
    assert parse_stats(b"---\ntube: t\nid: 42\n")["id"] == 42
    assert parse_stats(b"---\nid: 42\nname: t\n")["id"] == "42"
    assert parse_stats(b'---\nid: "42"\ntube: t\n')["id"] == 42


def test_unknown_keys_are_kept_as_str() -> None:
    result = parse_stats(b"---\npid: 1\nnew-counter: 42\nnew-flag: true\n")
    assert typed(result) == {
        "pid": (int, 1),
        "new-counter": (str, "42"),
        "new-flag": (str, "true"),
    }


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"pause-time-left: 0", 0),
        (b"pause-time-left: 598", 598),
        (b"pause-time-left: -3", -3),
        (b"rusage-utime: 12.500000", 12.5),
        (b"rusage-stime: 0.000001", 0.000001),
        (b"draining: true", True),
        (b"draining: false", False),
        (b"pid: 007", 7),
        (b"binlog-records-written: 18446744073709551615", 2**64 - 1),
        (b'pid: "5"', 5),
    ],
)
def test_typed_fields(line: bytes, value: Value) -> None:
    result = parse_stats(b"---\n" + line + b"\n")
    assert typed(result) == {line.partition(b": ")[0].decode(): (type(value), value)}


def test_value_may_contain_separator_and_hash() -> None:
    result = parse_stats(b"---\nos: #1 SMP: x: y\nhostname: a #b\n")
    assert result == {"os": "#1 SMP: x: y", "hostname": "a #b"}


def test_undecodable_bytes_are_kept() -> None:
    result = parse_stats(b"---\nhostname: caf\xc3\xa9-\xff\n")
    assert result == {"hostname": "caf\u00e9-\udcff"}
    assert format_dict(result.items()) == b"---\nhostname: caf\xc3\xa9-\xff\n"
    assert parse_list(b"---\n- \xff\n") == ["\udcff"]


# --- malformed input ----------------------------------------------------------------------

MALFORMED_STATS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"---\n", id="empty-document"),
    pytest.param(b"---", id="header-only-no-newline"),
    pytest.param(b"pid: 1\n", id="no-header"),
    pytest.param(b"--\npid: 1\n", id="short-header"),
    pytest.param(b"---\r\npid: 1\n", id="crlf-header"),
    pytest.param(b" ---\npid: 1\n", id="indented-header"),
    pytest.param(b"---\npid: 1", id="missing-final-newline"),
    pytest.param(b"---\npid: 1\nuptime: 2", id="bytes-after-last-newline"),
    pytest.param(b"---\npid: 1\r\n", id="crlf-line"),
    pytest.param(b"---\npid 1\n", id="no-separator"),
    pytest.param(b"---\npid:1\n", id="colon-without-space"),
    pytest.param(b"---\npid:\n", id="bare-colon"),
    pytest.param(b"---\n\n", id="blank-line"),
    pytest.param(b"---\npid: 1\n\n", id="trailing-blank-line"),
    pytest.param(b"---\n: x\n", id="empty-key"),
    pytest.param(b"---\n- x\n", id="list-item"),
    pytest.param(b"---\npid: 1\npid: 1\n", id="duplicate-known-key"),
    pytest.param(b"---\nfoo: 1\nbar: 2\nfoo: 1\n", id="duplicate-unknown-key"),
    pytest.param(b"---\nos: a\nos: a\n", id="duplicate-str-key"),
    pytest.param(b"---\npid: 9" + b"9" * 5000 + b"\n", id="int-too-long"),
    pytest.param(b"---\nid: abc\ntube: t\n", id="job-id-not-digits"),
    pytest.param(b"---\nid: -1\ntube: t\n", id="job-id-negative"),
    pytest.param(b"---\nid: \ntube: t\n", id="job-id-empty"),
    pytest.param(b"---\nid: 1" + b"0" * 5000 + b"\ntube: t\n", id="job-id-too-long"),
]
_BAD_UINTS = [b"+5", b"1_000", b" 5", b"5 ", b"0x10", b"-1", b"", b'""', b"1.0", b"1e3", b"five"]
_BAD_UINTS += [
    "\u0663".encode(),  # ARABIC-INDIC DIGIT THREE: a Unicode digit, not an ASCII one
    "\u00b2".encode(),  # SUPERSCRIPT TWO
]
_BAD_SIGNED = [b"+5", b"--5", b"-", b"5-", b"- 5", b"", b"1.5", b"0x10", b"-+5"]
_BAD_FLOATS = [b"1", b".5", b"1.", b"1e3", b"1.0e3", b"nan", b"inf", b"-0.5", b"1.2.3", b" 1.0"]
_BAD_BOOLS = [b"True", b"TRUE", b"yes", b"on", b"1", b"0", b"", b"true "]
MALFORMED_STATS += [
    pytest.param(b"---\n" + key + b": " + value + b"\n", id=f"{key.decode()}-{value!r}")
    for keys, values in [
        ((b"pid", b"pri", b"current-jobs-ready"), _BAD_UINTS),
        ((b"pause-time-left",), _BAD_SIGNED),
        ((b"rusage-utime", b"rusage-stime"), _BAD_FLOATS),
        ((b"draining",), _BAD_BOOLS),
    ]
    for key in keys
    for value in values
]


@pytest.mark.parametrize("data", MALFORMED_STATS)
def test_malformed_stats(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_stats(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"---\n", id="empty-document"),
        pytest.param(b"- default\n", id="no-header"),
        pytest.param(b"--\n- default\n", id="short-header"),
        pytest.param(b"---\n- default", id="missing-final-newline"),
        pytest.param(b"---\n- default\n- emails", id="bytes-after-last-newline"),
        pytest.param(b"---\n-default\n", id="no-space"),
        pytest.param(b"---\ndefault\n", id="no-dash"),
        pytest.param(b"---\n - default\n", id="indented"),
        pytest.param(b"---\nname: default\n", id="dict-line"),
        pytest.param(b"---\n- \n", id="empty-item"),
        pytest.param(b'---\n- ""\n', id="empty-quoted-item"),
        pytest.param(b"---\n-\n", id="bare-dash"),
        pytest.param(b"---\n\n", id="blank-line"),
        pytest.param(b"---\n- default\n\n", id="trailing-blank-line"),
    ],
)
def test_malformed_list(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_list(data)


def test_protocol_error_names_the_bad_line() -> None:
    with pytest.raises(ProtocolError, match="pid: x"):
        parse_stats(b"---\nuptime: 1\npid: x\n")
    with pytest.raises(ProtocolError, match=r"duplicate.*uptime"):
        parse_stats(b"---\nuptime: 1\npid: 2\nuptime: 1\n")


# --- formatting ---------------------------------------------------------------------------


def test_format_dict_value_kinds() -> None:
    fields: list[tuple[str, Value]] = [
        ("version", "1.12"),
        ("pid", 5),
        ("pause-time-left", -2),
        ("rusage-utime", 1.5),
        ("rusage-stime", 0.0000004),
        ("draining", True),
        ("hostname", "vm"),
    ]
    assert format_dict(fields, quoted={"version", "hostname"}) == (
        b'---\nversion: "1.12"\npid: 5\npause-time-left: -2\nrusage-utime: 1.500000\n'
        b'rusage-stime: 0.000000\ndraining: true\nhostname: "vm"\n'
    )


def test_format_empty() -> None:
    assert format_dict([]) == b"---\n"
    assert format_list([]) == b"---\n"


@pytest.mark.parametrize(
    "fields",
    [
        [("name", "a\nb")],
        [("name", "a\rb")],
        [("na\nme", "x")],
        [("na: me", "x")],
        [("", "x")],
    ],
)
def test_format_dict_refuses_to_break_lines(fields: list[tuple[str, Value]]) -> None:
    with pytest.raises(ValueError, match=r"key|line break"):
        format_dict(fields)


def test_format_list_refuses_to_break_lines() -> None:
    with pytest.raises(ValueError, match="line break"):
        format_list(["a\nb"])


# --- properties ---------------------------------------------------------------------------

UINT_FIELDS = [
    *_STATS_COUNT_NAMES,
    "uptime",
    "binlog-oldest-index",
    "binlog-current-index",
    "binlog-records-migrated",
    "binlog-records-written",
    "binlog-max-size",
    "current-using",
    "current-watching",
    "pause",
    "pri",
    "age",
    "delay",
    "ttr",
    "time-left",
    "file",
    "reserves",
    "timeouts",
    "releases",
    "buries",
    "kicks",
]
STR_FIELDS = ["name", "tube", "state", "version", "hostname", "os", "platform"]
FLOAT_FIELDS = ["rusage-utime", "rusage-stime"]
KNOWN_FIELDS = {*UINT_FIELDS, *STR_FIELDS, *FLOAT_FIELDS, "id", "pause-time-left", "draining"}

TUBE_CHARS = string.ascii_letters + string.digits + "-+/;.$_()"
tube_names = st.text(TUBE_CHARS, min_size=1, max_size=200).filter(lambda s: s[0] != "-")
letter_tube_names = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(string.ascii_letters),
    st.text(TUBE_CHARS, max_size=40),
)
# Anything that fits on one line and has no '"', so a pair of quotes is never ambiguous; an
# explicit alphabet (with ': ', '#', non-ASCII and Unicode line separators that only
# str.splitlines would split on) keeps generation cheap.
SAFE_CHARS = (
    "".join(sorted(set(string.printable) - set('"\n\r\x0b\x0c')))
    + "\u00e9\u20ac\U0001f600\x85\u2028"
)
safe_text = st.text(SAFE_CHARS, max_size=60)
uints = st.integers(0, 2**64 - 1)
# Seconds with microseconds, exactly what "%.6f" can carry.
rusage = st.integers(0, 10**12).map(lambda micros: micros / 10**6)


def _stats_fields(
    signed: st.SearchStrategy[int], text: st.SearchStrategy[str]
) -> st.SearchStrategy[dict[str, Value]]:
    """Dicts of known (non-id) fields, each one present or not."""
    optional: dict[str, st.SearchStrategy[Value]] = {name: uints for name in UINT_FIELDS}
    optional.update({name: rusage for name in FLOAT_FIELDS})
    optional.update({name: text for name in STR_FIELDS})
    optional["pause-time-left"] = signed
    optional["draining"] = st.booleans()
    return st.fixed_dictionaries({}, optional=optional).filter(bool)


@st.composite
def documents(draw: st.DrawFn) -> tuple[list[tuple[str, Value]], set[str]]:
    """Fields in a random order (plus unknown ones), and a random set of keys to quote."""
    fields = draw(_stats_fields(st.integers(-(2**63), 2**63), safe_text))
    unknown = draw(
        st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True).filter(
                lambda key: key not in KNOWN_FIELDS
            ),
            safe_text,
            max_size=3,
        )
    )
    items = draw(st.permutations([*fields.items(), *unknown.items()]))
    quoted = draw(st.sets(st.sampled_from([key for key, _ in items])))
    return items, quoted


@given(documents())
def test_round_trip_dict(doc: tuple[list[tuple[str, Value]], set[str]]) -> None:
    items, quoted = doc
    result = parse_stats(format_dict(items, quoted=quoted))
    assert list(result.items()) == items
    assert typed(result) == typed(dict(items))


@given(
    job_id=uints,
    tube=tube_names,
    fields=_stats_fields(st.integers(-(2**31), 2**31), safe_text),
    quote_tube=st.booleans(),
)
def test_round_trip_stats_job(
    job_id: int, tube: str, fields: dict[str, Value], quote_tube: bool
) -> None:
    fields.pop("tube", None)
    items: list[tuple[str, Value]] = [("id", job_id), ("tube", tube), *fields.items()]
    data = format_dict(items, quoted={"tube"} if quote_tube else ())
    assert typed(parse_stats(data)) == typed(dict(items))


@given(server_id=st.text("0123456789abcdef", min_size=16, max_size=16), pid=uints)
def test_round_trip_server_id(server_id: str, pid: int) -> None:
    items: list[tuple[str, Value]] = [("pid", pid), ("id", server_id)]
    assert typed(parse_stats(format_dict(items))) == typed(dict(items))


@given(st.lists(tube_names, min_size=1, max_size=50))
def test_round_trip_list(items: list[str]) -> None:
    assert parse_list(format_list(items)) == items


def _pyyaml_keeps(text: str) -> bool:
    """Whether PyYAML reads ``text`` as that very str, as a mapping value."""
    loaded = yaml_load(f"k: {text}")
    return isinstance(loaded, dict) and loaded.get("k") == text and type(loaded["k"]) is str


@settings(deadline=None)
@given(
    fields=_stats_fields(st.integers(-(2**31), 2**31), letter_tube_names),
    version=st.from_regex(r"1\.[0-9]{1,2}", fullmatch=True),
)
def test_pyyaml_oracle_dict(fields: dict[str, Value], version: str) -> None:
    for value in fields.values():
        if type(value) is str:
            assume(_pyyaml_keeps(value))
    fields["version"] = version  # quoted, as beanstalkd always does
    data = format_dict(fields.items(), quoted={"version"})
    assert typed(parse_stats(data)) == typed(yaml_load(data.decode()))


@settings(deadline=None)
@given(st.lists(letter_tube_names, min_size=1, max_size=20))
def test_pyyaml_oracle_list(items: list[str]) -> None:
    for item in items:
        assume(_pyyaml_keeps(item))
    data = format_list(items)
    loaded = yaml_load(data.decode())
    assert isinstance(loaded, list)
    assert [(type(item), item) for item in parse_list(data)] == [
        (type(item), item) for item in loaded
    ]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_protocol_error(data: bytes) -> None:
    for parse in (parse_stats, parse_list):
        try:
            parse(data)
        except ProtocolError:
            pass


@given(st.lists(st.sampled_from([b"pid: 1", b"name: x", b"- a", b"os: #1", b"", b"id: 3"])))
def test_line_soup_parses_or_raises_protocol_error(lines: list[bytes]) -> None:
    data = b"---\n" + b"".join(line + b"\n" for line in lines)
    for parse in (parse_stats, parse_list):
        try:
            parse(data)
        except ProtocolError:
            pass
