//! Live configuration: notices edits to `policies` and `policy_users` made
//! by any writer (sqlite3, the CLI, another program) and hands the loop a
//! freshly parsed policy set.
//!
//! Edits are noticed by polling `policy_revision`, a counter the schema's
//! triggers bump on every change to those tables: one integer read per
//! poll, and the daemon's own recording writes never trip it (as they
//! would `PRAGMA data_version`). SIGHUP forces a reload through a
//! [`Trigger`]. A row that does not parse is logged once, by name, and
//! skipped; every other policy goes on.
//!
//! [`BadRows`] keeps what the daemon knows of bad rows in any table (the
//! rule is in `store::BadRow`): each is logged once when found and once
//! when it reads back again, and `recsched_invalid_rows{table}` follows
//! them. A bad `recordings` row leaves its user alone; the watcher looks
//! at such rows every few seconds, and once one reads back (or is gone)
//! reports it fixed and wakes the loop, so the user is planned again
//! without waiting for another event.
//!
//! `exclusions` rows are read and parsed with the policies (their edits
//! move the same revision) and attached to the policies they cut.
//!
//! On PostgreSQL the same triggers also `NOTIFY recsched_policies`, and
//! the watcher `LISTEN`s on a connection of its own: an edit is seen at
//! its commit, not at the next poll. Polling goes on as the fallback (a
//! notification sent while the listening connection was down is lost);
//! a broken listener is dropped and opened again a little later.

use super::{DaemonError, Notifier};
use crate::clock::Clock;
use crate::metrics::{Metrics, TableLabel, ROW_TABLES};
use crate::policy::{self, Policy};
use crate::store::{BadRow, PolicyListener, RecordingId, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// Forces a reload (SIGHUP).
#[derive(Clone, Default)]
pub struct Trigger(Arc<Notify>);

impl Trigger {
    pub fn fire(&self) {
        self.0.notify_one();
    }
}

/// How long after a listener broke the watcher tries to listen again.
const RELISTEN_AFTER: Duration = Duration::from_secs(10);

/// How often the watcher looks whether a bad `recordings` row was fixed.
const BAD_ROW_RECHECK: Duration = Duration::from_secs(2);

/// At most this many bad `recordings` rows are looked at per recheck.
const BAD_ROW_RECHECK_MAX: usize = 32;

/// Which read found a set of bad rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Found {
    /// `policies` and `policy_users`, read whole on every reload; each
    /// reload replaces what the last one found.
    Policies,
    /// `recordings`, as each planning pass reads them (every row occupying
    /// its user, and every open row, judged on the columns that place it
    /// in time); each pass replaces what the last one found.
    Recordings,
    /// Open `recordings` rows that could not be adopted (at start, or
    /// taken over from a lost instance), judged on every column. Such a
    /// read sees only some rows, so its findings are kept until the
    /// watcher sees the row read back (or gone).
    Open,
}

/// What one change of [`BadRows`] logged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// Rows logged as bad (new, or bad in a new way).
    pub bad: usize,
    /// Rows logged as reading back again.
    pub fixed: usize,
}

/// The bad rows the daemon knows of, reported once per change: a row is
/// logged (error) when first found and (info) when it reads back again or
/// is gone; the `recsched_invalid_rows{table}` gauge counts them.
pub struct BadRows {
    known: Mutex<BTreeMap<Found, BTreeSet<BadRow>>>,
    metrics: Arc<Metrics>,
}

impl BadRows {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            known: Mutex::default(),
            metrics,
        }
    }

    /// What a `found` read finds now. [`Found::Policies`] and
    /// [`Found::Recordings`] replace what the same read found before;
    /// [`Found::Open`] adds to it. Returns what was logged.
    pub fn found(&self, found: Found, rows: &[BadRow]) -> Reported {
        self.change(|known| {
            let set = known.entry(found).or_default();
            if found != Found::Open {
                set.clear();
            }
            set.extend(rows.iter().cloned());
        })
    }

    /// The `recordings` row `id` reads back again (or is gone).
    fn fixed(&self, id: RecordingId) -> Reported {
        self.change(|known| {
            for set in known.values_mut() {
                set.retain(|r| !(r.table == "recordings" && r.key == "id" && r.id == id.get()));
            }
        })
    }

    /// Applies `edit`, then logs what changed and sets the gauge.
    fn change(&self, edit: impl FnOnce(&mut BTreeMap<Found, BTreeSet<BadRow>>)) -> Reported {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let before: BTreeSet<BadRow> = known.values().flatten().cloned().collect();
        edit(&mut known);
        let after: BTreeSet<BadRow> = known.values().flatten().cloned().collect();
        drop(known);
        let mut reported = Reported::default();
        if before == after {
            return reported;
        }
        for row in after.difference(&before) {
            reported.bad += 1;
            tracing::error!(
                table = row.table,
                id = row.id,
                column = row.column,
                user = row.user.as_ref().map(|u| u.as_str()),
                "bad row: {row}"
            );
        }
        let still: BTreeSet<(&str, &str, i64)> =
            after.iter().map(|r| (r.table, r.key, r.id)).collect();
        let mut gone = BTreeSet::new();
        for row in before.difference(&after) {
            if !still.contains(&(row.table, row.key, row.id)) && gone.insert((row.table, row.id)) {
                reported.fixed += 1;
                tracing::info!(
                    table = row.table,
                    id = row.id,
                    "{} reads back again (fixed or deleted)",
                    row.subject()
                );
            }
        }
        for table in ROW_TABLES {
            let n = still.iter().filter(|(t, _, _)| *t == table).count();
            self.metrics
                .invalid_rows
                .get_or_create(&TableLabel { table })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        reported
    }

    /// The `recordings` rows known to be bad, to look at again.
    fn recordings(&self) -> Vec<RecordingId> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let ids: BTreeSet<i64> = known
            .values()
            .flatten()
            .filter(|r| r.table == "recordings" && r.key == "id")
            .map(|r| r.id)
            .collect();
        ids.into_iter()
            .take(BAD_ROW_RECHECK_MAX)
            .map(RecordingId::new)
            .collect()
    }
}

/// Waits for the next notification, or forever without a listener.
async fn notified(listener: &mut Option<PolicyListener>) -> Result<(), crate::store::StoreError> {
    match listener {
        Some(l) => l.changed().await,
        None => std::future::pending().await,
    }
}

/// Polls for edits and publishes the parsed, enabled policies.
pub struct Watcher {
    store: Store,
    poll: Duration,
    trigger: Trigger,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    clock: Arc<dyn Clock>,
    tx: watch::Sender<Arc<Vec<Policy>>>,
    revision: Option<i64>,
    /// Every bad row the daemon knows of; reported once per change.
    bad_rows: Arc<BadRows>,
}

impl Watcher {
    pub fn new(
        store: Store,
        poll: Duration,
        trigger: Trigger,
        metrics: Arc<Metrics>,
        notifier: Notifier,
        clock: Arc<dyn Clock>,
        bad_rows: Arc<BadRows>,
    ) -> Self {
        Self {
            store,
            poll,
            trigger,
            metrics,
            notifier,
            clock,
            tx: watch::Sender::new(Arc::new(Vec::new())),
            revision: None,
            bad_rows,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<Policy>>> {
        self.tx.subscribe()
    }

    /// Loads and publishes the policies now; returns them.
    pub async fn load_now(&mut self) -> Result<Arc<Vec<Policy>>, DaemonError> {
        // The revision first: an edit landing between the two reads shows
        // as a new revision on the next poll and is loaded then.
        let revision = self.store.policy_revision().await?;
        let read = self.store.read_policies().await?;
        let (mut parsed, errors) = policy::load(read.rows);
        // A policy the parser refuses is skipped like a row that does not
        // read back, and reported the same way.
        let mut bad = read.bad;
        bad.extend(errors.iter().map(BadRow::from_policy));
        // Exclusions travel with the policies they cut; a bad one is
        // skipped (not applied) and reported the same way.
        let exclusions = self.store.read_exclusions().await?;
        let (exclusions, refused) =
            policy::exclusion::load_exclusions(&exclusions.rows_and_bad(&mut bad));
        bad.extend(refused.iter().map(BadRow::from_exclusion));
        policy::exclusion::attach(&mut parsed, &exclusions);
        self.bad_rows.found(Found::Policies, &bad);
        self.metrics
            .invalid_policies
            .set(i64::try_from(errors.len()).unwrap_or(i64::MAX));
        let enabled: Vec<Policy> = parsed.into_iter().filter(|p| p.enabled).collect();
        self.metrics.policies.set(enabled.len() as i64);
        self.metrics
            .last_reload_timestamp_seconds
            .set(self.clock.now().timestamp_millis() as f64 / 1000.0);
        self.metrics.reloaded();
        if self.revision.is_some() {
            tracing::info!(
                revision,
                policies = enabled.len(),
                invalid = bad.len(),
                "policies reloaded"
            );
        }
        self.revision = Some(revision);
        let enabled = Arc::new(enabled);
        self.tx.send_replace(enabled.clone());
        Ok(enabled)
    }

    /// Wakes the loop (publishing the same policies again) when a
    /// `recordings` row known to be bad now reads back or is gone, so its
    /// user is planned again at once.
    async fn wake_if_fixed(&self) {
        let mut woke = false;
        for id in self.bad_rows.recordings() {
            match self.store.recording(id).await {
                Err(crate::store::StoreError::BadRow(_)) => {}
                Ok(_) => {
                    self.bad_rows.fixed(id);
                    if !woke {
                        let current = self.tx.borrow().clone();
                        self.tx.send_replace(current);
                        woke = true;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not look at a bad row again");
                    return;
                }
            }
        }
    }

    /// Opens the listener where the database pushes changes; logs and
    /// goes on polling where it cannot.
    async fn listen(&self) -> Option<PolicyListener> {
        match self.store.listen_policies().await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for policy changes; polling only");
                None
            }
        }
    }

    /// Polls (and listens, where it can) until `cancel`.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut listener = self.listen().await;
        let shared = self.store.is_shared();
        let mut broke_at = (shared && listener.is_none()).then(Instant::now);
        let mut rechecked_at = Instant::now();
        // An edit committed between the first load and the listener coming
        // up notified nobody: read the revision once before waiting.
        let mut look_now = true;
        loop {
            if rechecked_at.elapsed() >= BAD_ROW_RECHECK {
                rechecked_at = Instant::now();
                self.wake_if_fixed().await;
            }
            if shared
                && listener.is_none()
                && broke_at.is_some_and(|t| t.elapsed() >= RELISTEN_AFTER)
            {
                listener = self.listen().await;
                broke_at = listener.is_none().then(Instant::now);
            }
            let forced = if std::mem::take(&mut look_now) {
                false
            } else {
                tokio::select! {
                    () = tokio::time::sleep(self.poll) => false,
                    () = self.trigger.0.notified() => true,
                    heard = notified(&mut listener) => {
                        if let Err(e) = heard {
                            tracing::warn!(error = %e, "lost the policy change listener; polling until it is back");
                            listener = None;
                            broke_at = Some(Instant::now());
                        }
                        false
                    }
                    () = cancel.cancelled() => return,
                }
            };
            if forced {
                tracing::info!("reload requested");
                self.notifier.reloading();
            } else {
                match self.store.policy_revision().await {
                    Ok(r) if Some(r) == self.revision => continue,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the policy revision");
                        continue;
                    }
                }
            }
            if let Err(e) = self.load_now().await {
                self.metrics.reload_failed();
                tracing::warn!(error = %e, "could not reload policies; keeping the previous set");
            }
            if forced {
                self.notifier.ready();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(m: &Metrics, table: &'static str) -> i64 {
        m.invalid_rows.get_or_create(&TableLabel { table }).get()
    }

    #[test]
    fn each_bad_row_is_reported_once_per_change_and_counted_by_table() {
        let metrics = Arc::new(Metrics::new());
        let bad = BadRows::new(metrics.clone());
        let orphan =
            BadRow::new("policy_users", 3, "policy_id", "names no policy").keyed_by("rowid");
        let zzz = BadRow::new("recordings", 1, "segment_end", "`zzz`");
        let member =
            BadRow::new("team_members", 9, "user_id", "``: user id is empty").keyed_by("rowid");

        assert_eq!(
            bad.found(Found::Policies, &[orphan.clone(), member.clone()]),
            Reported { bad: 2, fixed: 0 }
        );
        assert_eq!(gauge(&metrics, "team_members"), 1);
        assert_eq!(
            bad.found(Found::Policies, std::slice::from_ref(&orphan)),
            Reported { bad: 0, fixed: 1 }
        );
        assert_eq!(gauge(&metrics, "team_members"), 0);
        // The same finding at every reload or pass: nothing new to say.
        for _ in 0..3 {
            assert_eq!(
                bad.found(Found::Policies, std::slice::from_ref(&orphan)),
                Reported::default()
            );
        }
        assert_eq!(
            bad.found(Found::Recordings, std::slice::from_ref(&zzz)).bad,
            1
        );
        assert_eq!(gauge(&metrics, "policy_users"), 1);
        assert_eq!(gauge(&metrics, "recordings"), 1);
        assert_eq!(gauge(&metrics, "policies"), 0);
        assert_eq!(bad.recordings(), [RecordingId::new(1)]);

        // Bad in another way: reported again, not as fixed.
        let other = BadRow::new("recordings", 1, "state", "`running`");
        assert_eq!(
            bad.found(Found::Recordings, &[other]),
            Reported { bad: 1, fixed: 0 }
        );
        // Fixed: reported once, and counted out.
        assert_eq!(
            bad.found(Found::Recordings, &[]),
            Reported { bad: 0, fixed: 1 }
        );
        assert_eq!(gauge(&metrics, "recordings"), 0);
        assert!(bad.recordings().is_empty());
        assert_eq!(
            gauge(&metrics, "policy_users"),
            1,
            "another read's rows stay"
        );

        // An open row that could not be adopted stays known until the
        // watcher sees it read back, whatever later adoptions find.
        let open = BadRow::new("recordings", 7, "attempts", "-1");
        assert_eq!(bad.found(Found::Open, std::slice::from_ref(&open)).bad, 1);
        assert_eq!(bad.found(Found::Open, &[]), Reported::default());
        assert_eq!(bad.recordings(), [RecordingId::new(7)]);
        assert_eq!(
            bad.fixed(RecordingId::new(7)),
            Reported { bad: 0, fixed: 1 }
        );
        assert_eq!(gauge(&metrics, "recordings"), 0);
    }
}
