"""The Teams bot's endpoint: Microsoft's Teams SDK ``App`` (FastAPI under uvicorn), served in
a thread of its own with its own asyncio loop, so that it never blocks the scheduler or the
Slack side, and they never block it.

Every activity is authenticated by the SDK (the Bot Framework JWT, checked against the app
id) unless ``[teams.bot] allow_unauthenticated`` is on, for local tests only: then a warning
is logged at every start and ``voisobot check`` reports it. The app id, secret and tenant
come from the environment only (TEAMS_APP_ID, TEAMS_APP_PASSWORD, TEAMS_TENANT_ID), and are
handed to the SDK explicitly; its own variables (CLIENT_ID, CLIENT_SECRET, TENANT_ID,
DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS) decide nothing here.
"""

import asyncio
import logging
import threading
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime

from voisobot.config import TeamsBotConfig
from voisobot.errors import ConfigError, VoisoBotError
from voisobot.teams.answers import TeamsAnswers
from voisobot.teams.references import References

log = logging.getLogger("voisobot.teams")
# The SDK warns that uvicorn's port (ours, 0 for any free one) differs from its default: ours
# is the one used.
warnings.filterwarnings("ignore", message="server_factory configured port", category=UserWarning)

APP_ID_VARIABLE, SECRET_VARIABLE, TENANT_VARIABLE = (
    "TEAMS_APP_ID", "TEAMS_APP_PASSWORD", "TEAMS_TENANT_ID")
START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0
# Teams waits about 15 s for the answer to an activity; a reply in flight may take this long.
REPLY_TIMEOUT_SECONDS = 5.0
GRACEFUL_SECONDS = 5  # uvicorn: requests in hand at a stop


class TeamsBotError(VoisoBotError):
    """The Teams bot could not start (its address in use, the SDK failing)."""


def credentials(cfg: TeamsBotConfig, env: Mapping[str, str]) -> dict[str, str]:
    """The SDK's app id, secret and tenant from ``env``; all three are required unless
    unauthenticated activities are allowed (then whatever is set is used)."""
    found = {"client_id": env.get(APP_ID_VARIABLE, ""),
             "client_secret": env.get(SECRET_VARIABLE, ""),
             "tenant_id": env.get(TENANT_VARIABLE, "")}
    missing = [name for name, key in ((APP_ID_VARIABLE, "client_id"),
                                      (SECRET_VARIABLE, "client_secret"),
                                      (TENANT_VARIABLE, "tenant_id")) if not found[key]]
    if missing and not cfg.allow_unauthenticated:
        raise ConfigError(f"teams.bot.enabled is true: set {', '.join(missing)} in the "
                          "environment (Azure Bot → Configuration: the Microsoft App ID, a "
                          "client secret, and the app's tenant id)")
    return {key: value for key, value in found.items() if value}


class BotServer:
    """The SDK app on its own thread and loop: ``start()`` returns once it listens."""

    def __init__(self, cfg: TeamsBotConfig, answers: TeamsAnswers, references: References,
                 clock: Callable[[], datetime], env: Mapping[str, str], *,
                 retry_waits: tuple[float, ...] = (1.0, 3.0), buttons=None, people=None,
                 questions=None,
                 seen_in_team: Callable[[str | None, str | None], None] | None = None):
        """``buttons`` (teams.buttons.TeamsAlertButtons) answers the alert cards'
        Acknowledge/Reopen; without it a press is answered with an error message.
        ``questions`` (teams.question_cards.TeamsQuestionButtons) answers the "was this
        you?" cards, and ``people`` (teams.people.TeamsPeople) learns who each personal
        chat's user is, when questions may be asked in Teams. ``seen_in_team(channel_id,
        team_id)`` learns a channel's team from each activity (TeamsAccessPolicy.saw),
        before its command or press is checked."""
        self.cfg = cfg
        self.retry_waits = retry_waits  # waits between tries of a reply; tests set none
        self._server = None  # the uvicorn server, made by the SDK's adapter
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.app = _make_app(cfg, credentials(cfg, env), self._uvicorn)
        from voisobot.handlers import teams as listeners
        listeners.register(self.app, answers, references, clock, lambda: self.retry_waits,
                           buttons, people, questions, seen_in_team)

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, for port 0)."""
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The bot's own loop, where proactive posts run (teams.sender)."""
        return self._loop

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}{self.cfg.path}"

    def start(self) -> None:
        if self.cfg.allow_unauthenticated:
            log.warning("teams.bot.allow_unauthenticated is true: activities are accepted "
                        "WITHOUT checking Microsoft's signature; anyone who reaches %s:%s can "
                        "ask the bot anything. For local tests only.", self.cfg.host,
                        self.cfg.port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="teams-bot", daemon=True)
        self._thread.start()
        self._wait_until_listening()
        log.info("Teams bot listening on %s", self.url)

    def stop(self) -> None:
        """Stop taking activities, finish those in hand (a few seconds at most), and end
        the thread."""
        if self._thread is None or not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.app.stop(), self._loop).result(
                STOP_TIMEOUT_SECONDS)
        except Exception as exc:  # the loop ended meanwhile: the thread is ending too
            log.debug("Teams bot stop: %s", exc)
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            log.warning("the Teams bot did not stop within %.0f s", STOP_TIMEOUT_SECONDS)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.app.start(self.cfg.port))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        except BaseException as exc:  # uvicorn exits (SystemExit) when it cannot bind
            self._failure = exc
        finally:
            self._loop.close()

    def _wait_until_listening(self) -> None:
        waited = threading.Event()
        for _ in range(int(START_TIMEOUT_SECONDS / 0.02)):
            if self._server is not None and self._server.started:
                return
            if not self._thread.is_alive():
                break
            waited.wait(0.02)
        self.stop()
        raise TeamsBotError(f"the Teams bot could not listen on {self.cfg.host}:{self.cfg.port} "
                            f"(teams.bot.host/port): {self._failure or 'no answer in time'}; "
                            "the log above says why")

    def _uvicorn(self, fastapi):
        import uvicorn
        self._server = uvicorn.Server(uvicorn.Config(
            fastapi, host=self.cfg.host, port=self.cfg.port, log_config=None,
            access_log=False, timeout_graceful_shutdown=GRACEFUL_SECONDS))
        return self._server


def _make_app(cfg: TeamsBotConfig, creds: dict[str, str], server_factory):
    """The SDK app, imported only when the bot is on (it is heavy, and reads a .env file
    in the working directory when imported)."""
    with warnings.catch_warnings():  # its HTML widget's "preview" notice, at import
        warnings.simplefilter("ignore")
        from microsoft_teams.apps import App
        from microsoft_teams.apps.http.fastapi_adapter import FastAPIAdapter
        from microsoft_teams.common import ClientOptions
    return App(**creds, dangerously_allow_unauthenticated_requests=cfg.allow_unauthenticated,
               http_server_adapter=FastAPIAdapter(server_factory=server_factory),
               messaging_endpoint=cfg.path, client=ClientOptions(timeout=REPLY_TIMEOUT_SECONDS))
