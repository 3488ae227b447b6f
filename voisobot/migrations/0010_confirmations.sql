-- Version 10: "was this you?" Questions to the people an alert involves (the affected user,
-- the admin who made a change), asked by direct message, and the escalations they lead to.

-- A Voiso email's Slack user, as users.lookupByEmail last answered (user_id NULL: Slack
-- knows nobody with that address), kept until expires_at.
CREATE TABLE slack_people (
    email       TEXT PRIMARY KEY,   -- lower case, after [confirm.aliases]
    user_id     TEXT,
    looked_up_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- One question per person per alert (an alert is a group window: one question however many
-- events it stands for). Like an alert, a question is an outbox item: every state change is
-- committed before the next call to Slack.
CREATE TABLE questions (
    id              INTEGER PRIMARY KEY,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,      -- as Voiso named the person (lower case)
    roles           TEXT NOT NULL,      -- "user", "admin" or "user,admin"
    -- pending: to ask; uncertain: the DM may have reached Slack (look before asking again);
    -- asked: in the person's DMs, waiting; answered; expired: no answer in time;
    -- unmapped: no Slack user has that email; failed: Slack refused for good
    state           TEXT NOT NULL DEFAULT 'pending',
    slack_user      TEXT,
    dm_channel      TEXT,
    dm_ts           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    first_tried_at  TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    asked_at        TEXT,
    answer          TEXT,               -- "yes" or "no"
    answered_at     TEXT,
    -- NULL: none; pending: to post; uncertain: may be posted (look first); sent; failed
    escalation      TEXT,
    escalation_reason TEXT,             -- "no" or "timeout"
    escalation_ts   TEXT,
    escalation_attempts INTEGER NOT NULL DEFAULT 0,
    escalation_next_at  TEXT,
    escalation_first_tried_at TEXT,
    UNIQUE (alert_id, email)
);
CREATE INDEX questions_open ON questions (id) WHERE state IN ('pending', 'uncertain');
CREATE INDEX questions_asked ON questions (asked_at) WHERE state = 'asked';
CREATE INDEX questions_escalations ON questions (id) WHERE escalation IN ('pending', 'uncertain');
CREATE INDEX questions_by_email ON questions (email, id);
CREATE INDEX questions_by_alert ON questions (alert_id);
