"""Who a Teams user is, for "was this you?": the personal chat the bot has with them.

A bot can write to a person only in a personal chat, which exists once the app is installed
for them (by themselves, or by an admin's app setup policy); Teams then sends the chat's
conversation reference (teams_bot.references) with the user's Entra object id and Teams
account id, but not their address. The Bot Connector's member lookup
(``GET {serviceUrl}/v3/conversations/{id}/members/{account id}``) tells it: ``email`` and
``userPrincipalName``, kept lower case (migration 0014) so that a question to a Voiso email
(after ``[confirm.aliases]``) finds the chat. A lookup that fails for a while (429, 5xx, no
answer) is tried again by the confirmations job, with backoff; one the Connector refuses
(the member is gone) waits for the user's next message in the chat. The conversation is
kept whatever the lookup says.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from voisobot.addresses import looks_like_address, voiso_address
from voisobot.config import ConfirmConfig
from voisobot.sending import SendResult, retry_delay
from voisobot.store import Store, time_text, transaction
from voisobot.teams.references import ConversationRef, conversation_base

log = logging.getLogger("voisobot.teams")

LOOKUPS_PER_RUN = 10
_REF_COLUMNS = ("conversation_id", "kind", "service_url", "tenant_id", "team_id", "channel_id",
                "bot_id", "added_by")


@dataclass(frozen=True)
class Member:
    """What the Bot Connector says of a conversation's member (all optional)."""

    email: str | None = None
    upn: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class PersonalChat:
    """A person the bot can ask: their personal chat, and who they are."""

    ref: ConversationRef
    user_id: str            # Entra object id: the only one who may answer there
    name: str | None
    address: str            # the address that matched (lower case)


@dataclass(frozen=True)
class ToLookUp:
    ref: ConversationRef
    account_id: str         # 29:…, what the members endpoint takes
    attempts: int


def member_of(account) -> Member:
    """The SDK's TeamsChannelAccount as a Member: addresses lower case, and only text that
    looks like an address (anything else is nobody's)."""
    def address(value) -> str | None:
        text = value.strip().lower() if isinstance(value, str) else ""
        return text if looks_like_address(text) else None
    name = getattr(account, "name", None)
    return Member(address(getattr(account, "email", None)),
                  address(getattr(account, "user_principal_name", None)),
                  name[:200] if isinstance(name, str) else None)


async def fetch_member(api, ref: ConversationRef, account_id: str) -> Member:
    """The member lookup through the SDK's API client, at the conversation's service URL."""
    scoped = api if api.service_url == ref.service_url.rstrip("/") \
        else api.clone(service_url=ref.service_url)
    return member_of(await scoped.conversations.get_member_by_id(ref.conversation_id,
                                                                 account_id))


class TeamsPeople:
    def __init__(self, store: Store, confirm: ConfirmConfig):
        self.store, self.confirm = store, confirm

    # --- who a chat's user is -----------------------------------------------------------

    def remember_user(self, conversation_id: str, user_id: str | None, account_id: str | None,
                      now: datetime) -> None:
        """A personal chat's user, from the activity that captured it; their address is to
        be looked up (now) unless it is known for this same account already."""
        if not account_id:
            return
        with transaction(self.store.connection()) as conn:
            conn.execute(
                "UPDATE teams_conversations SET user_id = ?, user_account = ?, "
                "member_attempts = 0, member_next_at = CASE WHEN user_account IS ? "
                "AND (user_email IS NOT NULL OR user_upn IS NOT NULL) THEN NULL ELSE ? END "
                "WHERE conversation_id = ? AND kind = 'personal'",
                (user_id, account_id, account_id, time_text(now),
                 conversation_base(conversation_id)))

    def needs_lookup(self, conversation_id: str) -> bool:
        """Whether a personal chat is unknown here, or its user's address is (and no lookup
        is waiting): its user's next message tries again."""
        row = self.store.connection().execute(
            "SELECT user_email, user_upn, member_next_at FROM teams_conversations "
            "WHERE conversation_id = ?", (conversation_base(conversation_id),)).fetchone()
        return row is None or (row[0] is None and row[1] is None and row[2] is None)

    def learned(self, conversation_id: str, member: Member) -> None:
        with transaction(self.store.connection()) as conn:
            conn.execute(
                "UPDATE teams_conversations SET user_email = ?, user_upn = ?, "
                "user_name = coalesce(?, user_name), member_next_at = NULL, "
                "member_attempts = 0 WHERE conversation_id = ?",
                (member.email, member.upn, member.name, conversation_base(conversation_id)))
        if member.email is None and member.upn is None:
            log.warning("the Bot Connector gave no email or UPN for the user of a personal "
                        "chat; no question can reach them there")

    def not_learned(self, conversation_id: str, result: SendResult, attempts: int,
                    now: datetime) -> None:
        """A failed lookup: tried again later when it may work (retry), else at the
        user's next message."""
        later = now + timedelta(seconds=retry_delay(attempts, result)) \
            if result.status == "retry" else None
        with transaction(self.store.connection()) as conn:
            conn.execute("UPDATE teams_conversations SET member_attempts = member_attempts + 1,"
                         " member_next_at = ? WHERE conversation_id = ?",
                         (time_text(later) if later else None,
                          conversation_base(conversation_id)))
        log.warning("could not learn the address of a personal chat's user (%s)%s",
                    result.error, "; trying again later" if later else
                    "; the user's next message there tries again")

    def to_look_up(self, now: datetime, limit: int = LOOKUPS_PER_RUN) -> list[ToLookUp]:
        rows = self.store.connection().execute(
            f"SELECT {', '.join(_REF_COLUMNS)}, user_account, member_attempts "
            "FROM teams_conversations WHERE member_next_at IS NOT NULL AND member_next_at <= ? "
            "AND user_account IS NOT NULL ORDER BY member_next_at LIMIT ?",
            (time_text(now), limit)).fetchall()
        return [ToLookUp(ConversationRef(*row[:len(_REF_COLUMNS)]), row[-2], row[-1])
                for row in rows]

    # --- whom a question goes to ----------------------------------------------------------

    def lookup(self, voiso_email: str) -> PersonalChat | None:
        """The personal chat of the person Voiso names (their address lower case, after
        ``[confirm.aliases]``, equal to the user's email or UPN), the latest if several."""
        address = voiso_address(self.confirm, voiso_email)
        if not looks_like_address(address):
            return None
        row = self.store.connection().execute(
            f"SELECT {', '.join(_REF_COLUMNS)}, user_id, user_name FROM teams_conversations "
            "WHERE kind = 'personal' AND user_id IS NOT NULL AND (user_email = ? OR "
            "user_upn = ?) ORDER BY updated_at DESC LIMIT 1", (address, address)).fetchone()
        if row is None:
            return None
        return PersonalChat(ConversationRef(*row[:len(_REF_COLUMNS)]), row[-2], row[-1],
                            address)

    def chat(self, conversation_id: str) -> ConversationRef | None:
        row = self.store.connection().execute(
            f"SELECT {', '.join(_REF_COLUMNS)} FROM teams_conversations "
            "WHERE conversation_id = ?", (conversation_base(conversation_id),)).fetchone()
        return ConversationRef(*row) if row is not None else None
