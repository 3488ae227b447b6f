"""Look-alike names: a login name that mixes scripts (``admin@acme.io`` whose first letter
is a Cyrillic a, U+0430) looks exactly like the real admin. Alerts and answers say so, and
the cache knows which names look alike.

Scripts and look-alike letters come from Unicode's own data (Scripts.txt and the
confusables of UTS #39) as the confusable-homoglyphs package ships them: pure Python, no
dependencies, and what django-registration uses to refuse such user names.

- ``mixed_scripts(name)``: the scripts of a name that mixes them ("Latin + Cyrillic"), or
  "". Digits, punctuation and combining marks belong to no script; the combinations UTS #39
  calls highly restrictive (Latin with Han and Hiragana/Katakana, Bopomofo or Hangul) are
  ordinary writing, not a warning.
- ``skeleton(name)``: what a name looks like, for comparing: each letter of another script
  that looks like a Latin letter becomes that letter, and case is folded. Two names with one
  skeleton look alike.
- The ``accounts`` table (migration 0008) holds every name in the cache whose skeleton is
  not simply its lower case, kept by ``index_new_accounts`` behind a cursor, off the
  intake's path; ``lookalikes`` finds the other names that look like one, there and among
  the events stored after the cursor, without writing.
"""

import functools
import sqlite3

from confusable_homoglyphs import categories, confusables

from voisobot.store import catch_up, snapshot, transaction

ACCOUNTS_CURSOR = "accounts_indexed"
ACCOUNTS_BATCH = 5000
MAX_LOOKALIKES = 10
_NO_SCRIPT = frozenset({"COMMON", "INHERITED"})
# UTS #39 "highly restrictive": these mixes are how Japanese, Chinese and Korean are written.
_ORDINARY_MIXES = (frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
                   frozenset({"LATIN", "HAN", "BOPOMOFO"}),
                   frozenset({"LATIN", "HAN", "HANGUL"}))


@functools.lru_cache(maxsize=8192)
def _script(char: str) -> str:
    return categories.alias(char)


def scripts(name: str) -> list[str]:
    """The scripts of a name's letters, Latin first, then in alphabetical order."""
    if name.isascii():
        return ["LATIN"] if any(c.isalpha() for c in name) else []
    found = {_script(char) for char in name} - _NO_SCRIPT
    return sorted(found, key=lambda script: (script != "LATIN", script))


def mixed_scripts(name: str | None) -> str:
    """"Latin + Cyrillic" for a name that mixes scripts suspiciously, else ""."""
    if not isinstance(name, str) or name.isascii():
        return ""
    found = scripts(name)
    if len(found) < 2 or any(set(found) <= mix for mix in _ORDINARY_MIXES):
        return ""
    return " + ".join(script.replace("_", " ").title() for script in found)


def warning(name: str | None) -> str:
    """The warning shown beside a name, or ""."""
    mix = mixed_scripts(name)
    return f"mixed scripts: {mix}" if mix else ""


@functools.lru_cache(maxsize=8192)
def _latin(char: str) -> str:
    """The Latin letter ``char`` looks like, or ``char`` itself."""
    if char.isascii() or _script(char) == "LATIN":
        return char
    for glyph in confusables.confusables_data.get(char, ()):
        if len(glyph["c"]) == 1 and glyph["c"].isascii() and glyph["c"].isalpha():
            return glyph["c"]
    return char


def skeleton(name: str) -> str:
    """What ``name`` looks like: other scripts' Latin look-alikes made Latin, case folded."""
    if name.isascii():
        return name.lower()
    return "".join(map(_latin, name)).casefold()


def _exotic(name: str | None) -> bool:
    """Whether a name looks like something other than itself in lower case."""
    return isinstance(name, str) and not name.isascii() and skeleton(name) != name.lower()


_NOT_YET_INDEXED = """
    SELECT id, user, who FROM events
    WHERE id > (SELECT value FROM cursors WHERE name = 'accounts_indexed') ORDER BY id
"""


def index_new_accounts(conn: sqlite3.Connection, limit: int = ACCOUNTS_BATCH) -> int:
    """Add the look-alike-prone names of up to ``limit`` events stored since the last call
    to ``accounts``, moving the cursor in the same transaction."""
    with transaction(conn):
        rows = conn.execute(_NOT_YET_INDEXED + " LIMIT ?", (limit,)).fetchall()
        names = {name for row in rows for name in (row["user"], row["who"]) if _exotic(name)}
        conn.executemany("INSERT OR IGNORE INTO accounts (name, skeleton) VALUES (?, ?)",
                         [(name, skeleton(name)) for name in names])
        if rows:
            conn.execute("UPDATE cursors SET value = ? WHERE name = ?",
                         (rows[-1]["id"], ACCOUNTS_CURSOR))
    return len(rows)


def index_all_new_accounts(conn: sqlite3.Connection) -> int:
    return catch_up(lambda batch: index_new_accounts(conn, batch), ACCOUNTS_BATCH)


def lookalikes(conn: sqlite3.Connection, name: str) -> list[str]:
    """Other names in the cache (users or admins) that look like ``name``: those indexed in
    ``accounts`` and those of the few events stored since the job last ran. Reads only, so
    an answer never waits for the intake's write lock."""
    shape = skeleton(name)
    with snapshot(conn):  # the index and the events behind its cursor, as of one commit
        indexed = {row[0] for row in conn.execute(
            "SELECT name FROM accounts WHERE skeleton = ? AND name != ? ORDER BY name LIMIT ?",
            (shape, name, MAX_LOOKALIKES))}
        not_yet = {other for other in _names_not_yet_indexed(conn)
                   if other != name and skeleton(other) == shape}
    found = sorted(indexed | not_yet)[:MAX_LOOKALIKES]
    if shape != name.lower() and shape.isascii():  # the plain name it imitates, if seen
        row = conn.execute("SELECT user FROM events WHERE user = ? LIMIT 1", (shape,)).fetchone()
        row = row or conn.execute("SELECT who FROM events WHERE who = ? LIMIT 1",
                                  (shape,)).fetchone()
        if row:
            found.insert(0, row[0])
    return found


def _names_not_yet_indexed(conn: sqlite3.Connection) -> set[str]:
    """The look-alike-prone names of the events stored after the cursor (a range of the rowid)."""
    rows = conn.execute(_NOT_YET_INDEXED)
    return {name for row in rows for name in (row[1], row[2]) if _exotic(name)}


def forget_pruned_accounts(conn: sqlite3.Connection) -> int:
    """Drop the names no stored event holds any more (after retention)."""
    with transaction(conn):
        return conn.execute(
            "DELETE FROM accounts WHERE NOT EXISTS (SELECT 1 FROM events WHERE user = name) "
            "AND NOT EXISTS (SELECT 1 FROM events WHERE who = name)").rowcount
