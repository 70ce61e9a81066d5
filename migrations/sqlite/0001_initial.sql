-- recsched schema, version 1.
--
-- The operator-facing tables (policies, policy_users, recordings, attempts)
-- are a public interface: operators read and edit them with sqlite3.
-- Every timestamp is UTC text in one canonical, fixed-width form
-- (2026-03-29T01:00:00.000Z, what strftime('%Y-%m-%dT%H:%M:%fZ','now')
-- prints), so text order is time order.
--
-- Policy columns carry NO CHECK constraints on purpose: an operator may
-- insert a broken row with sqlite3, and the daemon must name and skip it
-- rather than have the insert refused with a bare "constraint failed".

CREATE TABLE policies (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    enabled        INTEGER NOT NULL DEFAULT 1,
    cron           TEXT    NOT NULL,
    timezone       TEXT    NOT NULL DEFAULT 'UTC',
    window_seconds INTEGER NOT NULL,
    end_mode       TEXT    NOT NULL DEFAULT 'expire',
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE policy_users (
    policy_id INTEGER NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    user_id   TEXT    NOT NULL,
    PRIMARY KEY (policy_id, user_id)
);

-- One row per segment (one vendor recording). policy_id has no foreign
-- key on purpose: history survives the deletion of its policy. end_mode is
-- copied from the policy so a stop can still be sent once it is gone.
-- UNIQUE (user_id, segment_start) is the exactly-once key: the row is
-- claimed before the start request is sent.
CREATE TABLE recordings (
    id                INTEGER PRIMARY KEY,
    user_id           TEXT    NOT NULL,
    policy_id         INTEGER,
    segment_start     TEXT    NOT NULL,
    segment_end       TEXT    NOT NULL,
    requested_seconds INTEGER NOT NULL,
    end_mode          TEXT    NOT NULL DEFAULT 'expire',
    state             TEXT    NOT NULL CHECK (state IN
        ('pending', 'recording', 'stopping', 'stopped', 'expired', 'failed', 'missed')),
    contact_id        INTEGER,
    interaction_id    TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    late_seconds      REAL,
    ended_at          TEXT,
    created_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (user_id, segment_start)
);

CREATE INDEX recordings_by_state ON recordings (state);
CREATE INDEX recordings_by_segment_end ON recordings (segment_end);
-- "Still occupying its user after T" looks up the effective end.
CREATE INDEX recordings_by_effective_end ON recordings (COALESCE(ended_at, segment_end));

-- One row per HTTP exchange with the vendor: the audit trail.
CREATE TABLE attempts (
    id                INTEGER PRIMARY KEY,
    recording_id      INTEGER NOT NULL REFERENCES recordings (id),
    at                TEXT    NOT NULL,
    operation         TEXT    NOT NULL CHECK (operation IN ('start', 'stop')),
    attempt           INTEGER NOT NULL,
    requested_seconds INTEGER,
    http_status       INTEGER,
    error             TEXT,
    latency_ms        INTEGER,
    response_body     TEXT
);

CREATE INDEX attempts_by_recording ON attempts (recording_id);

-- A single row whose revision moves on every change to the policy tables,
-- by any writer (sqlite3 included), so the daemon notices edits by polling
-- one integer. PRAGMA data_version would also move on the daemon's own
-- recording writes.
CREATE TABLE policy_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);

INSERT INTO policy_revision (id, revision) VALUES (1, 0);

CREATE TRIGGER policies_revision_insert AFTER INSERT ON policies
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER policies_revision_update AFTER UPDATE ON policies
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER policies_revision_delete AFTER DELETE ON policies
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER policy_users_revision_insert AFTER INSERT ON policy_users
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER policy_users_revision_update AFTER UPDATE ON policy_users
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER policy_users_revision_delete AFTER DELETE ON policy_users
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

-- updated_at follows every UPDATE, whoever makes it. The WHEN clause keeps
-- the trigger from firing on its own inner UPDATE even if an operator turns
-- recursive_triggers on: the inner UPDATE changes updated_at (so the first
-- test fails), and if it was already "now" there is nothing to do.
CREATE TRIGGER policies_updated_at AFTER UPDATE ON policies
WHEN NEW.updated_at IS OLD.updated_at
 AND NEW.updated_at IS NOT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
BEGIN
    UPDATE policies SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id;
END;

CREATE TRIGGER recordings_updated_at AFTER UPDATE ON recordings
WHEN NEW.updated_at IS OLD.updated_at
 AND NEW.updated_at IS NOT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
BEGIN
    UPDATE recordings SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id;
END;

-- Small daemon facts that must survive a restart, such as the instant the
-- planner has planned through.
CREATE TABLE daemon_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
