-- Version 17: /voiso ip and /voiso user within 10 ms at a million events (bench/README.md).
-- Kept by voisobot/summaries.py behind the 'summarised' cursor, off the intake's
-- transaction; a question adds the events stored after the cursor (the module docstring
-- says how). Keys are ip_keys' (a version byte and the address bytes), so an address range
-- is one key range. "user" columns hold lower(user): ASCII letters folded, as events.user's
-- NOCASE collation folds them, so each NOCASE-equal user is one value.

-- One row per event and single address among its ip, from_value and to_value: an address's
-- or a range's events, newest first, without reading the events table.
CREATE TABLE address_events (
    key        BLOB NOT NULL,
    event_time TEXT NOT NULL,
    id         INTEGER NOT NULL,
    PRIMARY KEY (key, event_time, id)
) WITHOUT ROWID;

-- One row per event and CIDR range among its ip, from_value and to_value (allow-list
-- changes): the events about any address they overlap. A few hundred rows.
CREATE TABLE network_events (
    low        BLOB NOT NULL,   -- the key of the range's first address
    high       BLOB NOT NULL,   -- and of its last
    event_time TEXT NOT NULL,
    id         INTEGER NOT NULL,
    PRIMARY KEY (low, high, id)
) WITHOUT ROWID;

-- Per address: its events and the newest one's time (which addresses of a range were
-- active lately, for paging a range without walking every address).
CREATE TABLE address_totals (
    key       BLOB PRIMARY KEY,
    n         INTEGER NOT NULL,
    last_seen TEXT NOT NULL
) WITHOUT ROWID;

-- Per address and user (events with a user): who used an address, and a user's addresses.
-- logins/last_login count the app_login events among them (the profile's "logged in from").
CREATE TABLE address_users (
    key        BLOB NOT NULL,
    user       TEXT NOT NULL,   -- lower(user)
    spelling   TEXT NOT NULL,   -- the user as the first event counted here wrote it
    n          INTEGER NOT NULL,
    last_seen  TEXT NOT NULL,
    logins     INTEGER NOT NULL,
    last_login TEXT,
    PRIMARY KEY (key, user)
) WITHOUT ROWID;
-- An address's busiest users first, read from the index alone: the top few of an address
-- with a thousand users, without sorting them all.
CREATE INDEX address_users_by_count ON address_users (key, n DESC, last_seen DESC, user, spelling);
-- A user's addresses, read from the index alone (a busy login has hundreds).
CREATE INDEX address_users_by_user ON address_users (user, key, logins, last_login);

-- An event with a user and two or more addresses (app_login/ip_changed) counts once per
-- address above; a range holding several of them must count it once. With its distinct
-- keys sorted, the keys inside any range are a run of them, so the pairs of neighbours
-- inside the range are one fewer than the keys: what to subtract.
CREATE TABLE address_pairs (
    low  BLOB NOT NULL,
    high BLOB NOT NULL,
    user TEXT NOT NULL,          -- lower(user)
    n    INTEGER NOT NULL,
    PRIMARY KEY (low, high, user)
) WITHOUT ROWID;

-- Per user (as user or as who) and kind: the profile's "events per kind" and "made".
CREATE TABLE user_kinds (
    user  TEXT NOT NULL,         -- lower(user) or lower(who)
    role  TEXT NOT NULL,         -- 'user' or 'who'
    type  TEXT NOT NULL,
    event TEXT NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (user, role, type, event)
) WITHOUT ROWID;

-- Nothing is summarised yet: Store() catches up right after migrating (ipaddress parses
-- the addresses, which SQL cannot), in batches, before the bot answers anything.
INSERT INTO cursors (name, value) VALUES ('summarised', 0);
