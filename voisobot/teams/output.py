"""Alerts to Microsoft Teams: what the delivery job asks of a platform (voisobot.delivery's
``Output``), for the two ways a card reaches Teams.

- ``WebhookOutput``: a Workflows webhook ("teams:<name>"). A posted card cannot be edited,
  found or threaded: a grown group gets one summary card when its window closes, and a
  card whose post may have arrived is posted again (at least once).
- ``BotCardOutput``: the Teams bot's own conversations ("teamsbot:<name>"). Its cards are
  replaced in place as a Slack message is; the Bot Connector cannot be searched either, so a
  post that may have arrived is posted again.
"""

from voisobot.outbox import AlertKey
from voisobot.render import AlertView
from voisobot.routing import is_teams, is_teams_bot, teams_bot_name, teams_name
from voisobot.sending import SendResult
from voisobot.teams.cards import envelope
from voisobot.teams.webhook import PACE_SECONDS

NO_DESTINATIONS = SendResult("give_up", error="teams_not_configured",
                             advice="no Teams destinations are configured in this run")
BOT_OFF = SendResult("retry", error="teams_bot_off",
                     advice="the Teams bot is not running: set [teams.bot] enabled = true and "
                            "restart (the alerts wait)")


class _CardOutput:
    """What both have: ``renderer`` builds the card, ``sender`` posts it by name."""

    threads = False
    pace_seconds = PACE_SECONDS  # the connector's and the webhooks' rate, per conversation
    off = NO_DESTINATIONS  # what an alert gets in a run without this kind of output

    def __init__(self, renderer=None, sender=None):
        self.renderer, self.sender = renderer, sender

    def blocked(self, channel: str) -> SendResult | None:
        if self.sender is None:
            return self.off
        return self.sender.unavailable(self.name_of(channel))

    def pace_key(self, channel: str) -> str:
        if self.sender is None:
            return channel
        return self.sender.pace_key(self.name_of(channel))

    def post(self, channel: str, view: AlertView, key: AlertKey | None) -> SendResult:
        return self.sender.post(self.name_of(channel), self.card(view))

    def post_digest(self, channel: str, view, key) -> SendResult:
        """The digest (voisobot.digest.DigestView) as a card; ``key`` unused: no search."""
        return self.sender.post(self.name_of(channel), self.digest_card(view))

    def searchable(self) -> bool:
        return False

    def pauses_all(self, result: SendResult) -> bool:
        return False


class WebhookOutput(_CardOutput):
    name = "Teams"
    editable = False

    def owns(self, channel: str) -> bool:
        return is_teams(channel)

    def name_of(self, channel: str) -> str:
        return teams_name(channel)

    def where(self, channel: str) -> str:
        return f"Teams destination {teams_name(channel)}"

    def card(self, view: AlertView) -> dict:
        return self.renderer.render(view)

    def digest_card(self, view) -> dict:
        return envelope(self.renderer.digest_card(view))


class BotCardOutput(_CardOutput):
    name = "the Teams bot"
    editable = True
    off = BOT_OFF

    def owns(self, channel: str) -> bool:
        return is_teams_bot(channel)

    def name_of(self, channel: str) -> str:
        return teams_bot_name(channel)

    def where(self, channel: str) -> str:
        return f"Teams bot conversation {teams_bot_name(channel)}"

    def card(self, view: AlertView) -> dict:
        return self.renderer.bot_card(view)

    def digest_card(self, view) -> dict:
        return self.renderer.digest_card(view)

    def update(self, channel: str, ts: str, view: AlertView) -> SendResult:
        return self.sender.update(self.name_of(channel), ts, self.card(view))
