"""The command line of the Voiso security bot (``voisobot`` once installed, or
``python bot.py`` in a checkout).

    voisobot [--config PATH] [run]          the worker: poll SQS into the SQLite cache, post
                                            alerts, answer /voiso and the buttons
    voisobot [--config PATH] check          say in plain words what is wrong with the setup
    voisobot [--config PATH] send-sample [KIND]
                                            send the vendor's example of every kind (or one)
    voisobot [--config PATH] render [--teams | --teams-bot]
                                    [--question | --escalation | --digest] [KIND]
                                            print the Slack alert (or Teams card, "was this
                                            you?" DM, escalation, digest) of each example (or one)
    voisobot [--config PATH] render --list | render [--builder] NAME
                                            name every message the bot can send; print one
                                            (--builder: as a Block Kit Builder link)
    voisobot [--config PATH] redeliver [CHANNEL]
                                            queue alerts that failed (after the fix) again
    voisobot [--config PATH] teams-app --website URL [--out FILE]
                                            write the Teams app package (TEAMS_APP_ID's bot)
    voisobot [--config PATH] health [--ready]
                                            ask the running bot's /healthz (or /readyz) on
                                            [ops]: exit 0 when it answers 200
    voisobot demo [--seconds N]             everything on embedded defaults, no AWS needed

Exit codes: 0 fine, 1 a problem found or a failed send, 2 a configuration or usage error.
"""

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from voisobot import check, config, logs, previews, probe, routing, samples, sqs
from voisobot.config import Config
from voisobot.errors import ConfigError, VoisoBotError
from voisobot.intake import utc_now
from voisobot.outbox import Outbox
from voisobot.render import QuestionView
from voisobot.runtime import build, slack_client, slack_renderer, teams_renderer
from voisobot.slack import sender as slack
from voisobot.store import Store
from voisobot.teams import app as teams_app_package
from voisobot.teams.cards import envelope

log = logging.getLogger("voisobot")


def run(cfg: Config, args) -> int:
    # Before anything is built: a SIGTERM while the store opens (a container stopped as it
    # starts) is then a clean stop, not a kill mid-migration.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    client = slack_client(cfg)
    runtime = build(cfg, slack.SlackSender(client) if client else None, client)
    if client is None:
        log.warning("SLACK_BOT_TOKEN is not set: events are stored, no Slack alert is posted%s",
                    " (Teams cards are)" if cfg.teams.destinations else "")
    if runtime.delivery is not None and not cfg.routes and not cfg.slack.default_channel \
            and not cfg.teams.default_destination:
        log.warning("no [[routes]], no slack.default_channel and no teams.default_destination: "
                    "no alert has a channel to go to")
    runtime.start()
    log.info("polling %s into %s", cfg.sqs.queue_url, cfg.store_path)
    while not stop.wait(3600):
        pass
    log.info("stopping: finishing the batch in hand")
    runtime.stop()
    log.info("stopped")
    exit_now(0)


def exit_now(code: int) -> None:
    """End the process once the bot has stopped. Not by returning: Python would first
    join the scheduler's worker threads, and one left in a long poll would hold the
    process up to wait_time_seconds more, past a container's grace period."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
    """Print a message the bot can send: with --list their names; with a preview NAME that
    one; else the Slack message (or with --teams the Teams post) of the vendor's example of
    each kind, or of one KIND, for template authors. With --builder, Block Kit Builder links
    instead of JSON."""
    if args.list:
        for name, preview in previews.PREVIEWS.items():
            print(f"{name:<40} {preview.platform:<10} {preview.what}")
        return 0
    if args.kind in previews.PREVIEWS:
        return render_preview(cfg, args)
    kinds = selected_kinds(args.kind)
    if kinds is None:
        return 2
    teams = args.teams or args.teams_bot
    if (args.question or args.escalation) and args.teams:
        print("error: a Teams webhook cannot ask anyone; --teams-bot shows the bot's question "
              "and escalation cards", file=sys.stderr)
        return 2
    if args.builder and teams:
        return _no_builder_for_teams()
    if args.question or args.escalation:
        return render_confirmations(cfg, kinds, args.escalation, args.teams_bot, args.builder)
    if args.digest:
        return render_digest(cfg, kinds, args.teams, args.teams_bot)
    renderer = teams_renderer(cfg) if teams else slack_renderer(cfg)
    for kind in kinds:
        view = previews.alert_view(cfg, kind)
        print(f"# {kind}: severity {view.severity}, template {renderer.template_for(kind)}")
        message = renderer.bot_card(view) if args.teams_bot else renderer.render(view)
        print_message(message, args.builder)
    return 0


def render_preview(cfg: Config, args) -> int:
    """``render NAME``: one entry of voisobot.previews, which says its own platform."""
    preview = previews.PREVIEWS[args.kind]
    if args.teams or args.teams_bot or args.question or args.escalation:
        print(f"error: {args.kind} is a preview name: it says what it shows, so --teams, "
              "--teams-bot, --question and --escalation do not apply (see render --list)",
              file=sys.stderr)
        return 2
    if args.builder and preview.platform != previews.SLACK:
        return _no_builder_for_teams()
    print(f"# {args.kind}: {preview.what}")
    print_message(preview.build(cfg), args.builder)
    return 0


def print_message(message: dict, builder: bool) -> None:
    print(previews.builder_url(message) if builder
          else json.dumps(message, indent=2, ensure_ascii=False))


def _no_builder_for_teams() -> int:
    print("error: the Block Kit Builder shows Slack messages only; paste a Teams card into "
          "https://adaptivecards.io/designer/ to see it", file=sys.stderr)
    return 2


def render_digest(cfg: Config, kinds: list[str], webhook: bool, bot: bool) -> int:
    """Print the digest of the period that last ended ([digest]'s time, zone and period)
    had the vendor's example of each kind happened in it, from a store made for the
    preview and thrown away."""
    view = previews.digest_of_examples(cfg, kinds, utc_now())
    if webhook or bot:  # a webhook posts the card in its envelope, the bot the card alone
        card = teams_renderer(cfg).digest_card(view)
        message = envelope(card) if webhook else card
    else:
        message = slack_renderer(cfg).render_digest(view)
    print(json.dumps(message, indent=2, ensure_ascii=False))
    return 0


def render_confirmations(cfg: Config, kinds: list[str], escalation: bool,
                         teams: bool = False, builder: bool = False) -> int:
    """Print the "was this you?" DM (or the escalation of a "no") that each example asks
    of each person [confirm] names for its kind, whether or not [confirm] is on; with
    ``teams``, the Teams bot's question card (or its escalation card)."""
    renderer = teams_renderer(cfg) if teams else slack_renderer(cfg)
    asking = dataclasses.replace(cfg.confirm, enabled=True)
    for kind in kinds:
        view = previews.alert_view(cfg, kind)
        people = routing.people_to_ask(view.event, asking)
        if not people:
            print(f"# {kind}: nobody is asked ([confirm] ask_user, ask_admin)")
        for role, email in people:
            question = previews.question_view(cfg, view, role, email, escalation=escalation,
                                              teams=teams)
            what = "escalation" if escalation else f"question to the {role}"
            print(f"# {kind}: {what} ({email})")
            print_message(_confirmation_message(renderer, question, escalation, teams), builder)
    return 0


def _confirmation_message(renderer, question: QuestionView, escalation: bool,
                          teams: bool) -> dict:
    if teams:
        return renderer.escalation_card(question) if escalation \
            else renderer.question_card(question)
    return renderer.render_escalation(question) if escalation \
        else renderer.render_question(question)


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
    """Queue the failed alerts (of one channel, or all) again; the running worker posts them.

    It opens only a store that exists (a wrong store.path must not leave an empty one
    behind), and says so when nothing was failed: a channel ID with a typo queues nothing."""
    store = Store(cfg.store_path, create=False)  # NoStore: exit 1 with what to check
    try:
        outbox = Outbox(store)
        count = outbox.redeliver_failed(args.channel)
        failed_elsewhere = outbox.failed_by_channel()
    finally:
        store.close()
    where = f" to {args.channel}" if args.channel else ""
    if count:
        print(f"queued {count} failed alert(s){where} again; the running bot posts them")
    else:
        print(f"nothing to requeue: no failed alert{where} in {cfg.store_path}"
              + _failed_elsewhere(failed_elsewhere))
    return 0


def _failed_elsewhere(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return "; failed alerts wait for " + ", ".join(
        f"{channel} ({count})" for channel, count in counts.items())


def teams_app(cfg: Config, args) -> int:
    """Write the Teams app package (manifest.json and icons, zipped) for the bot whose
    Microsoft App ID is TEAMS_APP_ID."""
    bot_id = os.environ.get(teams_app_package.APP_ID_VARIABLE, "")
    if not bot_id:
        print(f"error: {teams_app_package.APP_ID_VARIABLE} is not set: set it to the Azure "
              "Bot's Microsoft App ID (Azure Bot → Configuration)", file=sys.stderr)
        return 2
    path = teams_app_package.write(args.out, bot_id, args.website)
    print(f"wrote {path}: upload it in Teams (Apps → Manage your apps → Upload an app), or "
          "give it to a Teams admin to approve")
    return 0


def health(cfg: Config, args) -> int:
    healthy, line = probe.probe(cfg.ops, ready=args.ready)
    print(line, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


COMMANDS = {"run": run, "check": run_check, "send-sample": send_sample, "render": render_samples,
            "redeliver": redeliver, "health": health, "teams-app": teams_app}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Voiso security bot")
    parser.add_argument("--config", type=Path, default=None,
                        help="the config file (default: ./config.toml, optional when the "
                        "environment sets every required key, e.g. VOISO_SQS__QUEUE_URL)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="poll SQS into the cache (the default)")
    commands.add_parser("check", help="check the config, the queue and the permissions")
    sample = commands.add_parser("send-sample", help="send the vendor's example events")
    sample.add_argument("kind", nargs="?", help="one kind, e.g. app_login/unauthorized_ip")
    render = commands.add_parser("render", help="print the Slack alert for the vendor's examples")
    where = render.add_mutually_exclusive_group()
    where.add_argument("--teams", action="store_true", help="the Teams card instead")
    where.add_argument("--teams-bot", action="store_true",
                       help="the Teams bot's card, with its Action.Execute buttons, instead")
    what = render.add_mutually_exclusive_group()
    what.add_argument("--question", action="store_true",
                      help='the "was this you?" direct messages instead (with --teams-bot: '
                           "the question card of a personal chat)")
    what.add_argument("--escalation", action="store_true",
                      help='the escalation a "no" posts instead (with --teams-bot: its card)')
    what.add_argument("--digest", action="store_true",
                      help="the digest ([digest]) instead, had the examples happened in its "
                           "last period (with --teams or --teams-bot: its card)")
    render.add_argument("--list", action="store_true",
                        help="list the name of every message the bot can send")
    render.add_argument("--builder", action="store_true",
                        help="print a Block Kit Builder link (open it in a browser) instead "
                             "of the JSON (Slack messages only)")
    render.add_argument("kind", nargs="?", metavar="NAME|KIND",
                        help="a name from render --list (e.g. group, acknowledged), or one "
                             "kind, e.g. user/privileges_updated")
    again = commands.add_parser("redeliver", help="queue the alerts that failed again")
    again.add_argument("channel", nargs="?",
                       help="only those of one channel (a Slack ID, or teams:NAME)")
    app = commands.add_parser("teams-app", help="write the Teams app package (a zip)")
    app.add_argument("--out", type=Path, default=Path("voiso-teams-app.zip"),
                     help="where to write it (default: ./voiso-teams-app.zip)")
    app.add_argument("--website", required=True,
                     help="an https:// page about the bot in your organisation (Teams shows it "
                     "as the developer's website, privacy and terms links)")
    alive = commands.add_parser("health", help="ask the running bot whether it is alive")
    alive.add_argument("--ready", action="store_true",
                        help="whether it is ready (/readyz) instead of alive (/healthz)")
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


def configure_logging(level: str, log_format: str = "text") -> None:
    """Every record of every logger, ours and the libraries', goes through one handler
    whose formatter keeps each record on one line (voisobot/logs.py)."""
    handler = _CurrentStderr()
    handler.setFormatter(logs.FORMATTERS[log_format]())
    logging.basicConfig(level=level, force=True, handlers=[handler])
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """``environ`` (os.environ by default) holds the VOISO_ settings, which win over the
    config file."""
    args = parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    try:
        cfg = config.load(args.config or config.DEFAULT_PATH,
                          os.environ if environ is None else environ,
                          file_optional=args.config is None)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.log.level, cfg.log.format)
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
