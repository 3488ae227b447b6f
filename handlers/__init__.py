"""The listeners of each chat platform, registered in one place per platform: the only code
that knows command names, action ids and activity types. ``handlers.slack`` (Bolt: /voiso,
the buttons) and ``handlers.teams`` (the Teams bot: messages, invokes, installations) take a
request, hand it to the core (voisobot.commands, voisobot.acks through each platform's
buttons) and send its answer."""
