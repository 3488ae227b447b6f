-- Version 15: the digest ([digest]). One row per period, keyed by the period's start (UTC):
-- the UNIQUE key is what makes a period's digest exist at most once, whichever run or
-- restart creates it. Its post follows the outbox's discipline (outbox.py): pending (to
-- post), uncertain (a post may have reached the channel: look before posting again), sent
-- (ts: the post's id) or failed (refused for good, last_error says why).
CREATE TABLE digests (
    id              INTEGER PRIMARY KEY,
    period_start    TEXT NOT NULL UNIQUE,   -- time_text, UTC
    period_end      TEXT NOT NULL,          -- the next period's start
    period          TEXT NOT NULL,          -- "daily" or "weekly"
    timezone        TEXT NOT NULL,          -- the zone its days are counted in
    channel         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    first_tried_at  TEXT,
    ts              TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX digests_open ON digests (id) WHERE state IN ('pending', 'uncertain');

-- The digest lists the "was this you?" questions of its period answered "no" or never.
CREATE INDEX questions_by_created ON questions (created_at);
