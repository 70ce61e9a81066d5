//! Scenario 3: a restart with 10,000 live `recording` rows: how long from
//! the start of `run_with` (database opened in the same timed span) until
//! `on_ready` (systemd's READY=1: policies loaded, rows reconciled).
//!
//! The rows are written by a process of its own ([`prepare`]), as a
//! previous daemon would have left them: one policy whose window opened
//! ten minutes ago, one running recording per user, and a heartbeat.

use crate::rig::{self, now};
use anyhow::Context as _;
use chrono::{Duration as ChronoDuration, DurationRound};
use recsched::clock::format_utc;
use recsched::policy::EndMode;
use recsched::recording::{RecordingState, UserId};
use recsched::store::{NewPolicy, NewRecording, RecordingFilter};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::time::{Duration, Instant};

pub const ROWS: usize = 10_000;
const WINDOW_SECS: i64 = 3600;

/// Writes the policy, the live rows and a heartbeat of "just now".
pub async fn prepare(dir: &Path) -> anyhow::Result<()> {
    let (store, path) = rig::store(dir).await?;
    let opened = now()
        .duration_trunc(ChronoDuration::seconds(1))
        .context("rounding now")?
        - ChronoDuration::minutes(10);
    let users: Vec<String> = (0..ROWS).map(|i| format!("live-{i:05}")).collect();
    store
        .insert_policy(&NewPolicy {
            name: "live".into(),
            enabled: true,
            cron: rig::cron_at(opened),
            timezone: "UTC".into(),
            window_seconds: WINDOW_SECS,
            end_mode: "expire".into(),
            users: users.clone(),
        })
        .await?;
    let rows: Vec<NewRecording> = users
        .iter()
        .map(|u| {
            Ok(NewRecording {
                user_id: UserId::parse(u.clone())?,
                policy_id: 1,
                segment_start: opened,
                segment_end: opened + ChronoDuration::seconds(WINDOW_SECS),
                requested_seconds: WINDOW_SECS as u32,
                end_mode: EndMode::Expire,
                state: RecordingState::Recording,
                late_seconds: Some(0.0),
                last_error: None,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let ids = store.claim_many(&rows).await?;
    anyhow::ensure!(ids.iter().all(Option::is_some), "some rows were not new");
    store
        .set_state_value("last_seen", &format_utc(now()))
        .await?;
    store.close().await;
    let mut conn =
        SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path)).await?;
    sqlx::query("UPDATE recordings SET contact_id = 7000000 + id, attempts = 1")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// What the restart measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Restart {
    pub rows: usize,
    /// Opening the database (migrations checked) until `on_ready`.
    pub ready_ms: f64,
    /// Requests the daemon sent in its first pass after the restart
    /// (should be none: every row is live and covered).
    pub requests: usize,
    /// Rows still `recording` after the first pass.
    pub still_recording: usize,
}

pub async fn measure(dir: &Path) -> anyhow::Result<Restart> {
    let sim = rig::simulator().await?;
    let t = Instant::now();
    let (store, _) = rig::store(dir).await?;
    let running = rig::start_daemon(store.clone(), &sim, t).await?;
    let ready_ms = running.ready_after.as_secs_f64() * 1000.0;
    let planned = rig::poll_until(Duration::from_secs(60), Duration::from_millis(10), || {
        let passes = running.metrics.passes.get();
        async move { passes >= 1 }
    })
    .await;
    anyhow::ensure!(planned, "the daemon did not finish its first pass in 60 s");
    let requests = sim.requests().len();
    running.stop().await?;
    let still_recording = store
        .recordings(&RecordingFilter {
            state: Some(RecordingState::Recording),
            limit: Some(1_000_000),
            ..RecordingFilter::default()
        })
        .await?
        .len();
    store.close().await;
    Ok(Restart {
        rows: ROWS,
        ready_ms,
        requests,
        still_recording,
    })
}
