"""Log lines that no text from outside can forge.

A login name, an SQS MessageId, a button's value or an exception's message may hold a
line break followed by something that looks like a log line of its own. Rather than
trusting every module to escape every value it logs, the one formatter every handler
uses (cli.configure_logging) puts each record on one line by construction:

- in the record's line, every character of the Unicode categories Cc (controls, such
  as \\n, \\r, ESC and U+0085), Cf (format characters, such as bidi overrides and tag
  characters), Zl and Zp (U+2028, U+2029), and lone surrogates, is shown as an escape
  (``\\n``, ``\\x1b``, ``\\u2028``, ``\\U000e0041``), and a backslash as ``\\\\``, so the
  text can be read back exactly;
- a traceback or stack below it is escaped the same way line by line, and every one of
  its lines starts with CONTINUATION, which no record's line starts with.

The JSON format (``log.format = "json"``, JsonFormatter) is one object per line by
construction too: json.dumps escapes every control character, and with ``ensure_ascii``
every character beyond ASCII (U+2028, a lone surrogate), so a line holds nothing a reader
could split on.

Log calls carry the ids in play with ``extra=ids(...)``: the JSON format shows them as
fields, and the text format leaves them to the message, which names them already.
"""

import json
import logging
import unicodedata
from datetime import UTC, datetime

ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
CONTINUATION = "  | "  # starts every line of a traceback or stack under its record
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
IDS = ("sqs_message_id", "event_id", "alert_id", "channel")  # the ids a record may carry

_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escaped(text: str) -> str:
    """``text`` on one line, every character that could break or hide part of a line
    shown as a visible escape, and backslashes doubled so the escapes are unambiguous."""
    if text.isprintable() and "\\" not in text:  # the common case, at C speed
        return text
    return "".join(_escaped_char(char) for char in text)


def _escaped_char(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if unicodedata.category(char) not in ESCAPED_CATEGORIES:
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def continued(text: str) -> list[str]:
    """A multi-line text (a traceback, without the line break that ends it) as lines under
    a record, each escaped and marked."""
    return [CONTINUATION + escaped(line) for line in text.split("\n")]


class LineFormatter(logging.Formatter):
    """The text log format: ``TEXT_FORMAT`` on one line per record, then any traceback
    or stack on continuation lines."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None):
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        head, details = self.format_parts(record)
        return "\n".join([escaped(head), *(line for text in details for line in continued(text))])

    def format_parts(self, record: logging.LogRecord) -> tuple[str, list[str]]:
        """The record's line as the format makes it, and the multi-line texts under it (a
        traceback, a stack), neither yet escaped."""
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        details = [text for text in (self.exception_text(record), self.stack_text(record))
                   if text]
        return self.formatMessage(record), details

    def exception_text(self, record: logging.LogRecord) -> str:
        """The record's traceback, if any. Not cached in record.exc_text as
        logging.Formatter does: other handlers (pytest's capture) would take this format's
        lines for the traceback."""
        if record.exc_info:
            return self.formatException(record.exc_info)
        return record.exc_text or ""

    def stack_text(self, record: logging.LogRecord) -> str:
        return self.formatStack(record.stack_info) if record.stack_info else ""


class JsonFormatter(LineFormatter):
    """The JSON log format: one object per line with time (ISO 8601, UTC), level, logger,
    message, the ids the record carries (IDS), and its exception and stack as text."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": utc_time(record.created), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        for name in IDS:
            if (value := getattr(record, name, None)) is not None:
                entry[name] = value if _is_id(value) else str(value)
        if exception := self.exception_text(record):
            entry["exception"] = exception
        if stack := self.stack_text(record):
            entry["stack"] = stack
        return json.dumps(entry, ensure_ascii=True)


FORMATTERS = {"text": LineFormatter, "json": JsonFormatter}  # log.format


def ids(*, sqs_message_id: str | None = None, event_id: int | None = None,
        alert_id: int | None = None, channel: str | None = None) -> dict:
    """``extra=`` for a log call: the ids in play, shown as fields in the JSON format."""
    given = {"sqs_message_id": sqs_message_id, "event_id": event_id, "alert_id": alert_id,
             "channel": channel}
    return {name: value for name, value in given.items() if value is not None}


def utc_time(created: float) -> str:
    """A record's time as ISO 8601 in UTC to the millisecond, e.g. 2026-11-24T12:00:00.123Z."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_id(value) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class Quieted(logging.Filter):
    """A library's records that say nothing to an operator, demoted to DEBUG: those whose
    message starts with one of ``prefixes``. Added to the logger they are logged on."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not record.getMessage().startswith(self.prefixes):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
