"""The Teams bot (preview): ``@Voiso <command>`` in Teams, answered like /voiso; the
conversation references Teams sends when the bot is added somewhere, named by
``@Voiso subscribe <name>``; alert cards posted there through the outbox; and their
Acknowledge/Reopen buttons.

In data-flow order: server (the SDK app on its own thread and loop, started and stopped by
voisobot.runtime), listeners (what each activity does), answers (the command layer's answer
as an Adaptive Card), subscribe (naming a conversation for routes), references (where the
bot may write, in the store), sender (alert cards posted proactively, for the delivery job's
"teamsbot:<name>" channels), buttons (the cards' invokes, through voisobot.acks).
The Workflows webhooks (voisobot.teams.webhook, voisobot.teams.cards) are separate and unchanged.
"""
