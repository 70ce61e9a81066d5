-- recsched schema for PostgreSQL, version 2: policies that name CXone
-- teams. The same tables and meanings as migrations/sqlite/0002_teams.sql.
--
-- policy_teams sits beside policy_users: a policy records its own users
-- and the members of its teams. team_members is the directory's answer,
-- kept by the daemon; it is replaced only by a complete, successful read
-- of a team, so a directory that is down never shrinks it. team_refreshes
-- says when each team was last read and what went wrong since.
--
-- A change of policy_teams, or of who is in team_members, moves the policy
-- revision and notifies recsched_policies (so the daemons reload); the
-- refresher's last_seen updates do not.

CREATE TABLE policy_teams (
    policy_id BIGINT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    team_id   TEXT   NOT NULL,
    PRIMARY KEY (policy_id, team_id)
);

CREATE TABLE team_members (
    team_id    TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (team_id, user_id)
);

CREATE TABLE team_refreshes (
    team_id      TEXT PRIMARY KEY,
    -- The last complete, successful read; NULL: never.
    refreshed_at TIMESTAMPTZ,
    -- The last read, successful or not.
    attempted_at TIMESTAMPTZ NOT NULL,
    -- Why the last read failed; NULL when it succeeded.
    last_error   TEXT
);

CREATE TRIGGER policy_teams_revision
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON policy_teams
FOR EACH STATEMENT EXECUTE FUNCTION recsched_policies_changed();

CREATE TRIGGER team_members_revision
AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF team_id, user_id ON team_members
FOR EACH STATEMENT EXECUTE FUNCTION recsched_policies_changed();
