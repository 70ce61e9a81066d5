//! The simulated vendor's recordings: the one stateful rule set of the API.
//!
//! `API.md` in code: one recording per user at a time; a start while one
//! runs creates nothing and changes nothing but answers with the running
//! recording; a recording ends by itself when its duration has elapsed; a
//! stop ends only a running recording of that user and contact id.
//!
//! Every method takes `now` as an argument and nothing here reads a clock,
//! sleeps or does I/O, so each rule is a unit test. Expiry is evaluated
//! lazily: a recording whose time is up is marked `expired` (at
//! `started_at + duration`, not when someone looked) the next time it is
//! touched.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Serialize, Serializer};

/// How a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Its duration elapsed.
    Expired,
    /// A stop ended it.
    Stopped,
}

/// One recording the simulated vendor made, as `GET /_sim/recordings`
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recording {
    pub user_id: String,
    pub contact_id: u64,
    pub interaction_id: String,
    /// Requested duration, seconds.
    pub duration: u64,
    /// When its start request was processed.
    #[serde(serialize_with = "utc")]
    pub started_at: DateTime<Utc>,
    /// `None` while it runs.
    #[serde(serialize_with = "opt_utc")]
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<EndReason>,
}

fn utc<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::format_utc(*at))
}

fn opt_utc<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => utc(at, s),
        None => s.serialize_none(),
    }
}

impl Recording {
    fn ends_by_itself_at(&self) -> DateTime<Utc> {
        // duration <= 13200 s, so the conversion cannot fail in practice.
        let secs = i64::try_from(self.duration).unwrap_or(i64::MAX);
        self.started_at + chrono::Duration::seconds(secs)
    }
}

/// The answer to a start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub contact_id: u64,
    pub interaction_id: String,
    /// `false` when the user's running recording was returned instead.
    pub created: bool,
}

/// The answer to a successful stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub contact_id: u64,
    pub interaction_id: String,
}

/// Why a stop found nothing to stop (all answered 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StopRefused {
    #[error("no recording has contact id {0}")]
    UnknownContact(u64),
    #[error("contact id {0} belongs to another user")]
    WrongUser(u64),
    #[error("the recording with contact id {0} has already ended")]
    AlreadyEnded(u64),
}

/// Every recording ever made, with indexes for the two lookups the API
/// needs.
#[derive(Debug)]
pub struct Ledger {
    recordings: Vec<Recording>,
    /// contact id -> index into `recordings`.
    by_contact: HashMap<u64, usize>,
    /// user id -> index of the user's recording that may still run.
    running: HashMap<String, usize>,
    next_contact_id: u64,
    /// Interaction ids come from their own RNG so that they do not shift
    /// the fault sequence.
    id_rng: SmallRng,
}

/// Contact ids start above 2^53, as NICE's own mock's do
/// (900719925474010002): a client that squeezes them into 32 bits, or
/// reads JSON numbers as doubles, fails at once.
const CONTACT_ID_FLOOR: u64 = 900_719_925_474_010_002;

impl Ledger {
    /// An empty ledger whose contact ids start at a base derived from
    /// `seed` and count up by one.
    pub fn new(seed: u64) -> Self {
        let mut id_rng = SmallRng::seed_from_u64(seed ^ 0x5ca1_ab1e_c0de_0001);
        let next_contact_id = CONTACT_ID_FLOOR + id_rng.random_range(0..800_000_000_000);
        Self {
            recordings: Vec::new(),
            by_contact: HashMap::new(),
            running: HashMap::new(),
            next_contact_id,
            id_rng,
        }
    }

    /// Starts a recording of `user_id` for `duration` seconds at `now`,
    /// unless one is running: then that one is returned, unchanged.
    /// The caller has validated both arguments.
    pub fn start(&mut self, user_id: &str, duration: u64, now: DateTime<Utc>) -> Started {
        if let Some(running) = self.running_for(user_id, now) {
            return Started {
                contact_id: running.contact_id,
                interaction_id: running.interaction_id.clone(),
                created: false,
            };
        }
        let contact_id = self.next_contact_id;
        self.next_contact_id += 1;
        let interaction_id = self.interaction_id();
        let index = self.recordings.len();
        self.recordings.push(Recording {
            user_id: user_id.to_owned(),
            contact_id,
            interaction_id: interaction_id.clone(),
            duration,
            started_at: now,
            ended_at: None,
            end_reason: None,
        });
        self.by_contact.insert(contact_id, index);
        self.running.insert(user_id.to_owned(), index);
        Started {
            contact_id,
            interaction_id,
            created: true,
        }
    }

    /// Stops `user_id`'s running recording `contact_id` at `now`.
    pub fn stop(
        &mut self,
        user_id: &str,
        contact_id: u64,
        now: DateTime<Utc>,
    ) -> Result<Stopped, StopRefused> {
        let index = *self
            .by_contact
            .get(&contact_id)
            .ok_or(StopRefused::UnknownContact(contact_id))?;
        if self.recordings[index].user_id != user_id {
            return Err(StopRefused::WrongUser(contact_id));
        }
        if self.running_for(user_id, now).map(|r| r.contact_id) != Some(contact_id) {
            return Err(StopRefused::AlreadyEnded(contact_id));
        }
        self.running.remove(user_id);
        let rec = &mut self.recordings[index];
        rec.ended_at = Some(now);
        rec.end_reason = Some(EndReason::Stopped);
        Ok(Stopped {
            contact_id,
            interaction_id: rec.interaction_id.clone(),
        })
    }

    /// Every recording, in the order they started, with expiry settled
    /// as of `now`.
    pub fn all(&mut self, now: DateTime<Utc>) -> Vec<Recording> {
        let users: Vec<String> = self.running.keys().cloned().collect();
        for user in users {
            self.running_for(&user, now);
        }
        self.recordings.clone()
    }

    /// The user's running recording as of `now`, settling its expiry.
    fn running_for(&mut self, user_id: &str, now: DateTime<Utc>) -> Option<&Recording> {
        let index = *self.running.get(user_id)?;
        let end = self.recordings[index].ends_by_itself_at();
        if end <= now {
            let rec = &mut self.recordings[index];
            rec.ended_at = Some(end);
            rec.end_reason = Some(EndReason::Expired);
            self.running.remove(user_id);
            return None;
        }
        Some(&self.recordings[index])
    }

    /// A UUID-v4-shaped id.
    fn interaction_id(&mut self) -> String {
        let hi: u64 = self.id_rng.random();
        let lo: u64 = self.id_rng.random();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0x0fff,
            0x8000 | ((lo >> 48) & 0x3fff),
            lo & 0xffff_ffff_ffff,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, 8, 0, 0).unwrap()
    }

    fn secs(s: i64) -> chrono::Duration {
        chrono::Duration::seconds(s)
    }

    #[test]
    fn a_start_creates_a_running_recording_with_a_fresh_contact_id() {
        let mut l = Ledger::new(1);
        let a = l.start("alice", 60, t0());
        let b = l.start("bob", 60, t0());
        assert!(a.created && b.created);
        assert_ne!(a.contact_id, b.contact_id);
        assert_ne!(a.interaction_id, b.interaction_id);
        assert!(a.contact_id > u64::from(u32::MAX));
        assert_eq!(a.interaction_id.len(), 36);
        let all = l.all(t0());
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].started_at, t0());
        assert_eq!(all[0].ended_at, None);
    }

    #[test]
    fn a_second_start_returns_the_running_recording_and_keeps_its_duration() {
        let mut l = Ledger::new(1);
        let first = l.start("alice", 60, t0());
        let again = l.start("alice", 600, t0() + secs(30));
        assert!(!again.created);
        assert_eq!(again.contact_id, first.contact_id);
        assert_eq!(again.interaction_id, first.interaction_id);
        let all = l.all(t0() + secs(30));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].duration, 60);
    }

    #[test]
    fn a_recording_expires_at_start_plus_duration() {
        let mut l = Ledger::new(1);
        let first = l.start("alice", 60, t0());
        assert_eq!(l.all(t0() + secs(59))[0].ended_at, None);
        let later = l.all(t0() + secs(3600));
        assert_eq!(later[0].ended_at, Some(t0() + secs(60)));
        assert_eq!(later[0].end_reason, Some(EndReason::Expired));
        let next = l.start("alice", 60, t0() + secs(60));
        assert!(next.created);
        assert_ne!(next.contact_id, first.contact_id);
    }

    #[test]
    fn a_stop_ends_the_running_recording_once() {
        let mut l = Ledger::new(1);
        let s = l.start("alice", 60, t0());
        let stopped = l.stop("alice", s.contact_id, t0() + secs(10)).unwrap();
        assert_eq!(stopped.contact_id, s.contact_id);
        let all = l.all(t0() + secs(100));
        assert_eq!(all[0].ended_at, Some(t0() + secs(10)));
        assert_eq!(all[0].end_reason, Some(EndReason::Stopped));
        assert_eq!(
            l.stop("alice", s.contact_id, t0() + secs(11)),
            Err(StopRefused::AlreadyEnded(s.contact_id))
        );
    }

    #[test]
    fn a_stop_for_an_unknown_foreign_or_expired_contact_is_refused() {
        let mut l = Ledger::new(1);
        let s = l.start("alice", 60, t0());
        assert_eq!(
            l.stop("alice", 7, t0()),
            Err(StopRefused::UnknownContact(7))
        );
        assert_eq!(
            l.stop("bob", s.contact_id, t0()),
            Err(StopRefused::WrongUser(s.contact_id))
        );
        assert_eq!(
            l.stop("alice", s.contact_id, t0() + secs(60)),
            Err(StopRefused::AlreadyEnded(s.contact_id))
        );
        assert_eq!(l.all(t0())[0].end_reason, Some(EndReason::Expired));
    }

    #[test]
    fn an_old_contact_id_cannot_stop_the_users_newer_recording() {
        let mut l = Ledger::new(1);
        let old = l.start("alice", 5, t0());
        let new = l.start("alice", 60, t0() + secs(5));
        assert!(new.created);
        assert_eq!(
            l.stop("alice", old.contact_id, t0() + secs(6)),
            Err(StopRefused::AlreadyEnded(old.contact_id))
        );
        assert!(l.stop("alice", new.contact_id, t0() + secs(6)).is_ok());
    }

    #[test]
    fn the_same_seed_gives_the_same_ids() {
        let (mut a, mut b) = (Ledger::new(9), Ledger::new(9));
        assert_eq!(a.start("u", 5, t0()), b.start("u", 5, t0()));
        assert_ne!(
            Ledger::new(9).start("u", 5, t0()).contact_id,
            Ledger::new(10).start("u", 5, t0()).contact_id
        );
    }
}
