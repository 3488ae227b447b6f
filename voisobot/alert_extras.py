"""What an alert shows beyond its event, on every platform: the next step for its kind
(built-in advice, and the admin's runbook link from [runbooks]), a "Look up" link for each
IP address, and whether it takes an Acknowledge button ([alerts] ack_min_severity).

Every link here is built by the bot from config or from a validated address (a SafeUrl);
no event field ever becomes one.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from voisobot import queries
from voisobot.events import Event, plain_address
from voisobot.values import SafeUrl

SEVERITIES = ("info", "low", "medium", "high", "critical")  # in rising order (config's too)
DEFAULT_ACK_MIN_SEVERITY = "medium"

# One sentence per kind: what an analyst does first. Kinds Voiso adds later get the generic one.
NEXT_STEPS = {
    "app_login/unauthorized_ip": "Ask the user whether this was them; if not, reset their "
                                 "password and check who else logs in from that address.",
    "app_login/incorrect_password": "Repeated failures can be password guessing: check the "
                                    "address, and lock the account if the user did not try.",
    "app_login/ip_changed": "Confirm the user changed networks: a new address in the middle "
                            "of a session can mean a stolen session.",
    "app_login/successful_login": "Nothing to do unless this login is unexpected for the user.",
    "app_login/deleted_user": "A deleted account tried to log in: make sure its credentials "
                              "are revoked everywhere.",
    "user/user_added": "Confirm the account was requested, and that its access group is the "
                       "least it needs.",
    "user/user_deleted": "Confirm the deletion was planned (an offboarding).",
    "user/password_changed": "Confirm the user or an admin they know asked for this change.",
    "user/privileges_updated": "Confirm the change with whoever made it; revert it if nobody "
                               "expected it.",
    "allowed_ip/ip_added": "Confirm the range belongs to your organisation and was meant to "
                           "be allowed.",
    "allowed_ip/ip_removed": "Confirm the removal was planned: users on that range can no "
                             "longer log in.",
    "allowed_ip/ip_changed": "Confirm the new range belongs to your organisation and the "
                             "change was planned.",
}
GENERIC_NEXT_STEP = "Check with the people named above whether this was expected."


@dataclass(frozen=True)
class AlertOptions:
    """The config an alert's extras come from: [alerts], [runbooks], teams.ip_lookup_url."""

    ack_min_severity: str = DEFAULT_ACK_MIN_SEVERITY
    ip_lookup_url: str = ""  # an https URL with "{ip}"; empty: no look-up links
    runbooks: Mapping[str, str] = field(default_factory=dict)  # kind -> https URL (validated)


def next_step(kind: str) -> str:
    return NEXT_STEPS.get(kind, GENERIC_NEXT_STEP)


def runbook(options: AlertOptions, kind: str) -> SafeUrl | None:
    """The admin's runbook for the kind, from config only (validated at load)."""
    url = options.runbooks.get(kind)
    return SafeUrl(url) if url else None


def ip_lookup(template: str, ip: str | None) -> SafeUrl | None:
    """The lookup link of one IP address, or None (no template, or not a single plain
    address: a range, a zone after %, anything else)."""
    address = plain_address(ip) if template else None
    if address is None:
        return None
    return SafeUrl(template.replace("{ip}", quote(address, safe="")))


def ip_lookups(template: str, event: Event) -> dict[str, SafeUrl]:
    """The look-up link of each IP field's value that is a single plain address, keyed by
    the value as the event holds it."""
    return {value: url for value in (event.ip, event.from_value, event.to_value)
            if value and (url := ip_lookup(template, value))}


def acknowledgeable(options: AlertOptions, severity: str) -> bool:
    """Whether an alert of this severity takes an Acknowledge button. An unknown severity
    does (an alert is never left without one by a mistake)."""
    if severity not in SEVERITIES:
        return True
    return SEVERITIES.index(severity) >= SEVERITIES.index(options.ack_min_severity)


def profile_account(event: Event) -> str | None:
    """The account a "Profile" button shows (``/voiso user``): the affected user, else the
    admin who made the change; None when that is no email address."""
    account = event.user or event.who
    try:
        return queries.parse_email(account) if account else None
    except ValueError:
        return None


def extras_context(options: AlertOptions, event: Event, severity: str) -> dict:
    """What the templates see of these extras."""
    return {"next_step": next_step(event.kind), "runbook": runbook(options, event.kind),
            "lookup": ip_lookups(options.ip_lookup_url, event),
            "acknowledgeable": acknowledgeable(options, severity),
            "profile": profile_account(event) is not None}
