-- Names that look like other names: every user or admin name in the cache whose skeleton
-- (lookalike.skeleton: letters of other scripts that look Latin made Latin, case folded)
-- is not simply its lower case, such as 'admin@acme.io' written with a Cyrillic a (U+0430). Plain names are
-- not listed: the events' own user and who indexes find them. Kept by
-- lookalike.index_new_accounts behind the 'accounts_indexed' cursor, off the intake's
-- transaction; it starts from the first event, so a store upgraded to this version is
-- indexed by the first run of the counting job.
CREATE TABLE accounts (
    name     TEXT PRIMARY KEY,
    skeleton TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX accounts_by_skeleton ON accounts (skeleton);
INSERT INTO cursors (name, value) VALUES ('accounts_indexed', 0);
