"""Who may use /voiso and the alerts' buttons: listed users, members of listed user
groups, or anyone acting in a listed channel. Nobody else, and nobody by default."""

import logging
import time
from collections.abc import Callable

from voisobot.config import AccessConfig

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300.0


class AccessPolicy:
    def __init__(self, config: AccessConfig, group_members: Callable[[str], set[str]],
                 clock=time.monotonic):
        """``group_members(group_id)`` returns the user IDs of a Slack user group (the
        usergroups.users.list API); its answers are cached for a few minutes."""
        self.config, self.group_members, self.clock = config, group_members, clock
        self._cache: dict[str, tuple[float, set[str]]] = {}

    def allows(self, user_id: str, channel_id: str | None) -> bool:
        if user_id in self.config.users or channel_id in self.config.channels:
            return True
        return any(user_id in self._members(group) for group in self.config.usergroups)

    def _members(self, group_id: str) -> set[str]:
        cached = self._cache.get(group_id)
        if cached and self.clock() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        try:
            members = set(self.group_members(group_id))
        except Exception as exc:  # Slack unreachable: deny now, rather than allow blindly
            log.warning("cannot read the members of user group %s (%s); its members are "
                        "refused until it can be read", group_id, exc)
            return cached[1] if cached else set()
        self._cache[group_id] = (self.clock(), members)
        return members
