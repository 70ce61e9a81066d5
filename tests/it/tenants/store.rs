//! The team tables' contract, run on both backends: a policy's teams and
//! their members come back with the policy, membership is replaced only
//! whole, a failed read keeps it, and only who joins or leaves moves the
//! policy revision (the daemon's cue to reload).

use crate::common::pg::pg;
use chrono::{DateTime, TimeZone, Utc};
use futures::future::LocalBoxFuture;
use recsched::policy::{self, Column};
use recsched::store::{NewPolicy, Settings, Store};

fn at(s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, 8, 0, s).unwrap()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs plain SQL as an operator would.
type Sql<'a> = &'a (dyn Fn(String) -> LocalBoxFuture<'static, ()> + Sync);

async fn contract(store: Store, sql: Sql<'_>) {
    store
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
    sql("INSERT INTO policy_teams (policy_id, team_id) SELECT id, 't1' FROM policies WHERE name = 'p'; \
         INSERT INTO policy_teams (policy_id, team_id) SELECT id, 't2' FROM policies WHERE name = 'p';"
        .into())
    .await;
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
    assert_eq!(store.policy_revision().await.unwrap(), r1);
    let kept = store.team_member_rows("t1").await.unwrap();
    assert_eq!(kept[0].first_seen, at(0));
    assert_eq!(kept[0].last_seen, at(5));

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
    assert_eq!(store.team_member_rows("t1").await.unwrap().len(), 3);
    let refreshes = store.team_refreshes().await.unwrap();
    assert_eq!(refreshes.len(), 1);
    let t1 = &refreshes[0];
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
    let t1 = store.team_refreshes().await.unwrap().remove(0);
    assert_eq!((t1.refreshed_at, t1.last_error), (Some(at(30)), None));

    let named: Vec<(String, String)> = store
        .team_policies()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.team_id, p.policy))
        .collect();
    assert_eq!(
        named,
        [
            ("t1".to_owned(), "p".to_owned()),
            ("t2".to_owned(), "p".to_owned())
        ]
    );

    // A policy of teams alone is valid; a bad team id costs only its policy.
    sql("INSERT INTO policies (name, cron, window_seconds) VALUES ('teams-only', '0 9 * * *', 60); \
         INSERT INTO policy_teams (policy_id, team_id) SELECT id, 't1' FROM policies WHERE name = 'teams-only'; \
         INSERT INTO policies (name, cron, window_seconds) VALUES ('bad-team', '0 9 * * *', 60); \
         INSERT INTO policy_teams (policy_id, team_id) SELECT id, '' FROM policies WHERE name = 'bad-team';"
        .into())
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
        .into_iter()
        .map(|p| p.policy)
        .collect();
    assert_eq!(left, ["bad-team", "teams-only"], "by team id: `` first");
    assert_eq!(store.team_member_rows("t1").await.unwrap().len(), 3);
}

#[tokio::test]
async fn the_team_tables_keep_their_contract_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("teams.db");
    let store = Store::open(&Settings {
        path: path.clone(),
        ..Settings::default()
    })
    .await
    .unwrap();
    let sql = move |statements: String| -> LocalBoxFuture<'static, ()> {
        let path = path.clone();
        Box::pin(async move {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect_with(
                &sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
            )
            .await
            .unwrap();
            sqlx::raw_sql(&statements).execute(&mut conn).await.unwrap();
        })
    };
    contract(store, &sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_tables_keep_their_contract_on_postgres() {
    let Some(db) = pg().await else { return };
    let store = db.store().await;
    let db = std::sync::Arc::new(db);
    let sql = move |statements: String| -> LocalBoxFuture<'static, ()> {
        let db = db.clone();
        Box::pin(async move { db.sql(&statements).await })
    };
    contract(store, &sql).await;
}
