"""Voiso's emails as addresses to find people by, in Slack or in Teams: which text is worth
asking about, and the address a person is known by after ``[confirm.aliases]``."""

import re

from voisobot.config import ConfirmConfig

MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path, and so on any address
# One "@" with something on each side and no whitespace; control characters and other
# unprintable text are refused separately (str.isprintable).
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


def looks_like_address(text: str) -> bool:
    """Whether ``text`` is worth asking Slack about: ``local@domain``, at most 254
    characters, no whitespace, control or other unprintable characters. Anything else comes
    from a malformed or hostile event and is no one's address."""
    return (len(text) <= MAX_EMAIL_LENGTH and text.isprintable()
            and _ADDRESS.fullmatch(text) is not None)


def voiso_address(confirm: ConfirmConfig, voiso_email: str) -> str:
    """The address a person is known by in Slack or Teams: Voiso's, lower case, with
    ``[confirm.aliases]`` applied."""
    email = voiso_email.lower()
    return confirm.aliases.get(email, email).lower()
