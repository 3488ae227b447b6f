"""The Teams bot (preview): ``@Voiso <command>`` in Teams, answered like /voiso, and the
conversation references Teams sends when the bot is added somewhere.

In data-flow order: server (the SDK app on its own thread and loop, started and stopped by
voisobot.runtime), listeners (what each activity does), answers (the command layer's answer
as an Adaptive Card), references (where the bot may write, in the store).
The Workflows webhooks (voisobot.teams, voisobot.teams_cards) are separate and unchanged.
"""
