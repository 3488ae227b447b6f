"""voisobot teams-app: the zip Teams takes, written from the config and TEAMS_APP_ID."""

import io
import json
import struct
import zipfile
import zlib

import pytest

from voisobot import cli
from voisobot.commands import SUBCOMMANDS
from voisobot.errors import ConfigError
from voisobot.teams import app as teams_app

BOT_ID = "0b6c2f9e-1f5e-4d2a-9a1b-2c3d4e5f6a7b"
WEBSITE = "https://security.acme.example/voiso"


def unzipped(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and zlib.crc32(data[12:16 + length]) & 0xFFFFFFFF \
        == struct.unpack(">I", data[16 + length:20 + length])[0]
    return struct.unpack(">II", data[16:24])


def test_the_package_holds_the_manifest_and_both_icons_at_its_root():
    files = unzipped(teams_app.package(BOT_ID, WEBSITE))
    assert set(files) == {"manifest.json", "color.png", "outline.png"}
    assert png_size(files["color.png"]) == (192, 192)
    assert png_size(files["outline.png"]) == (32, 32)
    manifest = json.loads(files["manifest.json"])
    assert manifest["id"] == BOT_ID and manifest["bots"][0]["botId"] == BOT_ID
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert {manifest["developer"][k] for k in ("websiteUrl", "privacyUrl", "termsOfUseUrl")} \
        == {WEBSITE}


def test_the_command_list_is_voisos_in_every_scope_within_teams_limits():
    (commands,) = teams_app.manifest(BOT_ID, WEBSITE)["bots"][0]["commandLists"]
    assert [c["title"] for c in commands["commands"]] == [*SUBCOMMANDS, "subscribe"]
    assert set(commands["scopes"]) == {"team", "personal", "groupChat"}
    assert len(commands["commands"]) <= 10
    assert all(len(c["title"]) <= 32 and 0 < len(c["description"]) <= 128
               for c in commands["commands"])


@pytest.mark.parametrize(("bot_id", "website", "names"), [
    ("not-a-guid", WEBSITE, "TEAMS_APP_ID"),
    (BOT_ID, "http://security.acme.example", "--website"),
])
def test_a_bad_id_or_website_is_named(bot_id, website, names):
    with pytest.raises(ConfigError, match=f"^{names}: expected"):
        teams_app.package(bot_id, website)


def test_the_command_writes_the_zip_and_needs_the_app_id(tmp_path, monkeypatch, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"\n')
    out = tmp_path / "app.zip"
    argv = ["--config", str(config), "teams-app", "--website", WEBSITE, "--out", str(out)]
    assert cli.main(argv, {}) == 2
    assert "TEAMS_APP_ID is not set" in capsys.readouterr().err and not out.exists()
    monkeypatch.setenv("TEAMS_APP_ID", BOT_ID)
    assert cli.main(argv, {}) == 0
    assert json.loads(unzipped(out.read_bytes())["manifest.json"])["id"] == BOT_ID
