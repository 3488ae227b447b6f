"""Who may use /voiso and the alerts' buttons: listed users, members of listed user
groups, or anyone acting in a listed channel. Nobody else, and nobody by default."""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from voisobot.config import AccessConfig

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300.0
# After a failed read of a group, its members are refused without asking Slack again for
# this long: a denied user pressing away, or Slack down, costs one call per group per 30 s.
GROUP_FAILURE_CACHE_SECONDS = 30.0


TEAMS_REMEMBERED = 10_000  # channels whose team the Teams policy knows

class AccessPolicy:
    platform = "slack"  # whose identities it checks, as the audit trail names it

    def __init__(self, config: AccessConfig, group_members: Callable[[str], set[str]],
                 clock=time.monotonic):
        """``group_members(group_id)`` returns the user IDs of a Slack user group (the
        usergroups.users.list API); its answers are cached for a few minutes, its
        failures for a few seconds."""
        self.config, self.group_members, self.clock = config, group_members, clock
        self._members_read: dict[str, tuple[float, set[str]]] = {}
        self._failed_at: dict[str, float] = {}
        self._lock = threading.Lock()  # one read of a group at a time, however many ask

    def allows(self, user_id: str, channel_id: str | None) -> bool:
        if user_id in self.config.users or channel_id in self.config.channels:
            return True
        return any(user_id in self._members(group) for group in self.config.usergroups)

    def _members(self, group_id: str) -> set[str]:
        """The group's members as last read within GROUP_CACHE_SECONDS; none while it
        cannot be read (deny if unreadable: an expired list is never trusted)."""
        with self._lock:
            now = self.clock()
            read = self._members_read.get(group_id)
            if read and now - read[0] < GROUP_CACHE_SECONDS:
                return read[1]
            failed_at = self._failed_at.get(group_id)
            if failed_at is not None and now - failed_at < GROUP_FAILURE_CACHE_SECONDS:
                return set()
            return self._read(group_id, now)

    def _read(self, group_id: str, now: float) -> set[str]:
        self._members_read.pop(group_id, None)
        try:
            members = set(self.group_members(group_id))
        except Exception as exc:  # Slack unreachable, or the group gone: deny, never guess
            log.warning("cannot read the members of user group %s (%s); its members are "
                        "refused until it can be read (next try in %.0f s)", group_id, exc,
                        GROUP_FAILURE_CACHE_SECONDS)
            self._failed_at[group_id] = now
            return set()
        self._failed_at.pop(group_id, None)
        self._members_read[group_id] = (now, members)
        return members


class TeamsAccessPolicy:
    """Who may ask the Teams bot: listed Entra ID object ids (access.teams_users), anyone in
    a listed Teams channel or chat (access.teams_channels), or anyone in any channel of a
    listed team (access.teams_teams). The Slack lists never count here, nor these in Slack:
    an id of one platform cannot open the other.

    Which team a channel belongs to is what Teams said in the channel data of an
    authenticated activity from it (``saw``), kept for the last TEAMS_REMEMBERED channels:
    a press or a command carries its channel, and the listener tells the policy its team
    before asking it."""

    platform = "teams"

    def __init__(self, config: AccessConfig):
        self.users, self.channels = frozenset(config.teams_users), frozenset(
            config.teams_channels)
        self.teams = frozenset(config.teams_teams)
        self._team_of: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def saw(self, channel_id: str | None, team_id: str | None) -> None:
        """An authenticated activity came from ``channel_id``, in ``team_id``."""
        if not channel_id or not team_id:
            return
        with self._lock:
            self._team_of[channel_id] = team_id
            self._team_of.move_to_end(channel_id)
            while len(self._team_of) > TEAMS_REMEMBERED:
                self._team_of.popitem(last=False)

    def allows(self, user_id: str, channel_id: str | None) -> bool:
        if user_id in self.users:
            return True
        if channel_id is None:
            return False
        with self._lock:
            team = self._team_of.get(channel_id)
        return channel_id in self.channels or team in self.teams
