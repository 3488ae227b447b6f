"""Where the bot may write in Teams: the conversation references Teams sends when the bot is
added to a team, a channel, a group chat or a personal chat, kept in the store
(migration 0011) so that they outlive a restart. A bot cannot post anywhere else. A
conversation can be given a name (``@Voiso subscribe <name>``, migration 0012) that routes
use: alerts to "teamsbot:<name>" are posted to the conversation holding that name."""

from dataclasses import dataclass
from datetime import datetime

from voisobot.store import Store, time_text, transaction

KINDS = ("channel", "personal", "groupChat")
_COLUMNS = ("conversation_id", "kind", "service_url", "tenant_id", "team_id", "channel_id",
            "bot_id", "added_by")


@dataclass(frozen=True)
class ConversationRef:
    conversation_id: str    # without a thread's ";messageid=…"
    kind: str               # one of KINDS
    service_url: str
    tenant_id: str | None
    team_id: str | None
    channel_id: str | None  # a channel's own id (for a team: its General channel)
    bot_id: str
    added_by: str | None    # the Entra object id of whoever added the bot, if Teams says


def conversation_base(conversation_id: str) -> str:
    """A channel conversation's id without the thread part Teams adds to a reply's id."""
    return conversation_id.split(";", 1)[0]


def reference_of(activity) -> ConversationRef | None:
    """The reference an SDK activity carries, or None when it lacks what a post needs."""
    conversation, bot = activity.conversation, activity.recipient
    if conversation is None or bot is None or not activity.service_url or not conversation.id:
        return None
    data = activity.channel_data
    team = data.team.id if data is not None and data.team is not None else None
    kind = conversation.conversation_type or ("channel" if team else "personal")
    if kind not in KINDS:
        return None
    base = conversation_base(conversation.id)
    channel = (data.channel.id if data is not None and data.channel is not None else None) \
        or (base if kind == "channel" else None)
    tenant = conversation.tenant_id or (data.tenant.id if data is not None and data.tenant
                                        is not None else None)
    added_by = getattr(activity.from_, "aad_object_id", None) if activity.from_ else None
    return ConversationRef(base, kind, activity.service_url, tenant, team, channel, bot.id,
                           added_by)


class References:
    def __init__(self, store: Store):
        self.store = store

    def save(self, ref: ConversationRef, now: datetime) -> None:
        """Keep ``ref`` (a new service URL or bot id replaces the old: Teams moves them)."""
        values = [getattr(ref, name) for name in _COLUMNS]
        at = time_text(now)
        with transaction(self.store.connection()) as conn:
            conn.execute(
                f"INSERT INTO teams_conversations ({', '.join(_COLUMNS)}, added_at, updated_at)"
                f" VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})"
                " ON CONFLICT (conversation_id) DO UPDATE SET kind = excluded.kind,"
                " service_url = excluded.service_url, tenant_id = excluded.tenant_id,"
                " team_id = excluded.team_id, channel_id = excluded.channel_id,"
                " bot_id = excluded.bot_id, updated_at = excluded.updated_at",
                (*values, at, at))

    def forget(self, conversation_id: str) -> bool:
        """The bot was removed: whether there was a reference to drop."""
        with transaction(self.store.connection()) as conn:
            return conn.execute("DELETE FROM teams_conversations WHERE conversation_id = ?",
                                (conversation_base(conversation_id),)).rowcount > 0

    def name(self, conversation_id: str, name: str) -> bool:
        """Give the (stored) conversation ``name``, taking it from any other conversation
        that had it; whether the conversation was known."""
        base = conversation_base(conversation_id)
        with transaction(self.store.connection()) as conn:
            conn.execute("UPDATE teams_conversations SET name = NULL WHERE name = ? AND "
                         "conversation_id != ?", (name, base))
            return conn.execute("UPDATE teams_conversations SET name = ? WHERE "
                                "conversation_id = ?", (name, base)).rowcount > 0

    def named(self, name: str) -> ConversationRef | None:
        """The conversation that holds ``name``, or None (no one subscribed it, or the bot
        was removed from there)."""
        row = self.store.connection().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM teams_conversations WHERE name = ?",
            (name,)).fetchone()
        return ConversationRef(*row) if row is not None else None

    def name_of(self, conversation_id: str) -> str | None:
        """The name the conversation holds now, if any."""
        row = self.store.connection().execute(
            "SELECT name FROM teams_conversations WHERE conversation_id = ?",
            (conversation_base(conversation_id),)).fetchone()
        return row[0] if row is not None else None

    def all(self) -> list[ConversationRef]:
        rows = self.store.connection().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM teams_conversations ORDER BY added_at, "
            "conversation_id").fetchall()
        return [ConversationRef(*row) for row in rows]
