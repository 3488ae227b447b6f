"""manifest.yml creates the Slack app the code needs: the slash command it registers,
interactivity for its buttons, Socket Mode, and exactly the scopes of the Web API
methods it calls."""

import re
from pathlib import Path

import yaml
from slack_sdk import WebClient

from voisobot.handlers import slack as slack_handlers

ROOT = Path(__file__).resolve().parents[1]
# The scope each Web API method the bot may call needs (api.slack.com/methods).
# History is read in channels, private channels and DMs (a question asked by direct message).
SCOPES_OF = {"chat_postMessage": {"chat:write"}, "chat_update": {"chat:write"},
             "conversations_history": {"channels:history", "groups:history", "im:history"},
             "conversations_info": {"channels:read", "groups:read"},
             "usergroups_users_list": {"usergroups:read"}, "auth_test": set(),
             "users_lookupByEmail": {"users:read", "users:read.email"},
             "conversations_open": {"im:write"}, "chat_getPermalink": set(),
             "views_publish": set(),  # a user's App Home: no scope
             "apps_connections_open": set()}  # the app-level token's connections:write


def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))


def web_api_calls() -> set[str]:
    """WebClient methods called anywhere in the bot's code."""
    sources = [ROOT / "bot.py", *(ROOT / "voisobot").rglob("*.py"),
               *(ROOT / "handlers").rglob("*.py")]
    names = {name for path in sources
             for name in re.findall(r"\.([a-z]+_[A-Za-z_]+)\(", path.read_text("utf-8"))}
    return {name for name in names if callable(getattr(WebClient, name, None))}


def test_the_scopes_are_exactly_those_of_the_methods_called():
    calls = web_api_calls()
    assert {"chat_postMessage", "chat_update", "conversations_history", "conversations_info",
            "usergroups_users_list", "users_lookupByEmail", "conversations_open",
            "chat_getPermalink", "views_publish"} <= calls
    assert calls <= set(SCOPES_OF), f"a method without a known scope: {calls - set(SCOPES_OF)}"
    needed = {"commands"}.union(*(SCOPES_OF[name] for name in calls))
    assert set(manifest()["oauth_config"]["scopes"]["bot"]) == needed


def test_the_slash_command_buttons_and_socket_mode_are_declared():
    app = manifest()
    commands = [c["command"] for c in app["features"]["slash_commands"]]
    assert commands == [slack_handlers.SLASH_COMMAND]
    assert app["settings"]["interactivity"]["is_enabled"] is True
    assert app["settings"]["socket_mode_enabled"] is True


def test_the_app_home_is_enabled_and_its_opening_subscribed():
    app = manifest()
    assert app["features"]["app_home"]["home_tab_enabled"] is True
    assert app["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]


def test_the_readme_names_every_scope():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for scope in manifest()["oauth_config"]["scopes"]["bot"]:
        assert f"`{scope}`" in readme
