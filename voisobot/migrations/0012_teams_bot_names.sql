-- Version 12: a name for a conversation where the Teams bot is installed, given by
-- "@Voiso subscribe <name>" typed there; routes send alerts to "teamsbot:<name>". A name
-- belongs to one conversation at a time (subscribing it elsewhere moves it).
ALTER TABLE teams_conversations ADD COLUMN name TEXT;
CREATE UNIQUE INDEX teams_conversations_name ON teams_conversations (name)
    WHERE name IS NOT NULL;
