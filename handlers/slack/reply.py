"""How an answer goes back to Slack: the whole payload to the request's response_url.

Bolt's ``respond()`` takes no ``mrkdwn`` argument, and every answer carries
``"mrkdwn": false`` (its text is a notification whose data Slack must not parse), so the
payload is posted as it is, through the same webhook client ``respond()`` uses.
"""

from slack_sdk.webhook import WebhookClient

from voisobot.commands import Answer


def reply(respond, answer: Answer) -> None:
    client = WebhookClient(url=respond.response_url, proxy=respond.proxy, ssl=respond.ssl)
    client.send_dict(answer.reply())
