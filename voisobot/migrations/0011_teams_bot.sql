-- Version 11: the Teams bot's conversation references. Teams has no "post to channel X" by
-- name: a bot can write only where it was added, to the conversation id and service URL that
-- Teams sent when it was (conversationUpdate / installationUpdate). One row per conversation,
-- kept until the bot is removed from it; alerts to bot channels will read them.
CREATE TABLE teams_conversations (
    conversation_id TEXT PRIMARY KEY,   -- a channel's id (19:…@thread.tacv2) or a chat's
    kind            TEXT NOT NULL,      -- channel, personal or groupChat
    service_url     TEXT NOT NULL,      -- where the Bot Connector takes posts for it
    tenant_id       TEXT,
    team_id         TEXT,               -- for a channel: its team
    channel_id      TEXT,               -- for a channel: its own id
    bot_id          TEXT NOT NULL,      -- the bot's account id in that conversation (28:…)
    added_by        TEXT,               -- the Entra object id of who added it, when Teams says
    added_at        TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
