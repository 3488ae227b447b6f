"""The composition root: configuration in, the running bot out.

Configuration is read and validated once (voisobot/cli.py); every object is built here and
handed what it needs: the store, the intake and the scheduler that drives it, the delivery
job, the Slack side (Socket Mode or HTTP mode) with its listeners from handlers/, and the
operations listener (health and metrics) with the metrics every part counts into.
"""

import logging
import os
from dataclasses import dataclass, field

from slack_bolt import App
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from voisobot import events, jobs, logs, sqs
from voisobot.access import AccessPolicy, TeamsAccessPolicy
from voisobot.alert_extras import AlertOptions
from voisobot.commands import Commands, Guard
from voisobot.config import Config
from voisobot.confirm_answers import QuestionAnswers
from voisobot.confirming import Confirmations, question_view
from voisobot.delivery import AlertDelivery
from voisobot.digest import DigestJob, Digests
from voisobot.errors import ConfigError
from voisobot.handlers import slack as slack_handlers
from voisobot.home import Health
from voisobot.intake import Intake, utc_now
from voisobot.metrics import CountedSlackSender, CountedTeamsSender, Metrics
from voisobot.ops import OpsListener, listener
from voisobot.outbox import Outbox
from voisobot.questions import Questions
from voisobot.render import compile_templates
from voisobot.slack import sender as slack
from voisobot.slack import serve
from voisobot.slack.asking import SlackAsking
from voisobot.slack.buttons import AlertButtons
from voisobot.slack.front_door import FrontDoor
from voisobot.slack.home import REFRESH_SECONDS, AppHome
from voisobot.slack.output import SlackOutput
from voisobot.slack.people import SlackPeople
from voisobot.slack.permalinks import Permalinks
from voisobot.slack.question_buttons import QuestionButtons
from voisobot.slack.render import SlackRenderer
from voisobot.slack.replays import Replays
from voisobot.store import Store
from voisobot.store_lock import StoreLock
from voisobot.teams.answers import TeamsAnswers
from voisobot.teams.asking import TeamsAsking
from voisobot.teams.buttons import TeamsAlertButtons
from voisobot.teams.cards import TeamsRenderer
from voisobot.teams.output import BotCardOutput, WebhookOutput
from voisobot.teams.people import TeamsPeople
from voisobot.teams.question_cards import TeamsQuestionButtons
from voisobot.teams.references import References
from voisobot.teams.sender import BotSender
from voisobot.teams.server import BotServer
from voisobot.teams.webhook import TeamsSender

log = logging.getLogger("voisobot")

# How long a stop waits for job runs in hand (a batch being stored and deleted, a Slack
# call, a retention chunk); each is bounded by its own timeouts, well under this.
STOP_GRACE_SECONDS = 20.0
HOME_JOB = "app_home"
TEMPLATES_JOB = "compile_templates"

# Bolt's own log (and its Socket Mode client's). Given a client, Bolt still reads
# SLACK_BOT_TOKEN from the environment and then warns, on every start, that it will not use
# it: it uses the client's token, which is that same token.
BOLT_LOG = logging.getLogger("voisobot.bolt")
BOLT_LOG.addFilter(logs.Quieted(warning_client_prioritized_and_token_skipped()))


@dataclass
class Runtime:
    """The running bot: the store, the intake and the scheduler that drives them."""

    config: Config
    store: Store
    intake: Intake
    scheduler: object
    gate: jobs.StopGate
    delivery: AlertDelivery | None = None
    slack_server: serve.SocketMode | serve.HttpServer | None = None  # /voiso and buttons
    lock: StoreLock | None = None  # this bot's hold on the store, until it stops
    metrics: Metrics = field(default_factory=Metrics)
    ops: OpsListener | None = None  # /healthz, /readyz, /metrics
    confirmations: Confirmations | None = None  # "was this you?", when [confirm] is on
    teams_bot: BotServer | None = None  # @Voiso in Teams, when [teams.bot] is enabled
    slack_sender: object = None  # what posts and updates alerts in Slack (the buttons too)

    def start(self) -> None:
        if self.ops is not None:
            self.ops.start()  # first: an address in use stops the bot before anything runs
        self._start_teams_bot()
        self.scheduler.start()
        if self.slack_server is not None:
            self.slack_server.start()

    def stop(self) -> None:
        """Stop taking requests from Slack, finish the batch being stored and the job runs
        in hand, then stop, well inside a container's 30-second grace period. A long poll
        in flight is not waited for: the messages it brings are neither stored nor deleted,
        and SQS hands them out again after the queue's visibility timeout. Nothing received
        is lost or left half stored."""
        if self.slack_server is not None:
            self.slack_server.stop()
        if self.teams_bot is not None:
            self.teams_bot.stop()  # before the store closes: its answers read the store
        self.intake.stop()
        finished = self.gate.close(timeout=STOP_GRACE_SECONDS)
        if not finished:
            log.warning("a job did not finish within %.0f s; stopping anyway",
                        STOP_GRACE_SECONDS)
        if self.scheduler.running:
            # Not waiting: the gate is closed and every job part that must finish has (a
            # job left in a long poll stores nothing once it returns), and waiting for a
            # job that reschedules itself would deadlock (jobs.StopGate).
            self.scheduler.shutdown(wait=False)
        if self.ops is not None:
            self.ops.stop()  # before the store closes: its requests read the store
        self.store.close()
        if self.lock is not None:
            self.lock.release()

    def _start_teams_bot(self) -> None:
        """Its own thread and loop; its address in use stops the bot before anything runs."""
        if self.teams_bot is None:
            return
        try:
            self.teams_bot.start()
        except BaseException:
            if self.ops is not None:
                self.ops.stop()
            raise


def build(cfg: Config, sender=None, client=None, secrets: dict[str, str] | None = None
          ) -> Runtime:
    """Everything the bot runs: alerts are delivered when there is a sender, and /voiso
    and the buttons are served when there is a Web API client too (the Slack tokens and
    secrets come from ``secrets``, the environment by default)."""
    env = os.environ if secrets is None else secrets
    if client is not None and cfg.slack.mode == "http" and not env.get("SLACK_SIGNING_SECRET"):
        raise ConfigError('slack.mode is "http": set SLACK_SIGNING_SECRET in the environment '
                          "(Slack app → Basic Information → Signing Secret)")
    lock = StoreLock.acquire(cfg.store_path)  # one bot per store, before it is touched at all
    try:
        return _build(cfg, sender, client, env, lock)
    except BaseException:
        lock.release()
        raise


def _build(cfg: Config, sender, client, env, lock: StoreLock) -> Runtime:
    metrics = Metrics()
    store = Store(cfg.store_path)
    metrics.watch_outbox(lambda: Outbox(store).backlog(utc_now()))
    gate, watch = jobs.StopGate(), jobs.JobWatch()
    intake = Intake(sqs.make_client(cfg.sqs), cfg.sqs, store, abandonable=gate.abandonable,
                    metrics=metrics)
    renderer, teams = slack_renderer(cfg), teams_renderer(cfg)
    cards = teams_output(cfg, env, metrics, teams)
    bot_server = teams_bot(cfg, store, metrics, renderer, teams, env) \
        if cfg.teams.bot.enabled else None
    bot_cards = bot_output(cfg, bot_server, store, teams)
    delivery = counted = None
    if sender is not None or cards is not None or bot_cards is not None:
        counted = CountedSlackSender(sender, metrics) if sender is not None else None
        delivery = AlertDelivery(Outbox(store), alert_outputs(renderer, counted, cards,
                                                              bot_cards), cfg, metrics=metrics)
    asking = confirmations(cfg, store, renderer, client if sender is not None else None,
                           metrics, bot_server, teams)
    scheduler = jobs.build_scheduler(intake, store, retention_days=cfg.store.retention_days,
                                     prune_interval_minutes=cfg.store.prune_interval_minutes,
                                     gate=gate, delivery=delivery, watch=watch,
                                     confirmations=asking,
                                     digest=digest_job(cfg, store, delivery))
    if delivery is not None:  # the first alert after a start does not wait for them
        used = [renderer, *([teams] if cards is not None or bot_cards is not None else [])]
        jobs.add_start_job(scheduler, gate, TEMPLATES_JOB, "compile the alert templates",
                           lambda: sum(compile_alert_templates(each) for each in used))
    runtime = Runtime(cfg, store, intake, scheduler, gate, delivery, lock=lock,
                      metrics=metrics, confirmations=asking, teams_bot=bot_server,
                      slack_sender=counted)
    if client is not None and sender is not None:
        runtime.slack_server = slack_server(cfg, slack_app(cfg, client, runtime, renderer),
                                            runtime, env)
    runtime.ops = listener(runtime, watch)
    return runtime


def compile_alert_templates(renderer: SlackRenderer | TeamsRenderer) -> int:
    """Every documented kind's alert template, compiled before any alert needs it."""
    return compile_templates(renderer.env,
                             (f"{type_}/{event}" for type_, event in events.KIND_PARAMS))


def digest_job(cfg: Config, store: Store, delivery: AlertDelivery | None) -> DigestJob | None:
    """The digest ([digest]), posted through the alerts' own outputs; None when off, or in
    a run that posts nothing (its digests are made and posted by a later run)."""
    if not cfg.digest.enabled or delivery is None:
        return None
    return DigestJob(Digests(store), delivery.outputs, cfg.digest,
                     timeout_seconds=cfg.slack.timeout_seconds, metrics=delivery.metrics)


# --- the Teams bot ([teams.bot]) ----------------------------------------------------------

def teams_bot(cfg: Config, store: Store, metrics: Metrics, renderer: SlackRenderer,
              teams: TeamsRenderer, env) -> BotServer:
    """@Voiso in Teams: the same commands as /voiso, with Teams identities in [access];
    and, when "was this you?" may ask in Teams, who each personal chat's user is and the
    answers pressed on its cards."""
    policy = TeamsAccessPolicy(cfg.access)
    commands = Commands(store, renderer, policy, utc_now, metrics, platform="teams")
    guard = Guard(store, renderer, policy, utc_now)
    buttons = TeamsAlertButtons(Outbox(store), teams, guard, References(store), utc_now,
                                metrics)
    people = questions = None
    if asks_in_teams(cfg):
        people = TeamsPeople(store, cfg.confirm)
        outbox = Outbox(store)
        answers = QuestionAnswers(Questions(store), outbox, guard, cfg, utc_now, metrics)
        questions = TeamsQuestionButtons(answers, teams,
                                         lambda q: question_view(outbox, q, cfg))
    return BotServer(cfg.teams.bot, TeamsAnswers(commands), References(store), utc_now, env,
                     buttons=buttons, people=people, questions=questions,
                     seen_in_team=policy.saw)


def asks_in_teams(cfg: Config) -> bool:
    return cfg.confirm.enabled and cfg.teams.bot.enabled and "teams" in cfg.confirm.ask_in


def alert_outputs(renderer: SlackRenderer, slack_sender, webhooks: WebhookOutput | None = None,
                  bot_cards: BotCardOutput | None = None, *, slack_pace: float = 1.0
                  ) -> tuple:
    """Where alerts go, one output per platform: Slack (its sender None without a token:
    its alerts wait), Teams' webhooks and the Teams bot (each refusing its alerts with the
    reason when this run has none)."""
    return (SlackOutput(renderer, slack_sender, slack_pace), webhooks or WebhookOutput(),
            bot_cards or BotCardOutput())


def bot_output(cfg: Config, server: BotServer | None, store: Store, teams: TeamsRenderer
               ) -> BotCardOutput | None:
    """Alert cards posted by the Teams bot to the conversations named by subscribe."""
    if server is None:
        return None
    return BotCardOutput(teams, BotSender(server, References(store), cfg.teams.timeout_seconds))


def teams_output(cfg: Config, env, metrics: Metrics, teams: TeamsRenderer
                 ) -> WebhookOutput | None:
    """Cards for the Teams destinations, if any; their webhook URLs come from ``env``."""
    if not cfg.teams.destinations:
        return None
    sender = TeamsSender(cfg.teams, env)
    for name in cfg.teams.destinations:
        if (unavailable := sender.unavailable(name)) is not None:
            log.error("Teams destination %s: %s", name, unavailable.advice)
    return WebhookOutput(teams, CountedTeamsSender(sender, metrics))


def teams_renderer(cfg: Config) -> TeamsRenderer:
    return TeamsRenderer(cfg.teams_templates_path, ip_lookup_url=cfg.teams.ip_lookup_url,
                         ack_min_severity=cfg.alerts.ack_min_severity, runbooks=cfg.runbooks)


def slack_renderer(cfg: Config) -> SlackRenderer:
    return SlackRenderer(cfg.templates_path, options=alert_options(cfg))


def alert_options(cfg: Config) -> AlertOptions:
    """[alerts], [runbooks], and the look-up link of teams.ip_lookup_url (one setting for
    both platforms)."""
    return AlertOptions(ack_min_severity=cfg.alerts.ack_min_severity,
                        ip_lookup_url=cfg.teams.ip_lookup_url, runbooks=cfg.runbooks)


def slack_app(cfg: Config, client, runtime: Runtime, renderer: SlackRenderer) -> App:
    """The Bolt app with every listener registered."""
    # No auth.test at start-up: Slack being down must not stop the intake. No signature
    # check either: the front door checks each request before Bolt sees it, and Bolt's
    # check logs the whole body of a request it refuses (slack/front_door.py).
    app = App(client=client, token_verification_enabled=False,
              request_verification_enabled=False, logger=BOLT_LOG)
    policy = AccessPolicy(cfg.access, lambda group: slack.usergroup_members(client, group))
    outbox, metrics = runtime.delivery.outbox, runtime.metrics
    commands = Commands(runtime.store, renderer, policy, utc_now, metrics,
                        permalinks=Permalinks(client))
    answers = None
    if runtime.confirmations is not None:
        answers = QuestionButtons(runtime.confirmations.questions, outbox, commands.guard, cfg,
                                  runtime.confirmations.show_in_dm, utc_now, metrics)
    buttons = AlertButtons(outbox, renderer, runtime.slack_sender, policy, utc_now, metrics)
    slack_handlers.register(app, commands, buttons, answers, app_home(runtime, renderer,
                                                                       client, commands.guard))
    return app


def app_home(runtime: Runtime, renderer: SlackRenderer, client, guard: Guard) -> AppHome:
    """The App Home, and the job that refreshes it when what it shows changes."""
    store = runtime.store
    home = AppHome(Outbox(store), renderer, client, guard, lambda: Health(
        runtime.intake.health.last_successful_poll, Outbox(store).backlog(utc_now())), utc_now,
        runtime.metrics)
    jobs.add_gated_job(runtime.scheduler, runtime.gate, HOME_JOB, "App Home", home.refresh,
                       REFRESH_SECONDS)
    return home


def confirmations(cfg: Config, store: Store, renderer: SlackRenderer, client,
                  metrics: Metrics, bot: BotServer | None, teams: TeamsRenderer
                  ) -> Confirmations | None:
    """The "was this you?" job, when [confirm] is on and there is a way to ask: a Slack
    client (DMs), or the Teams bot (personal chats, and "teamsbot:<name>" escalations)."""
    if not cfg.confirm.enabled or (client is None and bot is None):
        return None
    questions = Questions(store)
    in_slack = SlackAsking(questions, renderer, client, SlackPeople(client, store, cfg.confirm)
                           if client is not None else None, store.store_id, utc_now, metrics)
    in_teams = TeamsAsking() if bot is None else TeamsAsking(
        questions, TeamsPeople(store, cfg.confirm), teams,
        BotSender(bot, References(store), cfg.teams.timeout_seconds), utc_now)
    return Confirmations(questions, Outbox(store), (in_slack, in_teams), cfg, metrics=metrics)


def slack_server(cfg: Config, app: App, runtime: Runtime, env):
    """How Slack reaches the app: Socket Mode, or waitress in HTTP mode."""
    if cfg.slack.mode == "http":
        port = int(env.get("PORT") or cfg.http.port)
        door = FrontDoor(app, env["SLACK_SIGNING_SECRET"], cfg.http.max_body_bytes,
                         Replays(runtime.store, utc_now))
        return serve.HttpServer(serve.wsgi_app(door), cfg.http.host, port,
                                cfg.http.threads, cfg.http.max_body_bytes)
    app_token = env.get("SLACK_APP_TOKEN", "")
    if not app_token:
        log.warning("SLACK_APP_TOKEN is not set: alerts are posted, but /voiso and the "
                    "buttons get no answer (set it, or use slack.mode = \"http\")")
        return None
    return serve.SocketMode(app, app_token)


def slack_client(cfg: Config):
    """A Web API client with the bot token from the environment (never from config.toml),
    or None when SLACK_BOT_TOKEN is not set: then events are stored and nothing is posted."""
    token = os.environ.get("SLACK_BOT_TOKEN")
    if not token:
        return None
    return slack.make_client(token, cfg.slack.api_base_url, cfg.slack.timeout_seconds)
