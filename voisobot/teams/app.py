"""``voisobot teams-app``: the Teams app package an admin uploads, written from the config.

A zip of manifest.json and its two icons (color 192 by 192 pixels, outline 32 by 32,
drawn here so the package needs no image files or libraries). The bot is the Azure Bot
registration whose id is TEAMS_APP_ID (environment only, like its secret); its command list
is /voiso's and ``subscribe``, so Teams offers after @Voiso what Slack does after /voiso.
"""

import io
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path

from voisobot.commands import SUBCOMMANDS
from voisobot.errors import ConfigError
from voisobot.teams.subscribe import COMMAND as SUBSCRIBE

MANIFEST_SCHEMA = ("https://developer.microsoft.com/en-us/json-schemas/teams/v1.17/"
                   "MicrosoftTeams.schema.json")
MANIFEST_VERSION = "1.17"
APP_ID_VARIABLE = "TEAMS_APP_ID"
SCOPES = ("team", "personal", "groupChat")
ACCENT = (0x2C, 0x2D, 0x30)  # the Slack app's background colour (manifest.yml)
_GUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")

# What each subcommand does, as Teams lists it (a title of at most 32 characters, a
# description of at most 128).
COMMAND_HELP = {
    "recent": "The latest events: recent [N] [kind]",
    "user": "Logins, IPs and changes of one user: user jane@example.com",
    "ip": "Events, users and the allow-list of an IP or CIDR: ip 203.0.113.7",
    "unacked": "Alerts nobody has acknowledged, oldest first",
    "pending": '"Was this you?" questions waiting for an answer',
    "stats": "Counts per kind, top users and IPs: stats [24h|7d|30d]",
    "audit": "Who ran which command or pressed which button",
    "help": "How to ask the bot",
    "subscribe": "Name this conversation so routes can send alerts here: subscribe NAME",
}
# Teams-only: naming a conversation for [[routes]] teams_bot (teams/subscribe.py).
TEAMS_COMMANDS = (*SUBCOMMANDS, SUBSCRIBE)


def manifest(bot_id: str, website: str, version: str = "1.0.0") -> dict:
    """The app manifest: one bot, in teams, chats and personal scope, with /voiso's
    commands."""
    commands = [{"title": name, "description": COMMAND_HELP[name]} for name in TEAMS_COMMANDS]
    return {
        "$schema": MANIFEST_SCHEMA, "manifestVersion": MANIFEST_VERSION, "version": version,
        "id": bot_id, "packageName": "com.voiso.securitybot",
        "developer": {"name": "Voiso security bot", "websiteUrl": website,
                      "privacyUrl": website, "termsOfUseUrl": website},
        "name": {"short": "Voiso Security", "full": "Voiso Security alerts and questions"},
        "description": {
            "short": "Voiso security events as alerts, with triage commands.",
            "full": "Alerts from Voiso's security event stream (logins, failed passwords, "
                    "unauthorized IPs, user and allow-list changes), with Acknowledge "
                    "buttons, \"was this you?\" questions and @Voiso commands answered "
                    "from the bot's cache."},
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#{:02X}{:02X}{:02X}".format(*ACCENT),
        "bots": [{"botId": bot_id, "scopes": list(SCOPES), "supportsFiles": False,
                  "isNotificationOnly": False,
                  "commandLists": [{"scopes": list(SCOPES), "commands": commands}]}],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [],
    }


def package(bot_id: str, website: str) -> bytes:
    """The zip Teams takes: manifest.json, color.png, outline.png at its root."""
    if not _GUID.match(bot_id):
        raise ConfigError(f"{APP_ID_VARIABLE}: expected the Azure Bot's Microsoft App ID, a "
                          f"GUID such as 00000000-0000-0000-0000-000000000000, got "
                          f"{bot_id[:40]!r}")
    if not website.startswith("https://"):
        raise ConfigError(f"--website: expected an https:// URL (Teams requires one), got "
                          f"{website[:60]!r}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest(bot_id, website), indent=2))
        archive.writestr("color.png", png(192, 192, _shield(192, (*ACCENT, 255))))
        archive.writestr("outline.png", png(32, 32, _shield(32, (255, 255, 255, 255))))
    return buffer.getvalue()


def write(path: Path, bot_id: str, website: str) -> Path:
    path.write_bytes(package(bot_id, website))
    return path


def _shield(size: int, colour: tuple[int, int, int, int]) -> list[list[tuple]]:
    """A plain shield on a transparent ground (Teams wants the outline icon white on
    transparent)."""
    rows = []
    for y in range(size):
        half = size * 0.4 if y < size * 0.55 else size * 0.4 * (1 - (y - size * 0.55)
                                                                 / (size * 0.45))
        rows.append([colour if abs(x + 0.5 - size / 2) <= half and size * 0.08 <= y
                     < size * 0.95 else (0, 0, 0, 0) for x in range(size)])
    return rows


def png(width: int, height: int, pixels: list[list[tuple]]) -> bytes:
    """An 8-bit RGBA PNG of ``pixels`` (rows of (r, g, b, a))."""
    raw = b"".join(b"\x00" + bytes(v for pixel in row for v in pixel) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
