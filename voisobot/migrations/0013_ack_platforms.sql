-- Version 13: an acknowledgement made on either side. An alert may be pressed in Slack or on
-- a Teams bot card, and all the alerts of one first event (its siblings) share it, so each
-- row says which platform acked_by belongs to (a Slack user ID, or an Entra object id) and
-- the name to show for it on the other side. NULL for older rows: shown as before.
ALTER TABLE alerts ADD COLUMN acked_via TEXT;      -- 'slack' | 'teams'
ALTER TABLE alerts ADD COLUMN acked_by_name TEXT;  -- the display name the platform gave
-- An alert's siblings are found by UNIQUE (event_id, channel)'s index: no new one.

-- The platform each command or press came from; the rows before this version are Slack's.
ALTER TABLE audit ADD COLUMN platform TEXT NOT NULL DEFAULT 'slack';
