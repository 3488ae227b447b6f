-- Version 14: "was this you?" in Teams. A question can reach a person only in a personal chat
-- with the bot (the app installed for them), so each personal conversation keeps who its
-- user is: their Entra object id and Teams account id (from the activity that captured it)
-- and their address, which only the Bot Connector's member lookup tells (email and UPN,
-- lower case). Until that lookup has answered, user_email and user_upn are NULL and the
-- lookup is tried again (member_next_at).
ALTER TABLE teams_conversations ADD COLUMN user_id TEXT;       -- Entra object id (personal)
ALTER TABLE teams_conversations ADD COLUMN user_account TEXT;  -- Teams account id, 29:…
ALTER TABLE teams_conversations ADD COLUMN user_name TEXT;
ALTER TABLE teams_conversations ADD COLUMN user_email TEXT;    -- lower case
ALTER TABLE teams_conversations ADD COLUMN user_upn TEXT;      -- lower case
ALTER TABLE teams_conversations ADD COLUMN member_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE teams_conversations ADD COLUMN member_next_at TEXT;  -- NULL: nothing to look up
CREATE INDEX teams_conversations_by_email ON teams_conversations (user_email)
    WHERE user_email IS NOT NULL;
CREATE INDEX teams_conversations_by_upn ON teams_conversations (user_upn)
    WHERE user_upn IS NOT NULL;
CREATE INDEX teams_conversations_to_look_up ON teams_conversations (member_next_at)
    WHERE member_next_at IS NOT NULL;

-- Where a question was asked: 'slack' (slack_user, dm_channel, dm_ts) or 'teams' (the
-- person's Entra object id, their personal conversation, and the card's activity id).
-- NULL until it is tried somewhere.
ALTER TABLE questions ADD COLUMN asked_via TEXT;
ALTER TABLE questions ADD COLUMN teams_user TEXT;
ALTER TABLE questions ADD COLUMN teams_conversation TEXT;
ALTER TABLE questions ADD COLUMN teams_activity TEXT;
