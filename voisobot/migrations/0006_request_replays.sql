-- Version 6: the signatures of the Slack requests acted on lately, so that a request
-- replayed byte for byte (same timestamp, same signature) acts only once, across a restart
-- too. Kept as long as a signature can still pass the timestamp check (replays.py says how
-- long), then pruned by seen_at.
CREATE TABLE slack_requests (
    signature TEXT PRIMARY KEY,   -- X-Slack-Signature: v0=<HMAC of the timestamp and body>
    seen_at   TEXT NOT NULL       -- when it first arrived, store.time_text
);
CREATE INDEX slack_requests_by_time ON slack_requests (seen_at);
