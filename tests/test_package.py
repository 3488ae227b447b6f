"""The package as a platform installs it: a real wheel (not the editable checkout), put in a
fresh virtual environment outside the checkout, run from another directory. Its templates
and migrations travel inside it, so no alert falls back to the minimal message."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from voisobot import samples

ROOT = Path(__file__).resolve().parents[1]
# One wheel per process: pip builds it in the checkout's build/, so its users share a process.
pytestmark = pytest.mark.xdist_group("wheel")


def run_installed(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "voisobot"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_the_wheel_builds_without_a_warning_and_carries_templates_and_migrations(wheel):
    path, printed = wheel
    warnings = [line for line in printed.splitlines()
                if re.search(r"warn", line, re.I) and "Location 'file:" not in line]
    assert warnings == []
    import zipfile

    names = zipfile.ZipFile(path).namelist()
    assert "voisobot/templates/slack/_base.json.j2" in names
    assert "voisobot/templates/teams/_base.json.j2" in names
    assert "voisobot/templates/slack/commands/user.json.j2" in names
    assert any(re.fullmatch(r"voisobot/migrations/0001_\w+\.sql", n) for n in names)
    assert "voisobot/handlers/slack/actions.py" in names
    assert not any(n.startswith(("tests/", "bot.py", "handlers/", "templates/")) for n in names)


@pytest.mark.parametrize("teams", [False, True], ids=["slack", "teams"])
def test_the_installed_bot_renders_every_kind_with_its_own_template(installed, tmp_path, teams):
    config = tmp_path / "config.toml"
    config.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"\n')
    result = run_installed(installed, tmp_path, "--config", str(config), "render",
                           *(["--teams"] if teams else []))
    assert result.returncode == 0, result.stderr
    assert "failed" not in result.stderr and "minimal" not in result.stderr
    headers = re.findall(r"^# (\S+): severity \w+, template (\S+)$", result.stdout, re.M)
    assert headers == [(kind, kind.replace("/", ".") + ".json.j2")
                       for kind in samples.EXAMPLES]
    bodies = [json.loads(body) for body in re.split(r"^# .*$", result.stdout, flags=re.M)[1:]]
    if teams:
        assert all(b["attachments"][0]["content"]["type"] == "AdaptiveCard" for b in bodies)
    else:
        assert all(b["blocks"][0]["type"] == "header" for b in bodies)


def test_the_installed_bot_runs_from_the_wheel_not_the_checkout(installed, tmp_path):
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import voisobot; print(voisobot.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert str(installed) in where and str(ROOT) not in where


def test_the_console_script_has_the_subcommands_of_bot_py(installed, tmp_path):
    installed_help = run_installed(installed, tmp_path, "--help").stdout
    checkout_help = subprocess.run([sys.executable, "bot.py", "--help"], cwd=ROOT,
                                   capture_output=True, text=True, check=True).stdout
    subcommands = re.compile(r"\{([a-z,-]+)\}")
    assert subcommands.search(installed_help).group(1) \
        == subcommands.search(checkout_help).group(1)
    assert "run,check,send-sample,render,redeliver,teams-app,health,demo" in installed_help
