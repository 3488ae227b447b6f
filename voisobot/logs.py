"""Log lines that no text from outside can forge.

A login name, an SQS MessageId, a button's value or an exception's message may hold a
line break followed by something that looks like a log line of its own. Rather than
trusting every module to escape every value it logs, the one formatter every handler
uses (bot.configure_logging) puts each record on one line by construction:

- in the record's line, every character of the Unicode categories Cc (controls, such
  as \\n, \\r, ESC and U+0085), Cf (format characters, such as bidi overrides and tag
  characters), Zl and Zp (U+2028, U+2029), and lone surrogates, is shown as an escape
  (``\\n``, ``\\x1b``, ``\\u2028``, ``\\U000e0041``), and a backslash as ``\\\\``, so the
  text can be read back exactly;
- a traceback or stack below it is escaped the same way line by line, and every one of
  its lines starts with CONTINUATION, which no record's line starts with.

Other formats (JSON lines, later) subclass LineFormatter and replace ``format_parts``.
"""

import logging
import unicodedata

ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
CONTINUATION = "  | "  # starts every line of a traceback or stack under its record
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

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
        details = []
        # Not cached in record.exc_text as logging.Formatter does: other handlers (pytest's
        # capture) would take these escaped lines for the traceback.
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        elif record.exc_text:
            details.append(record.exc_text)
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        return self.formatMessage(record), details
