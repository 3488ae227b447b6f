"""The Voiso security bot: the composition root and its command line.

    python bot.py [--config PATH] [run]          the worker: poll SQS into the SQLite cache, post
                                                 alerts, answer /voiso and the buttons
    python bot.py [--config PATH] check          say in plain words what is wrong with the setup
    python bot.py [--config PATH] send-sample [KIND]
                                                 send the vendor's example of every kind (or one)
    python bot.py [--config PATH] render [--teams] [KIND]
                                                 print the Slack alert (or Teams card) of each
                                                 example (or one)
    python bot.py [--config PATH] redeliver [CHANNEL]
                                                 queue alerts that failed (after the fix) again
    python bot.py demo [--seconds N]             everything on embedded defaults, no AWS needed

Configuration is read and validated once here; every object is built here and
handed what it needs. Exit codes: 0 fine, 1 a problem found or a failed send,
2 a configuration or usage error.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from slack_bolt import App

import handlers
from voisobot import check, config, events, jobs, logs, routing, samples, serve, slack, sqs
from voisobot.access import AccessPolicy
from voisobot.buttons import AlertButtons
from voisobot.commands import Commands
from voisobot.config import Config
from voisobot.delivery import AlertDelivery, TeamsOutput
from voisobot.errors import ConfigError, VoisoBotError
from voisobot.front_door import FrontDoor
from voisobot.intake import Intake, utc_now
from voisobot.outbox import Outbox
from voisobot.render import AlertView, SlackRenderer
from voisobot.replays import Replays
from voisobot.store import Store
from voisobot.teams import TeamsSender
from voisobot.teams_cards import TeamsRenderer

log = logging.getLogger("voisobot")


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

    def start(self) -> None:
        self.scheduler.start()
        if self.slack_server is not None:
            self.slack_server.start()

    def stop(self) -> None:
        """Stop taking requests from Slack, finish the batch in hand, then stop: nothing
        received is left uncommitted."""
        if self.slack_server is not None:
            self.slack_server.stop()
        self.intake.stop()
        grace = self.config.sqs.wait_time_seconds + self.config.sqs.read_timeout_seconds
        finished = self.gate.close(timeout=grace)
        if not finished:
            log.warning("a job did not finish within %.0f s; stopping anyway", grace)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=finished)  # waiting on a stuck job could deadlock
        self.store.close()


def build(cfg: Config, sender=None, client=None, secrets: dict[str, str] | None = None
          ) -> Runtime:
    """Everything the bot runs: alerts are delivered when there is a sender, and /voiso
    and the buttons are served when there is a Web API client too (the Slack tokens and
    secrets come from ``secrets``, the environment by default)."""
    env = os.environ if secrets is None else secrets
    if client is not None and cfg.slack.mode == "http" and not env.get("SLACK_SIGNING_SECRET"):
        raise ConfigError('slack.mode is "http": set SLACK_SIGNING_SECRET in the environment '
                          "(Slack app → Basic Information → Signing Secret)")
    store = Store(cfg.store_path)
    intake = Intake(sqs.make_client(cfg.sqs), cfg.sqs, store)
    renderer = SlackRenderer(cfg.templates_path)
    cards = teams_output(cfg, env)
    delivery = None
    if sender is not None or cards is not None:
        delivery = AlertDelivery(Outbox(store), renderer, sender, cfg, teams=cards)
    gate = jobs.StopGate()
    scheduler = jobs.build_scheduler(intake, store, retention_days=cfg.store.retention_days,
                                     prune_interval_minutes=cfg.store.prune_interval_minutes,
                                     gate=gate, delivery=delivery)
    runtime = Runtime(cfg, store, intake, scheduler, gate, delivery)
    if client is not None and sender is not None:
        runtime.slack_server = slack_server(cfg, slack_app(cfg, client, runtime, renderer),
                                            runtime, env)
    return runtime


def teams_output(cfg: Config, env) -> TeamsOutput | None:
    """Cards for the Teams destinations, if any; their webhook URLs come from ``env``."""
    if not cfg.teams.destinations:
        return None
    sender = TeamsSender(cfg.teams, env)
    for name in cfg.teams.destinations:
        if (unavailable := sender.unavailable(name)) is not None:
            log.error("Teams destination %s: %s", name, unavailable.advice)
    return TeamsOutput(teams_renderer(cfg), sender)


def teams_renderer(cfg: Config) -> TeamsRenderer:
    return TeamsRenderer(cfg.teams_templates_path, ip_lookup_url=cfg.teams.ip_lookup_url)


def slack_app(cfg: Config, client, runtime: Runtime, renderer: SlackRenderer) -> App:
    """The Bolt app with every listener registered."""
    # No auth.test at start-up: Slack being down must not stop the intake. No signature
    # check either: the front door checks each request before Bolt sees it, and Bolt's
    # check logs the whole body of a request it refuses (front_door.py).
    app = App(client=client, token_verification_enabled=False,
              request_verification_enabled=False, logger=logging.getLogger("voisobot.bolt"))
    policy = AccessPolicy(cfg.access, lambda group: slack.usergroup_members(client, group))
    outbox = runtime.delivery.outbox
    handlers.register(app, Commands(runtime.store, renderer, policy, utc_now),
                      AlertButtons(outbox, renderer, runtime.delivery.sender, policy, utc_now))
    return app


def slack_server(cfg: Config, app: App, runtime: Runtime, env):
    """How Slack reaches the app: Socket Mode, or waitress in HTTP mode."""
    if cfg.slack.mode == "http":
        silence = cfg.sqs.read_timeout_seconds + cfg.sqs.backoff_max_seconds \
            + cfg.sqs.poll_interval_seconds + 60
        health = serve.Health(runtime.intake, runtime.delivery.outbox, silence, utc_now)
        port = int(env.get("PORT") or cfg.http.port)
        door = FrontDoor(app, env["SLACK_SIGNING_SECRET"], cfg.http.max_body_bytes,
                         Replays(runtime.store, utc_now))
        return serve.HttpServer(serve.wsgi_app(door, health), cfg.http.host, port,
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


def run(cfg: Config, args) -> int:
    client = slack_client(cfg)
    runtime = build(cfg, slack.SlackSender(client) if client else None, client)
    if client is None:
        log.warning("SLACK_BOT_TOKEN is not set: events are stored, no Slack alert is posted%s",
                    " (Teams cards are)" if cfg.teams.destinations else "")
    if runtime.delivery is not None and not cfg.routes and not cfg.slack.default_channel \
            and not cfg.teams.default_destination:
        log.warning("no [[routes]], no slack.default_channel and no teams.default_destination: "
                    "no alert has a channel to go to")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runtime.start()
    log.info("polling %s into %s", cfg.sqs.queue_url, cfg.store_path)
    while not stop.wait(3600):
        pass
    log.info("stopping: finishing the batch in hand")
    runtime.stop()
    log.info("stopped")
    return 0


def selected_kinds(name: str | None) -> list[str] | None:
    try:
        return samples.select(name)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return None


def send_sample(cfg: Config, args) -> int:
    kinds = selected_kinds(args.kind)
    if kinds is None:
        return 2
    client = sqs.make_client(cfg.sqs)
    for kind in kinds:
        body = samples.body_text(samples.example(kind, now=utc_now()))
        try:
            sent = client.send_message(QueueUrl=cfg.sqs.queue_url, MessageBody=body)
        except Exception as exc:
            problem = sqs.classify(exc, "SendMessage", cfg.sqs, client.meta.region_name)
            print(f"error: {problem}", file=sys.stderr)
            return 1
        print(f"sent {kind} as message {sent['MessageId']}")
    return 0


def render_samples(cfg: Config, args) -> int:
    """Print the Slack message (or with --teams the Teams post) of the vendor's example of
    each kind, for template authors."""
    kinds = selected_kinds(args.kind)
    if kinds is None:
        return 2
    renderer = teams_renderer(cfg) if args.teams else SlackRenderer(cfg.templates_path)
    for kind in kinds:
        event = events.parse(samples.body_text(samples.EXAMPLES[kind]).encode())
        severity = routing.severity_of(event, cfg.severity)
        print(f"# {kind}: severity {severity}, template {renderer.template_for(kind)}")
        print(json.dumps(renderer.render(AlertView(event, severity)), indent=2,
                         ensure_ascii=False))
    return 0


def run_check(cfg: Config, args) -> int:
    return check.run(cfg, sqs.make_client(cfg.sqs), slack_client(cfg), out=sys.stdout)


def run_demo(args) -> int:
    """The demo posts to real Slack when SLACK_BOT_TOKEN and VOISO_DEMO_CHANNEL are set (with
    SLACK_APP_TOKEN, /voiso and the buttons work there too), and to the console otherwise;
    with VOISO_DEMO_TEAMS_URL (a Workflows webhook) its cards go to Teams as well."""
    from voisobot import demo  # imports moto, which only the demo and the tests need

    token, channel = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("VOISO_DEMO_CHANNEL")
    if token and not channel:
        print("error: SLACK_BOT_TOKEN is set: set VOISO_DEMO_CHANNEL to the ID of the channel "
              "the demo may post in (the bot must be invited there)", file=sys.stderr)
        return 2
    if token and not os.environ.get("SLACK_APP_TOKEN"):
        print("note: SLACK_APP_TOKEN is not set: alerts are posted, but /voiso and the buttons "
              "get no answer", file=sys.stderr)
    store = Path(args.store) if args.store else None
    teams = bool(os.environ.get(demo.TEAMS_URL_VARIABLE))
    with demo.embedded_queue(store, channel if token else None, teams) as cfg:
        configure_logging("ERROR")  # the live view shows rejections and the intake's state
        if not token:
            console = demo.ConsoleSender()
            return demo.run(build(cfg, console), seconds=args.seconds, console=console)
        client = slack.make_client(token, cfg.slack.api_base_url, cfg.slack.timeout_seconds)
        return demo.run(build(cfg, slack.SlackSender(client), client), seconds=args.seconds)


def redeliver(cfg: Config, args) -> int:
    """Queue the failed alerts (of one channel, or all) again; the running worker posts them."""
    store = Store(cfg.store_path)
    try:
        count = Outbox(store).redeliver_failed(args.channel)
    finally:
        store.close()
    where = f" to {args.channel}" if args.channel else ""
    print(f"queued {count} failed alert(s){where} again; the running bot posts them")
    return 0


COMMANDS = {"run": run, "check": run_check, "send-sample": send_sample, "render": render_samples,
            "redeliver": redeliver}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bot.py", description="Voiso security bot")
    parser.add_argument("--config", type=Path, default=config.DEFAULT_PATH,
                        help="the config file (default: ./config.toml)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="poll SQS into the cache (the default)")
    commands.add_parser("check", help="check the config, the queue and the permissions")
    sample = commands.add_parser("send-sample", help="send the vendor's example events")
    sample.add_argument("kind", nargs="?", help="one kind, e.g. app_login/unauthorized_ip")
    render = commands.add_parser("render", help="print the Slack alert for the vendor's examples")
    render.add_argument("--teams", action="store_true", help="the Teams card instead")
    render.add_argument("kind", nargs="?", help="one kind, e.g. user/privileges_updated")
    again = commands.add_parser("redeliver", help="queue the alerts that failed again")
    again.add_argument("channel", nargs="?",
                       help="only those of one channel (a Slack ID, or teams:NAME)")
    demo = commands.add_parser("demo", help="run everything on embedded defaults")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long")
    demo.add_argument("--store", help="keep the demo's SQLite file here (default: a temp dir)")
    args = parser.parse_args(argv)
    args.command = args.command or "run"
    return args


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str) -> None:
    """Every record of every logger, ours and the libraries', goes through one handler
    whose formatter keeps each record on one line (voisobot/logs.py)."""
    handler = _CurrentStderr()
    handler.setFormatter(logs.LineFormatter())
    logging.basicConfig(level=level, force=True, handlers=[handler])
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    try:
        cfg = config.load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.log.level)
    try:
        return COMMANDS[args.command](cfg, args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except VoisoBotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
