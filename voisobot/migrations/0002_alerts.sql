-- Version 2: the Slack outbox. Storing an event and sending its alert are separate steps:
-- the delivery job turns new events into alert rows (one per channel) and advances the
-- enqueue cursor in the same transaction, then posts due alerts in order.

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    channel         TEXT NOT NULL,
    severity        TEXT NOT NULL,
    -- pending: to post; uncertain: a post may have reached Slack (look before posting again);
    -- sent: posted (slack_ts set); failed: Slack refused for good (last_error says why)
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    first_tried_at  TEXT,
    last_error      TEXT,
    slack_ts        TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    UNIQUE (event_id, channel)
);
CREATE INDEX alerts_open ON alerts (id) WHERE state IN ('pending', 'uncertain');

CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Events stored before this version raise no alert: upgrading must not flood Slack.
INSERT INTO cursors (name, value) SELECT 'alerts_enqueued', coalesce(max(id), 0) FROM events;
