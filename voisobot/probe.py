"""``voisobot health``: ask the running bot's operations listener whether it is alive (or
ready), for a container's HEALTHCHECK or a script, with no curl or wget in the image.

It reads the same [ops] host and port as the bot (the file and the VOISO_OPS__ variables),
so the image's check follows whatever the deployment sets.
"""

import json
import urllib.error
import urllib.request

from voisobot.config import OpsConfig
from voisobot.ops import HEALTH_PATH, READY_PATH

TIMEOUT_SECONDS = 5.0
# A listener on every address is reached on loopback.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def url(ops: OpsConfig, ready: bool = False) -> str:
    host = _ANY_ADDRESS.get(ops.host, ops.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{ops.port}{READY_PATH if ready else HEALTH_PATH}"


def probe(ops: OpsConfig, ready: bool = False) -> tuple[bool, str]:
    """(healthy, one line saying why) from /healthz, or /readyz when ``ready``."""
    target = url(ops, ready)
    try:
        with urllib.request.urlopen(target, timeout=TIMEOUT_SECONDS) as response:
            return True, f"{target}: {response.status} {_reasons(response.read())}".rstrip()
    except urllib.error.HTTPError as error:
        return False, f"{target}: {error.code} {_reasons(error.read())}".rstrip()
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return False, (f"{target}: no answer ({reason}); is the bot running, and do [ops] "
                       "host and port match its own?")


def _reasons(body: bytes) -> str:
    """The codes of the listener's reasons, or "ok"."""
    try:
        reasons = json.loads(body).get("reasons", [])
    except (ValueError, AttributeError):
        return ""
    codes = [reason.get("code", "?") for reason in reasons if isinstance(reason, dict)]
    return ", ".join(codes) if codes else "ok"
