-- Version 16: /voiso stats from maintained rollups, never from a scan of events (issue 14).
-- voisobot/rollups.py keeps all three tables, behind the 'daily_counted' cursor: the
-- counting job adds the events stored since it last ran, Store.prune subtracts the counted
-- events it deletes, so every count equals a count of the events cached.

-- Events per UTC hour ('YYYY-MM-DDTHH', the first 13 characters of event_time), with the
-- dimensions and values of daily_counts (migration 0005): 24h is these hours, plus the
-- parts of its two edge hours read from events_by_time.
CREATE TABLE hour_counts (
    dimension TEXT NOT NULL,
    hour      TEXT NOT NULL,
    value     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (dimension, hour, value)
) WITHOUT ROWID;

INSERT INTO hour_counts (dimension, hour, value, n)
    SELECT 'kind', substr(event_time, 1, 13), type || '/' || event, count(*)
    FROM events GROUP BY 2, 3;
INSERT INTO hour_counts (dimension, hour, value, n)
    SELECT 'user', substr(event_time, 1, 13), lower(user), count(*)
    FROM events WHERE user IS NOT NULL GROUP BY 2, 3;
INSERT INTO hour_counts (dimension, hour, value, n)
    SELECT 'ip', hour, value, count(*) FROM (
        SELECT substr(event_time, 1, 13) AS hour, ip AS value FROM events WHERE ip IS NOT NULL
        UNION ALL
        SELECT substr(event_time, 1, 13), from_value FROM events WHERE from_value IS NOT NULL
        UNION ALL
        SELECT substr(event_time, 1, 13), to_value FROM events WHERE to_value IS NOT NULL)
    GROUP BY hour, value;

-- daily_counts again, from the hours: until now a prune kept the counts of its cutoff's
-- day, so they could count events no longer cached.
DELETE FROM daily_counts;
INSERT INTO daily_counts (dimension, day, value, n)
    SELECT dimension, substr(hour, 1, 10), value, sum(n) FROM hour_counts GROUP BY 1, 2, 3;
UPDATE cursors SET value = (SELECT coalesce(max(id), 0) FROM events) WHERE name = 'daily_counted';

-- The busiest users and IPs of a window are its complete buckets' totals plus the rest
-- (the edges, the current hour or day, events not yet counted). window_totals holds those
-- totals for the windows of one moment, the anchor: the newest event not in the future.
--   span '24h': the 23 whole hours between the anchor's hour and the hour 24 hours before;
--   span '7d' / '30d': the 6 / 29 whole UTC days before the anchor's day.
-- rollup_windows says which buckets (first and last, both included) each span holds;
-- rollups.shift moves them when the anchor's hour or day turns. The index gives a span's
-- values most first, so a top 5 reads few of them (rollups.top).
CREATE TABLE rollup_windows (
    span  TEXT PRIMARY KEY,
    first TEXT NOT NULL,
    last  TEXT NOT NULL
);
CREATE TABLE window_totals (
    span      TEXT NOT NULL,
    dimension TEXT NOT NULL,  -- 'user' or 'ip'
    value     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (span, dimension, value)
) WITHOUT ROWID;
CREATE INDEX window_totals_by_n ON window_totals (span, dimension, n DESC);

-- The anchor as rollups.anchor finds it; the ranges as rollups.materialised computes them.
INSERT INTO rollup_windows (span, first, last)
    WITH anchor AS (
        SELECT coalesce(max(event_time), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) AS at
        FROM events WHERE event_time <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    SELECT '24h', strftime('%Y-%m-%dT%H', substr(at, 1, 13) || ':00:00', '-23 hours'),
                  strftime('%Y-%m-%dT%H', substr(at, 1, 13) || ':00:00', '-1 hours') FROM anchor
    UNION ALL
    SELECT '7d', date(substr(at, 1, 10), '-6 days'), date(substr(at, 1, 10), '-1 days')
    FROM anchor
    UNION ALL
    SELECT '30d', date(substr(at, 1, 10), '-29 days'), date(substr(at, 1, 10), '-1 days')
    FROM anchor;

INSERT INTO window_totals (span, dimension, value, n)
    SELECT '24h', dimension, value, sum(n) FROM hour_counts, rollup_windows AS w
    WHERE w.span = '24h' AND dimension IN ('user', 'ip') AND hour >= w.first AND hour <= w.last
    GROUP BY dimension, value;
INSERT INTO window_totals (span, dimension, value, n)
    SELECT w.span, dimension, value, sum(n) FROM daily_counts, rollup_windows AS w
    WHERE w.span IN ('7d', '30d') AND dimension IN ('user', 'ip')
      AND day >= w.first AND day <= w.last
    GROUP BY w.span, dimension, value;
