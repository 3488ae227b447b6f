-- Version 1: every SQS message ends in exactly one of events, duplicates or rejected.
-- Times are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ': fixed width, so text order is time order.

CREATE TABLE events (
    id             INTEGER PRIMARY KEY,
    sqs_message_id TEXT NOT NULL UNIQUE,     -- idempotency: a redelivered message adds nothing
    body_sha256    BLOB NOT NULL UNIQUE,     -- a producer resend of the same body is a duplicate
    received_at    TEXT NOT NULL,            -- when the bot stored it
    sent_at        TEXT,                     -- SQS SentTimestamp: when Voiso sent it
    event_time     TEXT NOT NULL,            -- the body's timestamp
    type           TEXT NOT NULL,
    event          TEXT NOT NULL,
    callcenter     TEXT,
    user           TEXT COLLATE NOCASE,      -- untrusted: typed at the login form
    who            TEXT COLLATE NOCASE,      -- the actor of a user or allow-list change
    access_group   TEXT,
    ip             TEXT,                     -- normalised by ipaddress (a CIDR for allow-list kinds)
    from_value     TEXT,                     -- params.from: an IP, a CIDR or an access group
    to_value       TEXT,                     -- params.to: likewise
    count          INTEGER,                  -- incorrect_password attempts
    params         TEXT NOT NULL,            -- the params object as JSON
    raw            BLOB NOT NULL             -- the body exactly as received
);
CREATE INDEX events_by_time ON events (event_time);
CREATE INDEX events_by_kind ON events (type, event, event_time);
CREATE INDEX events_by_user ON events (user, event_time) WHERE user IS NOT NULL;
CREATE INDEX events_by_who ON events (who, event_time) WHERE who IS NOT NULL;
CREATE INDEX events_by_ip ON events (ip, event_time) WHERE ip IS NOT NULL;
CREATE INDEX events_by_from ON events (from_value, event_time) WHERE from_value IS NOT NULL;
CREATE INDEX events_by_to ON events (to_value, event_time) WHERE to_value IS NOT NULL;

-- Another SQS message carrying a body already stored as an event.
CREATE TABLE duplicates (
    sqs_message_id TEXT PRIMARY KEY,
    event_id       INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    received_at    TEXT NOT NULL
);
CREATE INDEX duplicates_by_event ON duplicates (event_id);

-- A message that is not a valid event: kept whole, with the reason, never dropped.
CREATE TABLE rejected (
    id             INTEGER PRIMARY KEY,
    sqs_message_id TEXT NOT NULL UNIQUE,
    received_at    TEXT NOT NULL,
    sent_at        TEXT,
    reason         TEXT NOT NULL,
    raw            BLOB NOT NULL
);
CREATE INDEX rejected_by_received ON rejected (received_at);
