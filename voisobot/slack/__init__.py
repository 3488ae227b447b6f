"""Slack: the renderer's output sent (sender), the requests Slack makes of the bot
(serve, front_door, requests, replays) and what its buttons do (buttons,
question_buttons), and who a Voiso email is in Slack (people). The listeners are
registered from handlers/slack."""
