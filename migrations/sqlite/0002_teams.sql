-- recsched schema, version 2: policies that name CXone teams.
--
-- policy_teams sits beside policy_users: a policy records its own users
-- and the members of its teams. team_members is the directory's answer,
-- kept by the daemon (first_seen/last_seen are UTC text, as elsewhere);
-- it is replaced only by a complete, successful read of a team, so a
-- directory that is down never shrinks it. team_refreshes says when each
-- team was last read and what went wrong since.
--
-- A change of policy_teams, or of who is in team_members, moves the policy
-- revision (so the daemon reloads); the refresher's last_seen updates do
-- not.

CREATE TABLE policy_teams (
    policy_id INTEGER NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    team_id   TEXT    NOT NULL,
    PRIMARY KEY (policy_id, team_id)
);

CREATE TABLE team_members (
    team_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);

CREATE TABLE team_refreshes (
    team_id      TEXT PRIMARY KEY,
    -- The last complete, successful read; NULL: never.
    refreshed_at TEXT,
    -- The last read, successful or not.
    attempted_at TEXT NOT NULL,
    -- Why the last read failed; NULL when it succeeded.
    last_error   TEXT
);

CREATE TRIGGER policy_teams_revision_insert AFTER INSERT ON policy_teams
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER policy_teams_revision_update AFTER UPDATE ON policy_teams
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER policy_teams_revision_delete AFTER DELETE ON policy_teams
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER team_members_revision_insert AFTER INSERT ON team_members
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER team_members_revision_update AFTER UPDATE OF team_id, user_id ON team_members
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;

CREATE TRIGGER team_members_revision_delete AFTER DELETE ON team_members
BEGIN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1;
END;
