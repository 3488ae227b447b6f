"""What a sender (Slack, Teams) reports about one call, in the one shape the outbox reads:
``done``, ``retry`` (later, after ``retry_after`` seconds if the service said so) or
``give_up`` (with advice for a human); and reading a 429's Retry-After."""

import math
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_RETRY_AFTER_SECONDS = 1.0
MAX_RETRY_DELAY_SECONDS = 300.0


@dataclass(frozen=True)
class SendResult:
    status: str                         # "done" | "retry" | "give_up"
    channel: str | None = None          # the Slack channel or Teams destination
    ts: str | None = None               # a Slack message's ts (done)
    retry_after: float | None = None    # seconds, from Retry-After on 429
    error: str | None = None            # the service's error code or a short description
    advice: str | None = None           # for give_up: what the user should do
    maybe_posted: bool = False          # retry of a post the service may have made anyway

    @property
    def rate_limited(self) -> bool:
        """The service answered 429: only a 429 sets ``retry_after``."""
        return self.retry_after is not None


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds from a Retry-After header; the default if it is absent or not a number."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_RETRY_AFTER_SECONDS


def retry_delay(attempts: int, result: SendResult, base: float = 1.0) -> float:
    """Seconds before trying again: ``base`` doubled per attempt made, at most
    MAX_RETRY_DELAY_SECONDS, and never sooner than the service asked (Retry-After)."""
    return max(result.retry_after or 0.0, min(MAX_RETRY_DELAY_SECONDS, base * 2.0 ** attempts))
