"""The access policy: listed users, channels and user-group members, nobody else; a user
group's membership is read from Slack (here the fake Slack Web API) and cached, and a group
that cannot be read denies, without asking Slack on every request."""

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.slack_api import FakeSlack
from voisobot.access import GROUP_CACHE_SECONDS, GROUP_FAILURE_CACHE_SECONDS, AccessPolicy
from voisobot.config import AccessConfig
from voisobot.slack import sender as slack

GROUP, MEMBER = "S0SECTEAM", "U0CAROL01"
USERGROUPS_LIST = "usergroups.users.list"


'''+open('/tmp/moved.py').read()+'''

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_slack():
    fake = FakeSlack(usergroups={GROUP: [MEMBER]}).start()
    yield fake
    fake.stop()


def slack_policy(fake: FakeSlack, clock: Clock) -> AccessPolicy:
    """The policy as bot.py builds it: members read with usergroups.users.list."""
    client = slack.make_client("xoxb-test", fake.base_url, timeout=1)
    return AccessPolicy(AccessConfig(usergroups=(GROUP,)),
                        lambda group: slack.usergroup_members(client, group), clock=clock)


def reads(fake: FakeSlack) -> int:
    return len(fake.calls_to(USERGROUPS_LIST))


# How Slack fails a read: an error answer, a 5xx, the whole API down.
FAILURES = {
    "an_error_answer": lambda fake: fake.fail(USERGROUPS_LIST, "invalid_auth", times=1000),
    "a_server_error": lambda fake: fake.fail(USERGROUPS_LIST, "server_error", times=1000),
    "slack_down": lambda fake: fake.set_down(True),
}


@pytest.mark.parametrize("fail", FAILURES.values(), ids=FAILURES.keys())
def test_a_failed_read_is_cached_briefly_instead_of_asked_per_request(fake_slack, fail):
    clock = Clock()
    policy = slack_policy(fake_slack, clock)
    fail(fake_slack)
    for _ in range(10):
        assert not policy.allows(MEMBER, None)
    clock.now += GROUP_FAILURE_CACHE_SECONDS - 0.1
    assert not policy.allows(MEMBER, None)
    assert reads(fake_slack) == 1
    clock.now += 0.1
    assert not policy.allows(MEMBER, None)
    assert reads(fake_slack) == 2


@pytest.mark.parametrize("fail", FAILURES.values(), ids=FAILURES.keys())
def test_once_membership_has_expired_a_failure_denies(fake_slack, fail):
    clock = Clock()
    policy = slack_policy(fake_slack, clock)
    assert policy.allows(MEMBER, None)
    fail(fake_slack)
    clock.now += GROUP_CACHE_SECONDS - 0.1
    assert policy.allows(MEMBER, None) and reads(fake_slack) == 1  # still fresh
    clock.now += 0.1
    assert not policy.allows(MEMBER, None) and reads(fake_slack) == 2


def test_a_group_readable_again_allows_after_the_failure_pause(fake_slack):
    clock = Clock()
    policy = slack_policy(fake_slack, clock)
    fake_slack.set_down(True)
    assert not policy.allows(MEMBER, None)
    fake_slack.set_down(False)
    clock.now += GROUP_FAILURE_CACHE_SECONDS / 2
    assert not policy.allows(MEMBER, None) and reads(fake_slack) == 1
    clock.now += GROUP_FAILURE_CACHE_SECONDS / 2
    assert policy.allows(MEMBER, None) and reads(fake_slack) == 2


def test_many_requests_at_once_during_a_failure_make_one_read(fake_slack):
    clock = Clock()
    policy = slack_policy(fake_slack, clock)
    fake_slack.set_down(True)
    start = threading.Barrier(8)

    def request() -> None:
        start.wait()
        policy.allows(MEMBER, None)
    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reads(fake_slack) == 1


# A schedule: steps of (seconds that pass, whether Slack answers the read now).
schedules = st.lists(st.tuples(st.floats(0, 400, allow_nan=False), st.booleans()),
                     min_size=1, max_size=30)


@settings(max_examples=200)
@given(schedule=schedules)
def test_membership_is_trusted_only_while_fresh_and_failures_pause_the_reads(schedule):
    """Over any schedule of time and outages: an allowed request rests on a read that
    succeeded less than GROUP_CACHE_SECONDS ago; after a failed read Slack is not asked
    again for GROUP_FAILURE_CACHE_SECONDS, after a good one not for GROUP_CACHE_SECONDS;
    and a request while Slack answers, with no failure in the pause, is allowed."""
    clock, up = Clock(), [True]
    calls: list[tuple[float, bool]] = []  # (when, succeeded)

    def members(group: str) -> set[str]:
        calls.append((clock.now, up[0]))
        if not up[0]:
            raise ConnectionError("Slack unreachable")
        return {MEMBER}

    policy = AccessPolicy(AccessConfig(usergroups=(GROUP,)), members, clock=clock)
    for seconds, answers in schedule:
        clock.now += seconds
        up[0] = answers
        earlier = list(calls)
        allowed = policy.allows(MEMBER, None)
        good = [at for at, ok in calls if ok]
        assert not allowed or (good and clock.now - good[-1] < GROUP_CACHE_SECONDS)
        if earlier and len(calls) > len(earlier):
            last_at, last_ok = earlier[-1]
            pause = GROUP_CACHE_SECONDS if last_ok else GROUP_FAILURE_CACHE_SECONDS
            assert clock.now - last_at >= pause
        if answers and not (earlier and not earlier[-1][1]
                            and clock.now - earlier[-1][0] < GROUP_FAILURE_CACHE_SECONDS):
            assert allowed
