-- An id unique to this store, made with it: every alert posted to Slack carries it in its
-- message metadata beside the alert's id, so that a bot looking for its own earlier post
-- never takes another store's (another bot in the same channel, or this store recreated)
-- for it. Values the bot keeps about itself go in this table.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
