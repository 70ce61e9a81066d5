//! Why a burst takes as long as it does, piece by piece, without HTTP:
//! the pure planning pass for N users, the write-ahead claim of N rows,
//! and the N contact-id writes done the daemon's way (one `finish_attempt`
//! transaction per start, all at once on the store's pool), one at a time,
//! and as a batched writer would (one transaction for all).
//!
//! The hand-batched variants use a connection of their own with the
//! store's pragmas (WAL, `synchronous=FULL`): they show what SQL written
//! by hand costs. `Store::write_batch` is what the daemon's writer calls:
//! timed here on SQLite, and on PostgreSQL by [`store_pieces`] (the
//! `--postgres` run).

use crate::rig::{self, now};
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use recsched::clock::format_utc;
use recsched::daemon;
use recsched::planner::SegmentLimit;
use recsched::policy::{self, EndMode, PolicyRow};
use recsched::recording::{ContactId, RecordingState, UserId};
use recsched::store::{
    AttemptOutcome, NewAttempt, NewRecording, Operation, OwnedOutcome, RecordingId, RowWrite, Store,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::time::{Duration, Instant};

/// What the pieces cost, milliseconds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pieces {
    pub users: usize,
    /// `daemon::first_pass` (coverage, segments, decision) for one policy
    /// of N users.
    pub plan_ms: f64,
    /// `Store::claim_many` of N rows (one transaction, multi-row INSERTs).
    pub claim_many_ms: f64,
    /// The same from `block_on`'s own thread instead of a runtime worker.
    pub claim_many_main_ms: f64,
    /// The same N rows in multi-row `INSERT`s of 500, one transaction.
    pub claim_multirow_ms: f64,
    /// N `finish_attempt(Started)` spawned at once, as the daemon's jobs do.
    pub finish_concurrent_ms: f64,
    /// Voluntary context switches of the process during those N writes.
    pub finish_concurrent_switches: u64,
    /// N `finish_attempt(Started)` one after another.
    pub finish_sequential_ms: f64,
    /// N audit inserts + row updates in one transaction (a batched writer).
    pub finish_batched_ms: f64,
    /// Batches of 256 (what a writer draining a queue would commit while
    /// answers keep arriving).
    pub finish_batched_256_ms: f64,
    /// `Store::write_batch` of N started writes (audit row + contact id
    /// each) in batches of the writer's 2,048, then of 256.
    pub write_batch: WriteBatch,
}

/// `Store::write_batch` of N started writes, each an audit row and the
/// contact id, as the daemon's writer commits them, milliseconds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WriteBatch {
    pub users: usize,
    /// `Store::claim_many` of the N rows, for scale.
    pub claim_many_ms: f64,
    /// Batches of 2,048 (the writer's largest).
    pub batch_2048_ms: f64,
    /// Batches of 256.
    pub batch_256_ms: f64,
}

pub async fn pieces(n: usize, dir: &Path) -> anyhow::Result<Pieces> {
    let (store, path) = rig::store(dir).await?;
    let users: Vec<String> = (0..n).map(|i| format!("diag-{i:05}")).collect();

    // The pure pass, for a window opening now.
    let fire = now().duration_trunc(ChronoDuration::seconds(1))?;
    let row = PolicyRow {
        id: 1,
        name: "diag".into(),
        enabled: true,
        cron: rig::cron_at(fire),
        timezone: "UTC".into(),
        window_seconds: 120,
        end_mode: "expire".into(),
        users: users.clone(),
        teams: Vec::new(),
    };
    let (policies, errors) = policy::load(vec![row]);
    anyhow::ensure!(errors.is_empty(), "{errors:?}");
    let t = Instant::now();
    let limit = SegmentLimit::default();
    let plan = daemon::first_pass(&policies, fire, limit);
    let plan_ms = ms(t);
    anyhow::ensure!(
        plan.starts.len() == n,
        "{} starts planned",
        plan.starts.len()
    );

    // Claims: the store's way, then multi-row statements.
    let rows = |start: DateTime<Utc>| -> anyhow::Result<Vec<NewRecording>> {
        users
            .iter()
            .map(|u| {
                Ok(NewRecording {
                    user_id: UserId::parse(u.clone())?,
                    policy_id: 1,
                    segment_start: start,
                    segment_end: start + ChronoDuration::seconds(120),
                    requested_seconds: 120,
                    end_mode: EndMode::Expire,
                    state: RecordingState::Pending,
                    late_seconds: Some(0.0),
                    last_error: None,
                })
            })
            .collect()
    };
    // On a runtime worker, as the daemon's loop runs it (block_on's own
    // thread is woken more cheaply than a parked worker).
    let (claim_many_ms, ids) = {
        let store = store.clone();
        let new = rows(fire)?;
        tokio::spawn(async move {
            let t = Instant::now();
            let ids = store.claim_many(&new).await;
            (ms(t), ids)
        })
        .await?
    };
    let ids: Vec<RecordingId> = ids?.into_iter().flatten().collect();
    let t = Instant::now();
    store
        .claim_many(&rows(fire + ChronoDuration::minutes(30))?)
        .await?;
    let claim_many_main_ms = ms(t);
    anyhow::ensure!(ids.len() == n, "{} of {n} claimed", ids.len());

    let mut conn = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(15)),
    )
    .await?;
    let t = Instant::now();
    multirow_claim(&mut conn, &users, fire + ChronoDuration::hours(1)).await?;
    let claim_multirow_ms = ms(t);

    // Contact ids: the daemon's way (all at once), one at a time, batched.
    let switches_before = voluntary_switches();
    let t = Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let store = store.clone();
            let id = *id;
            tokio::spawn(async move { finish(&store, id).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let finish_concurrent_ms = ms(t);
    let finish_concurrent_switches = voluntary_switches() - switches_before;

    let second: Vec<RecordingId> = store
        .claim_many(&rows(fire + ChronoDuration::hours(2))?)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let t = Instant::now();
    for id in &second {
        finish(&store, *id).await?;
    }
    let finish_sequential_ms = ms(t);

    let third: Vec<RecordingId> = store
        .claim_many(&rows(fire + ChronoDuration::hours(3))?)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let t = Instant::now();
    batched_finish(&mut conn, &third, n).await?;
    let finish_batched_ms = ms(t);

    let fourth: Vec<RecordingId> = store
        .claim_many(&rows(fire + ChronoDuration::hours(4))?)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let t = Instant::now();
    batched_finish(&mut conn, &fourth, 256).await?;
    let finish_batched_256_ms = ms(t);

    let write_batch = store_writes(&store, &users, fire + ChronoDuration::hours(5)).await?;

    conn.close().await?;
    store.close().await;
    Ok(Pieces {
        users: n,
        plan_ms,
        claim_many_ms,
        claim_many_main_ms,
        claim_multirow_ms,
        finish_concurrent_ms,
        finish_concurrent_switches,
        finish_sequential_ms,
        finish_batched_ms,
        finish_batched_256_ms,
        write_batch,
    })
}

/// [`WriteBatch`] on the PostgreSQL database at `url`, through a handle
/// of an instance (claims carry its lease; every write is fenced), as a
/// daemon writes.
pub async fn store_pieces(n: usize, url: &str) -> anyhow::Result<WriteBatch> {
    let settings = recsched::store::Settings {
        url: Some(recsched::secret::Secret::new(url.to_owned())),
        ..recsched::store::Settings::default()
    };
    let store = Store::open(&settings).await?.for_instance("bench-pieces");
    let users: Vec<String> = (0..n).map(|i| format!("pieces-{i:05}")).collect();
    let fire = now().duration_trunc(ChronoDuration::seconds(1))?;
    let r = store_writes(&store, &users, fire).await;
    store.close().await;
    r
}

/// Claims a row per user at `start` and at `start` + 30 min, then times
/// `Store::write_batch` of a start's answer for each, in batches of 2,048
/// and of 256.
async fn store_writes(
    store: &Store,
    users: &[String],
    start: DateTime<Utc>,
) -> anyhow::Result<WriteBatch> {
    let rows = |start: DateTime<Utc>| -> anyhow::Result<Vec<NewRecording>> {
        users
            .iter()
            .map(|u| {
                Ok(NewRecording {
                    user_id: UserId::parse(u.clone())?,
                    policy_id: 1,
                    segment_start: start,
                    segment_end: start + ChronoDuration::seconds(120),
                    requested_seconds: 120,
                    end_mode: EndMode::Expire,
                    state: RecordingState::Pending,
                    late_seconds: Some(0.0),
                    last_error: None,
                })
            })
            .collect()
    };
    let t = Instant::now();
    let first: Vec<RecordingId> = store
        .claim_many(&rows(start)?)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let claim_many_ms = ms(t);
    let second: Vec<RecordingId> = store
        .claim_many(&rows(start + ChronoDuration::minutes(30))?)
        .await?
        .into_iter()
        .flatten()
        .collect();
    anyhow::ensure!(
        first.len() == users.len() && second.len() == users.len(),
        "{} and {} of {} claimed",
        first.len(),
        second.len(),
        users.len()
    );
    let batch_2048_ms = timed_batches(store, &first, 2048).await?;
    let batch_256_ms = timed_batches(store, &second, 256).await?;
    Ok(WriteBatch {
        users: users.len(),
        claim_many_ms,
        batch_2048_ms,
        batch_256_ms,
    })
}

/// `Store::write_batch` of a start's answer for each id, `batch` at a
/// time; every write must land.
async fn timed_batches(store: &Store, ids: &[RecordingId], batch: usize) -> anyhow::Result<f64> {
    let writes: Vec<RowWrite> = ids
        .iter()
        .map(|id| {
            Ok(RowWrite {
                recording_id: *id,
                attempt: Some(NewAttempt {
                    recording_id: *id,
                    at: now(),
                    operation: Operation::Start,
                    attempt: 1,
                    requested_seconds: Some(120),
                    http_status: Some(200),
                    error: None,
                    latency_ms: Some(20),
                    response_body: Some(body(*id)),
                }),
                outcome: OwnedOutcome::Started {
                    contact_id: ContactId::new(1_000_000 + id.get())?,
                    interaction_id: None,
                },
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let t = Instant::now();
    for chunk in writes.chunks(batch) {
        let results = store.write_batch(chunk).await?;
        anyhow::ensure!(
            results.iter().all(|r| matches!(r, Ok(true))),
            "a write did not land: {:?}",
            results.iter().find(|r| !matches!(r, Ok(true)))
        );
    }
    Ok(ms(t))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// What the daemon writes when a start is answered.
async fn finish(store: &Store, id: RecordingId) -> anyhow::Result<()> {
    let attempt = NewAttempt {
        recording_id: id,
        at: now(),
        operation: Operation::Start,
        attempt: 1,
        requested_seconds: Some(120),
        http_status: Some(200),
        error: None,
        latency_ms: Some(20),
        response_body: Some(body(id)),
    };
    let contact = ContactId::new(1_000_000 + id.get())?;
    store
        .finish_attempt(
            &attempt,
            AttemptOutcome::Started {
                contact_id: contact,
                interaction_id: None,
            },
        )
        .await?;
    Ok(())
}

fn body(id: RecordingId) -> String {
    format!(
        "{{\"description\":\"Screen recording started\",\"contactId\":{},\"httpStatus\":\"OK\"}}",
        1_000_000 + id.get()
    )
}

/// Inserts one row per user in statements of 500 rows, one transaction.
async fn multirow_claim(
    conn: &mut SqliteConnection,
    users: &[String],
    start: DateTime<Utc>,
) -> anyhow::Result<()> {
    let (s, e) = (
        format_utc(start),
        format_utc(start + ChronoDuration::seconds(120)),
    );
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    for chunk in users.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO recordings (user_id, policy_id, segment_start, segment_end, \
             requested_seconds, end_mode, state, late_seconds) VALUES ",
        );
        sql.push_str(&vec!["(?, 1, ?, ?, 120, 'expire', 'pending', 0.0)"; chunk.len()].join(", "));
        sql.push_str(" ON CONFLICT (user_id, segment_start) DO NOTHING RETURNING id");
        let mut q = sqlx::query_scalar::<_, i64>(&sql);
        for u in chunk {
            q = q.bind(u).bind(&s).bind(&e);
        }
        q.fetch_all(&mut *conn).await?;
    }
    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

/// The audit row and the contact id for each id, `batch` rows per
/// transaction.
async fn batched_finish(
    conn: &mut SqliteConnection,
    ids: &[RecordingId],
    batch: usize,
) -> anyhow::Result<()> {
    let at = format_utc(now());
    for chunk in ids.chunks(batch) {
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        for id in chunk {
            sqlx::query(
                "INSERT INTO attempts (recording_id, at, operation, attempt, requested_seconds, \
                 http_status, latency_ms, response_body) VALUES (?, ?, 'start', 1, 120, 200, 20, ?)",
            )
            .bind(id.get())
            .bind(&at)
            .bind(body(*id))
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE recordings SET contact_id = ?, attempts = MAX(attempts, 1), \
                 state = 'recording', last_error = NULL WHERE id = ? AND state = 'pending'",
            )
            .bind(1_000_000 + id.get())
            .bind(id.get())
            .execute(&mut *conn)
            .await?;
        }
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
    }
    Ok(())
}

/// `voluntary_ctxt_switches` of this process's threads, summed.
fn voluntary_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}
