"""``@Voiso subscribe <name>``: give the conversation it is typed in a name that routes
use (``teams_bot = ["<name>"]``, ``teams.bot.default_conversation``). Only an allowed user
may (access.teams_users / teams_channels), and every attempt is audited as a command. A name
belongs to one conversation: subscribing it elsewhere moves it there."""

from voisobot.audit import AuditEntry
from voisobot.commands import Guard
from voisobot.config import BOT_CONVERSATION_NAME
from voisobot.teams.answers import card_from_answer, text_card
from voisobot.teams.references import ConversationRef, References

COMMAND = "subscribe"
USAGE = ("Usage: @Voiso subscribe <name> (lowercase letters, digits, - and _; at most 40), "
         "then name it in config.toml: teams_bot = [\"<name>\"] in a [[routes]] table")


def is_subscribe(text: str) -> bool:
    return text.split(maxsplit=1)[:1] == [COMMAND]


class Subscriptions:
    def __init__(self, guard: Guard, references: References, clock):
        self.guard, self.references, self.clock = guard, references, clock

    def subscribe(self, user_id: str, channel_id: str | None, ref: ConversationRef | None,
                  text: str) -> dict:
        """The card answering ``subscribe <name>`` typed where ``ref`` points."""
        entry = AuditEntry(user_id, channel_id, "command", text[:200], True, "")
        if (refusal := self.guard.refusal(entry)) is not None:
            return card_from_answer(refusal.message)
        words = text.split()
        if len(words) != 2 or not BOT_CONVERSATION_NAME.match(words[1]):
            self.guard.record(entry, "usage")
            return text_card(USAGE)
        if ref is None:
            self.guard.record(entry, "failed: no conversation reference")
            return text_card("This conversation cannot be posted to (Teams sent no reference "
                             "for it); add the app again and retry.")
        name = words[1]
        self.references.save(ref, self.clock())  # installed before references were kept
        self.references.name(ref.conversation_id, name)
        self.guard.record(entry, f"subscribed {name}")
        return text_card(f"Subscribed: alerts routed to \"{name}\" (teams_bot = [\"{name}\"] "
                         "in config.toml) are posted here.")
