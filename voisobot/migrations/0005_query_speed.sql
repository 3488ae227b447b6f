-- Version 5: the /voiso queries within 50 ms at a million events (bench/README.md).

-- A user's events per kind, counted from the index alone, and the changes made to them
-- found with one seek: events_by_user (user, event_time) holds neither type nor event, so
-- both read every row of a busy login from the table.
CREATE INDEX events_by_user_kind ON events (user, type, event, event_time)
    WHERE user IS NOT NULL;

-- Events per UTC day, for the 7d and 30d stats: counting a month from the events indexes
-- reads a third of a million entries per kind and again per user. Kept by
-- store.count_new_events behind the 'daily_counted' cursor (the stats job, and the 7d/30d
-- stats before they read), off the intake's transaction; Store.prune drops days.
--   dimension 'kind': value type || '/' || event.
--   dimension 'user': value lower(user). SQLite's lower() folds ASCII letters only, exactly
--     what events.user's NOCASE collation ignores, so each NOCASE-equal user is one value.
--   dimension 'ip': every ip, from_value and to_value, counted once per column holding it
--     (as the 24h stats count them). CIDRs and access groups are stored too: only
--     ipaddress tells an access group from an address, so the query filters them.
-- Key order: a window of days of one dimension is one contiguous range of the key, so
-- what a 30-day sum reads grows with the window, not with the retention; the sum per value
-- then needs a temporary b-tree (at 90 days' retention, measured as fast as the
-- (dimension, value, day) order that groups in key order but reads every day kept).
CREATE TABLE daily_counts (
    dimension TEXT NOT NULL,
    day       TEXT NOT NULL,      -- 'YYYY-MM-DD', the UTC date of event_time
    value     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (dimension, day, value)
) WITHOUT ROWID;

INSERT INTO daily_counts (dimension, day, value, n)
    SELECT 'kind', substr(event_time, 1, 10), type || '/' || event, count(*)
    FROM events GROUP BY 2, 3;
INSERT INTO daily_counts (dimension, day, value, n)
    SELECT 'user', substr(event_time, 1, 10), lower(user), count(*)
    FROM events WHERE user IS NOT NULL GROUP BY 2, 3;
INSERT INTO daily_counts (dimension, day, value, n)
    SELECT 'ip', day, value, count(*) FROM (
        SELECT substr(event_time, 1, 10) AS day, ip AS value FROM events WHERE ip IS NOT NULL
        UNION ALL
        SELECT substr(event_time, 1, 10), from_value FROM events WHERE from_value IS NOT NULL
        UNION ALL
        SELECT substr(event_time, 1, 10), to_value FROM events WHERE to_value IS NOT NULL)
    GROUP BY day, value;

-- Every event stored so far is counted above; count_new_events goes on from here.
INSERT INTO cursors (name, value) SELECT 'daily_counted', coalesce(max(id), 0) FROM events;
