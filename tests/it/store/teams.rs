//! The team tables' contract, on both backends: a policy's teams and
//! their members come back with the policy, membership is replaced only
//! whole, a failed read keeps it, only who joins or leaves moves the
//! policy revision (the daemon's cue to reload), and a team row that does
//! not read back costs only itself.

use chrono::{DateTime, TimeZone, Utc};
use recsched::policy::{self, Column};
use recsched::store::NewPolicy;

use super::{on_both_backends, TestDb};

fn at(s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, 8, 0, s).unwrap()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Policy `p` with user `u0`, naming teams `t1` and `t2`.
async fn policy_of_two_teams(db: &TestDb) {
    db.store
        .insert_policy(&NewPolicy {
            name: "p".into(),
            enabled: true,
            cron: "0 9 * * *".into(),
            timezone: "UTC".into(),
            window_seconds: 3600,
            end_mode: "expire".into(),
            users: names(&["u0"]),
        })
        .await
        .unwrap();
    db.sql(
        "INSERT INTO policy_teams (policy_id, team_id) SELECT id, 't1' FROM policies WHERE name = 'p'; \
         INSERT INTO policy_teams (policy_id, team_id) SELECT id, 't2' FROM policies WHERE name = 'p';",
    )
    .await;
}

async fn the_team_tables_keep_their_contract(db: TestDb) {
    let store = &db.store;
    policy_of_two_teams(&db).await;
    let row = store.policy_row("p").await.unwrap().unwrap();
    let teams: Vec<&str> = row.teams.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(teams, ["t1", "t2"]);
    assert!(row.teams.iter().all(|t| t.members.is_empty()));

    let r0 = store.policy_revision().await.unwrap();
    let change = store
        .replace_team_members("t1", &names(&["b", "a", "c"]), at(0))
        .await
        .unwrap();
    assert_eq!(
        (change.joined, change.left, change.members),
        (names(&["a", "b", "c"]), vec![], 3)
    );
    let r1 = store.policy_revision().await.unwrap();
    assert_ne!(r0, r1, "joiners move the revision");
    let rows = store.policy_rows().await.unwrap();
    assert_eq!(rows[0].teams[0].members, names(&["a", "b", "c"]));
    let (parsed, errors) = policy::load(rows);
    assert!(errors.is_empty(), "{errors:?}");
    let users: Vec<&str> = parsed[0].users.iter().map(|u| u.as_str()).collect();
    assert_eq!(users, ["a", "b", "c", "u0"]);

    // The same members again: last_seen moves, the revision does not.
    let same = store
        .replace_team_members("t1", &names(&["a", "b", "c"]), at(5))
        .await
        .unwrap();
    assert!(same.joined.is_empty() && same.left.is_empty());
    assert_eq!(same.members, 3);
    assert_eq!(store.policy_revision().await.unwrap(), r1);
    let kept = store.team_member_rows("t1").await.unwrap();
    assert!(kept.bad.is_empty(), "{:?}", kept.bad);
    assert_eq!(kept.rows[0].first_seen, at(0));
    assert_eq!(kept.rows[0].last_seen, at(5));

    // A leaver and a joiner.
    let moved = store
        .replace_team_members("t1", &names(&["b", "c", "d"]), at(10))
        .await
        .unwrap();
    assert_eq!((moved.joined, moved.left), (names(&["d"]), names(&["a"])));
    let r2 = store.policy_revision().await.unwrap();
    assert_ne!(r2, r1);

    // A failed read changes no member and no revision.
    store
        .team_refresh_failed("t1", at(20), "could not reach CXone")
        .await
        .unwrap();
    assert_eq!(store.policy_revision().await.unwrap(), r2);
    assert_eq!(store.team_member_rows("t1").await.unwrap().rows.len(), 3);
    let refreshes = store.team_refreshes().await.unwrap();
    assert!(refreshes.bad.is_empty(), "{:?}", refreshes.bad);
    assert_eq!(refreshes.rows.len(), 1);
    let t1 = &refreshes.rows[0];
    assert_eq!(t1.team_id, "t1");
    assert_eq!(t1.refreshed_at, Some(at(10)));
    assert_eq!(t1.attempted_at, at(20));
    assert_eq!(t1.last_error.as_deref(), Some("could not reach CXone"));
    assert_eq!(t1.members, 3);
    // The next good read clears the error.
    store
        .replace_team_members("t1", &names(&["b", "c", "d"]), at(30))
        .await
        .unwrap();
    let t1 = store.team_refreshes().await.unwrap().rows.remove(0);
    assert_eq!((t1.refreshed_at, t1.last_error), (Some(at(30)), None));

    let named: Vec<(String, String, bool)> = store
        .team_policies()
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|p| (p.team_id, p.policy, p.enabled))
        .collect();
    assert_eq!(
        named,
        [
            ("t1".to_owned(), "p".to_owned(), true),
            ("t2".to_owned(), "p".to_owned(), true)
        ]
    );

    // A policy of teams alone is valid; a bad team id costs only its policy.
    db.sql(
        "INSERT INTO policies (name, cron, window_seconds) VALUES ('teams-only', '0 9 * * *', 60); \
         INSERT INTO policy_teams (policy_id, team_id) SELECT id, 't1' FROM policies WHERE name = 'teams-only'; \
         INSERT INTO policies (name, cron, window_seconds) VALUES ('bad-team', '0 9 * * *', 60); \
         INSERT INTO policy_teams (policy_id, team_id) SELECT id, '' FROM policies WHERE name = 'bad-team';",
    )
    .await;
    let (parsed, errors) = policy::load(store.policy_rows().await.unwrap());
    let ok: Vec<&str> = parsed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(ok, ["p", "teams-only"]);
    assert_eq!(parsed[1].users.len(), 3);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].column(), Column::Teams);

    // Removing a policy removes its teams, not the members read.
    store.remove_policy("p").await.unwrap();
    let left: Vec<String> = store
        .team_policies()
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|p| p.policy)
        .collect();
    assert_eq!(left, ["bad-team", "teams-only"], "by team id: `` first");
    assert_eq!(store.team_member_rows("t1").await.unwrap().rows.len(), 3);
}

/// A big team is written in several statements, and a refresh that
/// empties it deletes every member.
async fn a_large_team_is_replaced_whole(db: TestDb) {
    let store = &db.store;
    policy_of_two_teams(&db).await;
    let many: Vec<String> = (0..1234).map(|i| format!("user-{i:05}")).collect();
    let change = store
        .replace_team_members("t2", &many, at(0))
        .await
        .unwrap();
    assert_eq!((change.joined.len(), change.members), (1234, 1234));
    let row = store.policy_row("p").await.unwrap().unwrap();
    assert_eq!(row.teams[1].members, many);
    let gone = store.replace_team_members("t2", &[], at(1)).await.unwrap();
    assert_eq!((gone.left.len(), gone.members), (1234, 0));
    assert_eq!(db.number("SELECT COUNT(*) FROM team_members").await, 0);
}

/// A `team_members` row whose user id is not one (typed by hand) is
/// skipped and named by its rowid; the policy keeps its other members and
/// the team's next refresh leaves the row alone.
async fn a_bad_member_row_costs_only_itself(db: TestDb) {
    let store = &db.store;
    policy_of_two_teams(&db).await;
    store
        .replace_team_members("t1", &names(&["a", "b"]), at(0))
        .await
        .unwrap();
    db.sql(
        "INSERT INTO team_members (team_id, user_id, first_seen, last_seen) \
         SELECT team_id, '', first_seen, last_seen FROM team_members WHERE user_id = 'a'",
    )
    .await;
    let rowid = db
        .number("SELECT rowid FROM team_members WHERE user_id = ''")
        .await;

    let read = store.read_policies().await.unwrap();
    assert_eq!(read.rows.len(), 1, "the policy goes on");
    assert_eq!(read.rows[0].teams[0].members, names(&["a", "b"]));
    assert_eq!(read.bad.len(), 1, "{:?}", read.bad);
    let bad = &read.bad[0];
    assert_eq!(
        (bad.table, bad.key, bad.id, bad.column),
        ("team_members", "rowid", rowid, "user_id")
    );
    assert!(
        bad.to_string().starts_with(&format!(
            "table team_members, rowid {rowid}, column user_id: ``: user id is empty; that \
             member is not recorded through the team"
        )),
        "{bad}"
    );
    // The named read says the same.
    let (parsed, errors) = policy::load(vec![store.policy_row("p").await.unwrap().unwrap()]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(parsed[0].users.len(), 3);

    let change = store
        .replace_team_members("t1", &names(&["a", "b"]), at(5))
        .await
        .unwrap();
    assert!(change.joined.is_empty() && change.left.is_empty());
    assert_eq!(
        db.number("SELECT COUNT(*) FROM team_members WHERE user_id = ''")
            .await,
        1,
        "left for the operator"
    );
}

on_both_backends!(
    the_team_tables_keep_their_contract,
    a_large_team_is_replaced_whole,
    a_bad_member_row_costs_only_itself,
);

/// What only sqlite3 lets in: a `policy_teams` row naming no policy
/// (foreign keys off) or holding a team id that is not text, and a
/// member that is not UTF-8. Each is named by rowid and skipped; the
/// policy goes on with what reads.
#[tokio::test]
async fn loose_team_rows_are_named_and_skipped_on_sqlite() {
    let db = TestDb::sqlite().await;
    policy_of_two_teams(&db).await;
    db.store
        .replace_team_members("t1", &names(&["a"]), at(0))
        .await
        .unwrap();
    db.sql(
        "PRAGMA foreign_keys = OFF; \
         INSERT INTO policy_teams (rowid, policy_id, team_id) VALUES (70, 99, 't1'); \
         INSERT INTO policy_teams (rowid, policy_id, team_id) \
             SELECT 71, id, X'7433' FROM policies WHERE name = 'p'; \
         INSERT INTO team_members (rowid, team_id, user_id, first_seen, last_seen) \
             VALUES (72, 't1', CAST(X'FF' AS TEXT), 'x', 'x');",
    )
    .await;
    let read = db.store.read_policies().await.unwrap();
    assert_eq!(read.rows.len(), 1);
    let teams: Vec<&str> = read.rows[0].teams.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(teams, ["t1", "t2"]);
    assert_eq!(read.rows[0].teams[0].members, names(&["a"]));
    let mut named: Vec<String> = read.bad.iter().map(ToString::to_string).collect();
    named.sort();
    assert_eq!(named.len(), 3, "{named:#?}");
    assert!(
        named[0].starts_with("table policy_teams, rowid 70, column policy_id: 99 names no policy")
            && named[0].contains("; the policy goes on without that team"),
        "{named:#?}"
    );
    assert!(
        named[1].starts_with(
            "table policy_teams, rowid 71, column team_id: stored as blob X'7433', not text"
        ),
        "{named:#?}"
    );
    assert!(
        named[2].starts_with("table team_members, rowid 72, column user_id: not valid UTF-8"),
        "{named:#?}"
    );
    // `recsched teams` lists what reads and names the rest.
    let members = db.store.team_member_rows("t1").await.unwrap();
    assert_eq!(members.rows.len(), 1);
    assert_eq!(members.bad.len(), 1);
    assert_eq!(members.bad[0].id, 72);
}
