"""Whatever a card's invoke carries, the bot answers it, audits it once, and changes an
alert only for a real press of its own card by an allowed user.

An ``adaptiveCard/action`` invoke is built by whoever can reach the bot's endpoint (Teams,
or a tenant member crafting one): its verb, its data, the card it names and who sends it
are all untrusted. Real HTTP posts to the bot's /api/messages on 127.0.0.1; one bot and
one alert card across the examples, with a model of the card's acknowledgement."""


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.adaptive_card_schema import validate_card
from tests.voisobot.teams.test_bot import ALLOWED, STRANGER, answer_of, audit_rows, card_invoke
from tests.voisobot.teams.test_bot import connector as connector  # a fixture
from tests.voisobot.teams.test_bot_alerts import COLLEAGUE, ack_state, posted_alerts
from tests.voisobot.teams.test_bot_alerts import bot as bot  # a fixture

CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE = "application/vnd.microsoft.activity.message"
VERBS = ["voiso_ack", "voiso_reopen", "voiso_more", "voiso_profile", "voiso_confirm_yes",
         "VOISO_ACK", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_invoke_is_answered_audited_once_and_acts_only_when_real(bot, connector, data):
    if not bot.store.connection().execute("SELECT 1 FROM alerts").fetchone():
        posted_alerts(bot, connector, "app_login/unauthorized_ip")
    alert = dict(bot.store.connection().execute("SELECT * FROM alerts ORDER BY id").fetchone())
    if data.draw(st.booleans(), label="genuine"):  # a real press, perhaps with extra data
        user = data.draw(st.sampled_from([ALLOWED, COLLEAGUE]), label="user")
        verb = data.draw(st.sampled_from(["voiso_ack", "voiso_reopen"]), label="verb")
        extra = data.draw(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "alert"),
                                          json_values, max_size=2), label="extra")
        payload, reply_to = {**extra, "alert": alert["id"]}, alert["slack_ts"]
    else:
        user = data.draw(st.sampled_from([ALLOWED, COLLEAGUE, STRANGER]) | st.text(max_size=40),
                         label="user")
        verb = data.draw(st.sampled_from(VERBS) | st.text(max_size=30), label="verb")
        payload = data.draw(st.sampled_from([{"alert": alert["id"]}, {"alert": True},
                                             {"alert": str(alert["id"])}, {"alert": 2**70},
                                             {"more": "{}"}, {"question": 1}])
                            | st.dictionaries(st.text(max_size=8), json_values, max_size=3),
                            label="data")
        reply_to = data.draw(st.sampled_from([alert["slack_ts"], None]) | st.text(max_size=40),
                             label="replyToId")
    before_state, before_rows = ack_state(bot, alert["id"]), len(audit_rows(bot.store))

    answer = answer_of(bot, card_invoke(connector, verb, payload, reply_to=reply_to, user=user))

    assert answer["statusCode"] == 200  # and HTTP 200: answer_of checks it
    assert answer["type"] in (CARD, MESSAGE)
    if answer["type"] == CARD:
        validate_card(answer["value"])
    rows = audit_rows(bot.store)
    assert len(rows) == before_rows + 1 and rows[-1]["action"] == "button"
    real = (user in (ALLOWED, COLLEAGUE) and reply_to == alert["slack_ts"]
            and type(payload.get("alert")) is int and payload["alert"] == alert["id"])
    expected = before_state
    if real and verb == "voiso_ack" and before_state[0] is None:
        expected = (user, ack_state(bot, alert["id"])[1])
    elif real and verb == "voiso_reopen":
        expected = (None, None)
    assert ack_state(bot, alert["id"]) == expected
