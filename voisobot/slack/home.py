"""The App Home: published with views.publish when someone opens the bot's Home tab, and
again when what it shows changes, at most once a minute per person.

Only people [access] allows by user or user group see the alerts (a Home is in no channel,
so access.channels cannot admit anyone here); anyone else gets a short note.

Its Acknowledge button (HOME_ACK_ACTION) is pressed on no alert message, so the rule of the
alerts' own buttons (a press acts only on the alert posted where it was pressed) cannot
apply. Instead: the press is checked against [access] like any other and audited whatever it
carries; its value names an alert, read as untrusted; only a posted Slack alert can be
acknowledged this way, through voisobot.acks on that alert's own message (so the same
conditional UPDATE decides between this press and one on the message); the alert's message
is then marked stale and the delivery job shows the acknowledgement there.
"""

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from slack_sdk.errors import SlackClientError

from voisobot import acks, home
from voisobot.acks import Acker, MessageRef
from voisobot.audit import AuditEntry
from voisobot.commands import Guard
from voisobot.metrics import Metrics
from voisobot.outbox import Outbox
from voisobot.presses import (
    ACK_ACTION,
    BUTTON_NAMES,
    DETAIL_VALUE_CHARS,
    NotOurButton,
    alert_id_of,
    short,
)
from voisobot.routing import is_slack
from voisobot.slack.render import SlackRenderer
from voisobot.slack.sender import NETWORK_ERRORS

log = logging.getLogger(__name__)

HOME_ACK_ACTION = "voiso_home_ack"
REFRESH_SECONDS = 60  # at most one publish per person in this long (but see press())
VIEWERS_KEPT = 1000   # people whose Home is kept up to date, the latest to open it


@dataclass
class _Published:
    at: datetime
    state: tuple | None  # what it showed (home.state_of); None for the note


class AppHome:
    def __init__(self, outbox: Outbox, renderer: SlackRenderer, client, guard: Guard,
                 health: Callable[[], home.Health], clock: Callable[[], datetime],
                 metrics: Metrics | None = None):
        self.outbox, self.renderer, self.client, self.guard = outbox, renderer, client, guard
        self.health, self.clock = health, clock
        self.metrics = metrics or Metrics()
        self._published: OrderedDict[str, _Published] = OrderedDict()
        self._lock = threading.Lock()

    def opened(self, user_id: str) -> None:
        """Someone opened the Home tab: publish it, unless it was within the minute."""
        if self._recent(user_id, self.clock()):
            return
        self._publish(user_id)

    def refresh(self) -> None:
        """Publish again each kept Home whose content changed, a minute after the last."""
        with self._lock:
            viewers = [(user, seen) for user, seen in self._published.items()
                       if seen.state is not None]
        now, state = self.clock(), None
        for user_id, seen in viewers:
            if self._recent(user_id, now):
                continue
            state = state or self._state()  # read once a run, and only if someone is due
            if state != seen.state:
                self._publish(user_id)

    def press(self, user_id: str, value: str, user_name: str = "") -> None:
        """The Home's Acknowledge: checked, audited, acknowledged through acks, counted in
        voiso_button_presses_total as an Acknowledge; then the presser's Home is published
        again at once (their own action, not a refresh)."""
        entry = AuditEntry(user_id, None, "button",
                           f"{HOME_ACK_ACTION} {value[:DETAIL_VALUE_CHARS]}", True, "")
        if self.guard.refusal(entry) is not None:  # audited as denied
            self.metrics.button_pressed(BUTTON_NAMES[ACK_ACTION], "denied")
            return
        try:
            result, outcome = self._acknowledge(user_id, value, user_name)
            self.guard.record(entry, outcome)
        except Exception:
            log.exception("a press of %s failed", entry.detail)
            result = "failed"
            self.guard.record(entry, "failed (see the log)")
        self.metrics.button_pressed(BUTTON_NAMES[ACK_ACTION], result)
        self._publish(user_id)

    def _acknowledge(self, user_id: str, value: str, user_name: str) -> tuple[str, str]:
        """What became of the press: in one word, and for the audit."""
        try:
            alert_id = alert_id_of(value)
        except NotOurButton as exc:
            return "ignored", f"ignored: {exc}"
        alert = self.outbox.alert(alert_id)
        if alert is None or alert.state != "sent" or not alert.slack_ts \
                or not is_slack(alert.channel):
            return "ignored", f"ignored: alert {alert_id} is no posted Slack alert"
        outcome = acks.acknowledge(self.outbox.store, alert_id,
                                   MessageRef(alert.channel, alert.slack_ts),
                                   Acker(user_id, "slack", user_name or None), self.clock())
        if outcome.status == "acknowledged":
            self.outbox.mark_stale(alert_id)  # the delivery job updates its message
        return outcome.status, \
            f"{outcome.status.replace('_', ' ')} (by {outcome.by}) from the App Home"

    def _recent(self, user_id: str, now: datetime) -> bool:
        with self._lock:
            seen = self._published.get(user_id)
        return seen is not None and now - seen.at < timedelta(seconds=REFRESH_SECONDS)

    def _state(self) -> tuple:
        return home.state_of(self._context())

    def _context(self) -> dict:
        return home.home_context(self.outbox.store.connection(), self.clock(), self.health())

    def _publish(self, user_id: str) -> None:
        if self.guard.policy.allows(user_id, None):
            context = self._context()
            view, state = self.renderer.render_home(allowed=True, **context), \
                home.state_of(context)
        else:
            view, state = self.renderer.render_home(allowed=False), None
        try:
            response = self.client.views_publish(user_id=user_id, view=view)
            ok = response.get("ok")
        except (SlackClientError, *NETWORK_ERRORS) as exc:
            log.warning("could not publish the App Home of %s: %s", short(user_id), exc)
            return
        if not ok:
            log.warning("Slack refused the App Home of %s: %s", short(user_id),
                        short(response.get("error")))
        else:
            with self._lock:
                self._published[user_id] = _Published(self.clock(), state)
                self._published.move_to_end(user_id)
                while len(self._published) > VIEWERS_KEPT:
                    self._published.popitem(last=False)
