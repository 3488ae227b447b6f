"""Slack listeners, registered in one place (slash commands and buttons arrive in a later issue)."""


def register(app) -> None:
    """Attach every listener to a Bolt app; nothing to attach until Slack commands exist."""
