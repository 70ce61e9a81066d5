-- recsched schema for PostgreSQL, version 4: a key for each team row.
--
-- A row an operator edited by hand so that it no longer reads back is
-- skipped and named by table, key and column. SQLite names rows of
-- tables without an integer key by their `rowid`; these PostgreSQL tables
-- had none, so each gets a `rowid` column of its own (filled for the rows
-- already there), and `WHERE rowid = N` finds the row on both backends.
-- Nothing else reads it.

ALTER TABLE policy_teams ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE team_members ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE team_refreshes ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE daemon_state ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY;
