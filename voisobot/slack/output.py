"""Alerts to Slack channels: what the delivery job asks of a platform (voisobot.delivery's
``Output``), done with the Slack renderer and the Web API sender.

A Slack message can be updated in place, threaded, and found again: a post that may have
reached Slack is looked for in the channel's history (by the metadata naming this store,
alert and first event) before it is posted again. Without the history scopes that lookup is
impossible; it is said once, and such alerts are posted again (at least once).
"""

import logging

from voisobot.outbox import AlertKey
from voisobot.render import AlertView
from voisobot.routing import is_slack
from voisobot.sending import SendResult
from voisobot.slack.sender import BAD_TOKEN_ERRORS, history_start

log = logging.getLogger(__name__)

NO_TOKEN = SendResult("retry", error="no_slack_token",
                      advice="SLACK_BOT_TOKEN is not set; set it and restart (the alerts wait)")


class SlackOutput:
    name = "Slack"
    editable = True  # chat.update
    threads = True   # thread replies for the events of a group

    def __init__(self, renderer, sender, pace_seconds: float = 1.0):
        """``renderer``: slack.render.SlackRenderer; ``sender``: slack.sender.SlackSender,
        or None in a run without a Slack token (its alerts wait)."""
        self.renderer, self.sender, self.pace_seconds = renderer, sender, pace_seconds
        self.history_unreadable = False

    def owns(self, channel: str) -> bool:
        return is_slack(channel)

    def where(self, channel: str) -> str:
        return f"Slack channel {channel}"

    def pace_key(self, channel: str) -> str:
        return channel  # Slack allows about one write a second per channel

    def blocked(self, channel: str) -> SendResult | None:
        return None if self.sender is not None else NO_TOKEN

    def post(self, channel: str, view: AlertView, key: AlertKey | None) -> SendResult:
        return self.sender.post(channel, self.renderer.render(view), key)

    def post_digest(self, channel: str, view, key) -> SendResult:
        """The digest (voisobot.digest.DigestView), named by ``key`` in its metadata."""
        return self.sender.post(channel, self.renderer.render_digest(view), key)

    def update(self, channel: str, ts: str, view: AlertView) -> SendResult:
        return self.sender.update(channel, ts, self.renderer.render(view))

    def reply(self, channel: str, view: AlertView, thread_ts: str) -> SendResult:
        return self.sender.post(channel, self.renderer.render_reply(view), None,
                                thread_ts=thread_ts)

    def searchable(self) -> bool:
        return not self.history_unreadable

    def find(self, channel: str, key: AlertKey, first_tried_at: str | None) -> SendResult:
        """The earlier post of the alert: done with its ts, done without one when it is not
        there, else why it could not be known."""
        found = self.sender.find(channel, key, history_start(first_tried_at))
        if found.error != "missing_scope":
            return found
        self.history_unreadable = True
        log.error("cannot read channel history to rule out a duplicate post (%s); alerts "
                  "whose post may have reached Slack will be posted again", found.advice)
        return SendResult("done", channel)

    def pauses_all(self, result: SendResult) -> bool:
        """A refused token stops every post, not one channel's."""
        return result.error in BAD_TOKEN_ERRORS
