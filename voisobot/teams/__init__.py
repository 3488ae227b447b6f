"""Microsoft Teams, in the same shape as voisobot.slack: how alerts look there (cards: the
Adaptive Cards, for webhooks and for the bot), how they are sent (webhook: Workflows
webhooks; sender: the bot's proactive posts), and the bot's own side.

The bot: ``@Voiso <command>`` in Teams, answered like /voiso; the conversation
references Teams sends when the bot is added somewhere, named by ``@Voiso subscribe
<name>``; alert cards posted there through the outbox; and their Acknowledge/Reopen buttons.
In data-flow order: server (the SDK app on its own thread and loop, started and stopped by
voisobot.runtime), listeners (what each activity does), answers (the command layer's answer
as an Adaptive Card), subscribe (naming a conversation for routes), references (where the
bot may write, in the store), sender (alert cards posted proactively, for the delivery job's
"teamsbot:<name>" channels), buttons (the cards' invokes, through voisobot.acks), and app
(the Teams app package: manifest and icons).
"""
