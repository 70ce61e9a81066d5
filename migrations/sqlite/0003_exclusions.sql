-- recsched schema, version 3: exclusions (holidays, shutdowns, leave).
--
-- An exclusions row cuts coverage: no recording for its policy (NULL:
-- every policy) and its user (NULL: every user of the policy, or every
-- user at all) from starts_at to ends_at. Both are either local dates
-- (2026-12-24: whole days, both ends inclusive, in `timezone`, NULL: each
-- policy's own zone) or UTC instants in the canonical timestamp form
-- (2026-12-24T12:00:00.000Z: half-open, [starts_at, ends_at)).
--
-- Operators edit it with sqlite3 like the policy tables, so it carries
-- NO CHECK constraints: the daemon names and skips a bad row rather than
-- have the insert refused. A change moves the policy revision, so the
-- daemon picks it up within the same reload time as a policy edit.

CREATE TABLE exclusions (
    id         INTEGER PRIMARY KEY,
    policy_id  INTEGER REFERENCES policies (id) ON DELETE CASCADE,
    user_id    TEXT,
    starts_at  TEXT    NOT NULL,
    ends_at    TEXT    NOT NULL,
    timezone   TEXT,
    reason     TEXT,
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX exclusions_by_policy ON exclusions (policy_id);

CREATE TRIGGER exclusions_revision_insert AFTER INSERT ON exclusions
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER exclusions_revision_update AFTER UPDATE ON exclusions
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER exclusions_revision_delete AFTER DELETE ON exclusions
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

-- updated_at follows every UPDATE, as on policies (see 0001 for the WHEN).
CREATE TRIGGER exclusions_updated_at AFTER UPDATE ON exclusions
WHEN NEW.updated_at IS OLD.updated_at
 AND NEW.updated_at IS NOT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
BEGIN
    UPDATE exclusions SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id;
END;
