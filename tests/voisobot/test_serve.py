"""/healthz: healthy while SQS polls succeed, 503 once they stop, outbox depth beside."""

from datetime import UTC, datetime, timedelta

from tests.voisobot.test_delivery import make_config
from voisobot.intake import Intake
from voisobot.outbox import Outbox
from voisobot.serve import Health

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def make_health(store, clock) -> tuple[Health, Intake]:
    intake = Intake(None, make_config().sqs, store)
    return Health(intake, Outbox(store), max_silence_seconds=60, clock=clock), intake


def test_a_fresh_start_is_healthy_until_the_grace_runs_out(store):
    clock = Clock()
    health, _ = make_health(store, clock)
    assert health.report()[0] is True
    clock.now += timedelta(seconds=61)
    healthy, details = health.report()
    assert not healthy and details["status"] == "intake not polling"
    assert details["intake"]["last_successful_poll"] is None


def test_healthy_while_polls_succeed_then_not(store):
    clock = Clock()
    health, intake = make_health(store, clock)
    clock.now += timedelta(minutes=5)
    intake.health.last_successful_poll = clock.now - timedelta(seconds=10)
    healthy, details = health.report()
    assert healthy and details["intake"]["seconds_since_last_poll"] == 10.0
    assert details["outbox"] == {"pending": 0, "uncertain": 0, "sent": 0, "failed": 0,
                                 "depth": 0}
    clock.now += timedelta(seconds=55)
    assert health.report()[0] is False
