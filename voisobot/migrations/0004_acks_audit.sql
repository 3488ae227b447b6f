-- Version 4: acknowledgements of alerts, and the audit trail of every command and button.

ALTER TABLE alerts ADD COLUMN acked_by TEXT;   -- Slack user ID of who acknowledged it
ALTER TABLE alerts ADD COLUMN acked_at TEXT;
CREATE INDEX alerts_unacked ON alerts (id) WHERE state = 'sent' AND acked_by IS NULL;

-- Every /voiso command and button press, allowed or denied.
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    channel_id TEXT,
    action     TEXT NOT NULL,      -- "command" or "button"
    detail     TEXT NOT NULL,      -- the command text, or the button and its alert id
    allowed    INTEGER NOT NULL,   -- 1 allowed, 0 denied
    outcome    TEXT                -- what came of it, in words
);
CREATE INDEX audit_by_time ON audit (at);
