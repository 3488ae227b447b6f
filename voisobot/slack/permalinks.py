"""Links to alerts' messages, for /voiso unacked and the App Home.

Fetched when first shown (chat.getPermalink) and kept, rather than fetched when each alert
is posted and stored: most alerts are acknowledged from their message and never listed, so
asking at post time would double the Web API calls of every alert for links rarely shown,
and need a migration; a message's permalink never changes, so a kept one never goes stale.
Only a link Slack gave, starting https:// and holding nothing that could end a Slack link
(spaces, ``<``, ``>``, ``|``, quotes), becomes a SafeUrl; anything else shows no link.
"""

import threading
from collections import OrderedDict

from voisobot.routing import is_slack
from voisobot.slack import sender as slack
from voisobot.values import SafeUrl

KEPT = 10_000  # links remembered, the most recently shown ones
_UNSAFE = frozenset(' <>|"\\\n\r\t')


def safe_link(link: str | None) -> SafeUrl | None:
    """A link Slack gave as a SafeUrl, or None if it does not look like one of Slack's."""
    if not isinstance(link, str) or not link.startswith("https://") or len(link) > 2000 \
            or any(c in _UNSAFE or not c.isprintable() for c in link):
        return None
    return SafeUrl(link)


class Permalinks:
    """``permalinks(channel, ts)``: the message's SafeUrl, or None (not a Slack message, or
    Slack gave none now: asked again next time)."""

    def __init__(self, client):
        self.client = client
        self._kept: OrderedDict[tuple[str, str], SafeUrl] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, channel: str, ts: str | None) -> SafeUrl | None:
        if not ts or not is_slack(channel):
            return None
        key = (channel, ts)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        link = safe_link(slack.permalink(self.client, channel, ts))
        if link is not None:
            with self._lock:
                self._kept[key] = link
                while len(self._kept) > KEPT:
                    self._kept.popitem(last=False)
        return link
