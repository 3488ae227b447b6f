"""No text from outside can forge a log line: whatever a logged value holds, each record
is one line that can be read back exactly, and a traceback's lines are marked as its own.
The end-to-end tests log through cli.configure_logging, as the running bot does."""

import contextlib
import io
import itertools
import logging
import re
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import sqs_message
from tests.voisobot.test_delivery import make_config
from voisobot import cli
from voisobot.intake import Intake
from voisobot.logs import CONTINUATION, ESCAPED_CATEGORIES, continued, escaped

RECORD_START = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
_ESCAPE = re.compile(r"\\(\\|n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")
_SHORT = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}

# Line breaks, terminal escapes, bidi overrides, invisible and tag characters, and a record
# start to forge after a break.
HOSTILE = "\n\r\x1b\x00\x0b\x0c\x1c\x85\u2028\u2029\u202e\u200b\ufeff\U000e0041\\\t"
FORGED = "2026-11-24 12:00:00,000 ERROR voisobot.intake: "
hostile_text = st.text(alphabet=st.sampled_from(HOSTILE) | st.characters()) \
    | st.lists(st.sampled_from([FORGED, *HOSTILE, "a", "\\n"])).map("".join)


def unescaped(text: str) -> str:
    """The inverse of escaped(): what a reader of the log recovers."""
    return _ESCAPE.sub(lambda m: _SHORT.get(m[1]) or chr(int(m[1][1:], 16)), text)


@pytest.mark.parametrize("text, shown", [
    ("plain text: ü é 日本 ✅", "plain text: ü é 日本 ✅"),
    ("a\nb", "a\\nb"),
    ("a\r\nb", "a\\r\\nb"),
    ("tab\there", "tab\\there"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("nul\x00", "nul\\x00"),
    ("next line\x85", "next line\\x85"),
    ("line\u2028separator", "line\\u2028separator"),
    ("para\u2029separator", "para\\u2029separator"),
    ("bidi \u202eevil", "bidi \\u202eevil"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("tag\U000e0041", "tag\\U000e0041"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ("C:\\new", "C:\\\\new"),
    ("a literal \\n is not a break", "a literal \\\\n is not a break"),
    ("", ""),
])
def test_escaped_shows_each_line_breaking_or_hidden_character(text, shown):
    assert escaped(text) == shown
    assert unescaped(shown) == text


def test_every_character_of_the_escaped_categories_is_escaped():
    """Enumerated from unicodedata, not from a list written by hand."""
    chars = [chr(code) for code in range(sys.maxunicode + 1)
             if unicodedata.category(chr(code)) in ESCAPED_CATEGORIES]
    assert {"Cc", "Cf", "Zl", "Zp"} <= {unicodedata.category(c) for c in chars}
    text = "".join(chars)
    shown = escaped(text)
    assert not any(unicodedata.category(c) in ESCAPED_CATEGORIES for c in shown)
    assert unescaped(shown) == text


@settings(max_examples=200)
@given(text=hostile_text)
def test_any_text_is_escaped_onto_one_line_and_read_back_exactly(text):
    shown = escaped(text)
    assert len(shown.splitlines()) <= 1
    assert not any(unicodedata.category(c) in ESCAPED_CATEGORIES for c in shown)
    assert unescaped(shown) == text


def test_a_traceback_is_continued_on_marked_lines():
    assert continued("Traceback:\n  File x\nValueError: a\u2028b") == [
        f"{CONTINUATION}Traceback:", f"{CONTINUATION}  File x",
        f"{CONTINUATION}ValueError: a\\u2028b"]


# --- through cli.configure_logging, as the bot logs ----------------------------------------

class Records(logging.Handler):
    """What was logged, as records, beside the formatted stream."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def restored_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@contextlib.contextmanager
def bot_log():
    """cli.configure_logging writing to a captured standard error (swapped in the test's
    body: pytest swaps it between phases), and the records logged."""
    stream, records = io.StringIO(), Records()
    with contextlib.redirect_stderr(stream):
        cli.configure_logging("INFO")  # the default log.level
        logging.getLogger().addHandler(records)
        yield stream, records


def read_back(output: str) -> list[tuple[str, list[str]]]:
    """The records in the log, each as (its line, the lines continued under it), checking
    that every line either starts a record or is marked as a continuation."""
    entries: list[tuple[str, list[str]]] = []
    for line in output.splitlines():  # splits at every break a reader might honour
        if RECORD_START.match(line):
            entries.append((line, []))
        else:
            assert line.startswith(CONTINUATION) and entries, f"a stray line: {line!r}"
            entries[-1][1].append(line)
    return entries


def log_everywhere(text: str, intake: Intake, serial: int) -> None:
    """Log ``text`` the ways text from outside reaches the log."""
    intake.store_messages([sqs_message("{" + text, message_id=f"m{serial}-{text}")])
    logging.getLogger("slack_bolt.App").warning("failed to run a listener: %s", text)
    logging.getLogger("waitress").error(text)
    try:
        raise ValueError(f"bad value {text}")
    except ValueError:
        logging.getLogger("voisobot.serve").exception("a request failed: %s", text)


def assert_one_record_per_line_and_readable(stream: io.StringIO, records: Records) -> None:
    entries = read_back(stream.getvalue())
    assert len(entries) == len(records.records)
    for (line, under), record in zip(entries, records.records, strict=True):
        assert unescaped(RECORD_START.sub("", line, count=1)) == record.getMessage()
        if record.exc_info:
            traceback = "\n".join(unescaped(x.removeprefix(CONTINUATION)) for x in under)
            assert traceback.endswith(f"ValueError: {record.exc_info[1]}")
        else:
            assert under == []


serials = itertools.count()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile_text)
def test_no_logged_text_can_forge_a_record(restored_logging, store, text):
    with bot_log() as (stream, records):
        log_everywhere(text, Intake(None, make_config().sqs, store), next(serials))
    assert len(records.records) == 4
    assert_one_record_per_line_and_readable(stream, records)


@pytest.mark.parametrize("text", [
    f"x\n{FORGED}the allow-list was emptied",
    f"x\r{FORGED}forged after a carriage return",
    f"x\u2028{FORGED}forged after a line separator",
    f"x\x85{FORGED}forged after a next-line",
    f"x\x0b\x0c\x1c\x1d\x1e{FORGED}forged after other breaks",
    "\x1b[2K\x1b[1Gerased the line on a terminal",
    "\\n looks like an escape",
    "",
])
def test_forged_records_stay_inside_the_real_one(restored_logging, store, text):
    with bot_log() as (stream, records):
        log_everywhere(text, Intake(None, make_config().sqs, store), next(serials))
    assert_one_record_per_line_and_readable(stream, records)
    assert not any(line.startswith(FORGED) for line in stream.getvalue().splitlines())


def test_the_rejection_warning_names_the_message_on_one_line(restored_logging, store):
    with bot_log() as (stream, _):
        Intake(None, make_config().sqs, store).store_messages(
            [sqs_message("not json", message_id="id\nERROR forged")])
    (line,) = stream.getvalue().splitlines()
    assert "WARNING voisobot.intake: rejected SQS message id\\nERROR forged: " in line
