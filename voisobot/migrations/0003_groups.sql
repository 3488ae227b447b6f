-- Version 3: storm grouping. An alert is one Slack message that may stand for many events:
-- each (event, channel) belongs to exactly one alert, so every event is counted once.

ALTER TABLE alerts ADD COLUMN group_key TEXT;
ALTER TABLE alerts ADD COLUMN window_ends_at TEXT;          -- events before this may join
ALTER TABLE alerts ADD COLUMN event_count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN shown_count INTEGER NOT NULL DEFAULT 0;  -- as last posted/updated
ALTER TABLE alerts ADD COLUMN updated_at TEXT;              -- last chat.update
CREATE INDEX alerts_by_group ON alerts (channel, group_key, window_ends_at);
CREATE INDEX alerts_stale ON alerts (channel, updated_at)
    WHERE state = 'sent' AND event_count > shown_count;

CREATE TABLE alert_events (
    event_id    INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    alert_id    INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    -- a thread reply under the alert for this event: NULL none (the alert's own event, or
    -- past the cap), pending, sent (marked before the call: at most once), failed
    reply_state TEXT,
    reply_ts    TEXT,
    PRIMARY KEY (event_id, channel)
);
CREATE INDEX alert_events_by_alert ON alert_events (alert_id);
CREATE INDEX alert_events_replies ON alert_events (channel, alert_id) WHERE reply_state = 'pending';

-- Alerts queued before grouping stand for their own event.
INSERT INTO alert_events (event_id, channel, alert_id)
    SELECT event_id, channel, id FROM alerts;
UPDATE alerts SET shown_count = 1 WHERE state = 'sent';
