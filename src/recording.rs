//! The vocabulary of one recording: who ([`UserId`]), for how long
//! ([`RecordingDuration`]), what the vendor answered ([`ContactId`],
//! [`InteractionId`]), where the durable row stands ([`RecordingState`]),
//! which request an exchange with the vendor was ([`Operation`]) and how
//! much of its answer the audit trail keeps ([`truncate_body`]). The client
//! and the store both speak it, so each word has one definition.
//!
//! These types are parsed at the edge (a policy row, a CLI flag, an HTTP
//! body), so holding one means it is valid: the core never re-validates.
//! This module depends on nothing else in the crate.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Longest user id the project accepts, in characters.
pub const USER_ID_MAX_CHARS: usize = 256;

/// Why a string is not a [`UserId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("user id is empty")]
    Empty,
    #[error("user id is {0} characters long; at most {USER_ID_MAX_CHARS} are allowed")]
    TooLong(usize),
    #[error("user id contains a control character at position {0}")]
    ControlCharacter(usize),
}

/// A CXone user id: a non-empty string of at most 256 characters without
/// control characters. Anything else (spaces, `&`, `#`, `%`, unicode) is
/// allowed and reaches the API as exactly one query value.
///
/// Shared, not copied: a clone is a reference count, so the policy that
/// names a user, its coverage, its segments and its open rows hold one
/// copy of the text between them (a daemon with 100,000 users plans, per
/// pass, a segment and a map entry for each).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(Arc<str>);

impl UserId {
    pub fn parse(raw: impl Into<String>) -> Result<Self, UserIdError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(UserIdError::Empty);
        }
        let chars = raw.chars().count();
        if chars > USER_ID_MAX_CHARS {
            return Err(UserIdError::TooLong(chars));
        }
        if let Some(pos) = raw.chars().position(char::is_control) {
            return Err(UserIdError::ControlCharacter(pos));
        }
        Ok(Self(Arc::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UserId {
    type Err = UserIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(raw).map_err(serde::de::Error::custom)
    }
}

/// Why a number of seconds is not a [`RecordingDuration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "recording duration {0} s is outside {min}..={max} s",
    min = RecordingDuration::MIN_SECS,
    max = RecordingDuration::MAX_SECS
)]
pub struct DurationError(pub i64);

/// A duration the vendor API accepts for one recording: 5..=13200 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RecordingDuration(u32);

impl RecordingDuration {
    /// The API's minimum.
    pub const MIN_SECS: u32 = 5;
    /// The API's maximum per its parameter table (see API.md "Ambiguities").
    pub const MAX_SECS: u32 = 13_200;
    /// The default segment limit: 3 h 30 min, which both readings of the page allow.
    pub const DEFAULT_LIMIT_SECS: u32 = 12_600;
    pub const MIN: Self = Self(Self::MIN_SECS);
    pub const MAX: Self = Self(Self::MAX_SECS);

    pub fn from_secs(secs: i64) -> Result<Self, DurationError> {
        if (i64::from(Self::MIN_SECS)..=i64::from(Self::MAX_SECS)).contains(&secs) {
            Ok(Self(secs as u32))
        } else {
            Err(DurationError(secs))
        }
    }

    pub fn as_secs(self) -> u32 {
        self.0
    }

    /// What a start sent at `now` asks for so the recording ends at `end`:
    /// the time left, rounded to the nearest second (a start that fires a
    /// few milliseconds into a 5 s window still asks for 5 s, overrunning
    /// by those milliseconds), capped at the maximum. `None` when that is
    /// under the 5 s minimum.
    pub fn remaining(
        end: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Self> {
        let ms = (end - now).num_milliseconds();
        let secs = (ms + 500).div_euclid(1000);
        Self::from_secs(secs.min(i64::from(Self::MAX_SECS))).ok()
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

impl fmt::Display for RecordingDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s", self.0)
    }
}

/// Why a value is not a [`ContactId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contact id `{0}` is not a non-negative 64-bit integer")]
pub struct ContactIdError(pub String);

/// The ACD contact id the vendor returns for a started recording; a stop
/// needs it. Stored as SQLite INTEGER, so it is kept as a non-negative i64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ContactId(i64);

impl ContactId {
    pub fn new(raw: i64) -> Result<Self, ContactIdError> {
        if raw < 0 {
            Err(ContactIdError(raw.to_string()))
        } else {
            Ok(Self(raw))
        }
    }

    /// Parses a string of ASCII digits (the lenient form some answers use).
    pub fn parse_digits(raw: &str) -> Result<Self, ContactIdError> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ContactIdError(raw.to_owned()));
        }
        raw.parse::<i64>()
            .map(Self)
            .map_err(|_| ContactIdError(raw.to_owned()))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The vendor's global interaction id (UUID-like; kept as given).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct InteractionId(pub String);

impl fmt::Display for InteractionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a recording row stands. See PRODUCT.md "States of a recording row".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Row written, start not yet answered.
    Pending,
    /// Start answered; contact id known.
    Recording,
    /// A stop has been sent.
    Stopping,
    /// Ended by our stop.
    Stopped,
    /// Ended by the vendor's own timer.
    Expired,
    /// Final error, or retries ran out before the window ended.
    Failed,
    /// The segment passed wholly while the service was down.
    Missed,
}

/// Why a string is not a [`RecordingState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recording state `{0}` is not one of pending, recording, stopping, stopped, expired, failed, missed")]
pub struct StateError(pub String);

impl RecordingState {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Recording,
        Self::Stopping,
        Self::Stopped,
        Self::Expired,
        Self::Failed,
        Self::Missed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Recording => "recording",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::Missed => "missed",
        }
    }

    /// A final state never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Stopped | Self::Expired | Self::Failed | Self::Missed
        )
    }

    /// The legal moves of PRODUCT.md's state diagram.
    pub fn can_move_to(self, next: Self) -> bool {
        use RecordingState::*;
        matches!(
            (self, next),
            (Pending, Recording | Failed | Missed | Expired)
                | (Recording, Stopping | Stopped | Expired | Failed)
                | (Stopping, Stopped | Expired | Failed | Recording)
        )
    }
}

impl fmt::Display for RecordingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordingState {
    type Err = StateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StateError(s.to_owned()))
    }
}

/// Which request an exchange with the vendor was: the client classifies
/// answers by it, the audit trail (`attempts.operation`) records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Start,
    Stop,
}

/// Why a string is not an [`Operation`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation `{0}` is not `start` or `stop`")]
pub struct OperationError(pub String);

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = OperationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "start" => Ok(Self::Start),
            "stop" => Ok(Self::Stop),
            other => Err(OperationError(other.to_owned())),
        }
    }
}

/// At most this many bytes of a vendor answer's body are kept, in errors
/// and in the audit trail: enough to read an error, bounded for a bad day.
pub const BODY_KEEP_BYTES: usize = 2048;

/// The longest prefix of `body` of at most [`BODY_KEEP_BYTES`] that ends
/// on a character boundary (a character cut in half is dropped whole).
pub fn truncate_body(body: &str) -> &str {
    let mut end = body.len().min(BODY_KEEP_BYTES);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_user_id_clone_shares_its_text_and_serializes_as_a_string() {
        let ann = UserId::parse("ann").unwrap();
        let copy = ann.clone();
        assert!(Arc::ptr_eq(&ann.0, &copy.0));
        assert_eq!(serde_json::to_string(&copy).unwrap(), r#""ann""#);
        let back: UserId = serde_json::from_str(r#""ann""#).unwrap();
        assert_eq!(back, ann);
    }

    #[test]
    fn user_id_rejects_empty_long_and_control() {
        assert_eq!(UserId::parse(""), Err(UserIdError::Empty));
        assert_eq!(
            UserId::parse("x".repeat(257)),
            Err(UserIdError::TooLong(257))
        );
        assert_eq!(UserId::parse("a\nb"), Err(UserIdError::ControlCharacter(1)));
        assert_eq!(
            UserId::parse("a\u{7f}"),
            Err(UserIdError::ControlCharacter(1))
        );
    }

    #[test]
    fn user_id_accepts_hostile_but_printable_values() {
        for raw in [
            "1&recordingDuration=1",
            "a b#c%d",
            "é ü 用户",
            &"x".repeat(256),
        ] {
            assert_eq!(UserId::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn duration_bounds_are_inclusive() {
        assert!(RecordingDuration::from_secs(4).is_err());
        assert_eq!(RecordingDuration::from_secs(5).unwrap().as_secs(), 5);
        assert_eq!(
            RecordingDuration::from_secs(13_200).unwrap().as_secs(),
            13_200
        );
        assert!(RecordingDuration::from_secs(13_201).is_err());
        assert!(RecordingDuration::from_secs(-5).is_err());
    }

    #[test]
    fn contact_id_digits_parse_leniently_but_strictly() {
        assert_eq!(ContactId::parse_digits("42").unwrap().get(), 42);
        assert_eq!(
            ContactId::parse_digits("9223372036854775807")
                .unwrap()
                .get(),
            i64::MAX
        );
        assert!(ContactId::parse_digits("9223372036854775808").is_err());
        assert!(ContactId::parse_digits("-1").is_err());
        assert!(ContactId::parse_digits("1e3").is_err());
        assert!(ContactId::parse_digits("").is_err());
        assert!(ContactId::new(-1).is_err());
    }

    #[test]
    fn state_round_trips_through_text() {
        for st in RecordingState::ALL {
            assert_eq!(st.as_str().parse::<RecordingState>().unwrap(), st);
        }
        assert!("running".parse::<RecordingState>().is_err());
    }

    #[test]
    fn final_states_have_no_moves() {
        for from in RecordingState::ALL.into_iter().filter(|s| s.is_final()) {
            for to in RecordingState::ALL {
                assert!(!from.can_move_to(to), "{from} -> {to}");
            }
        }
        assert!(RecordingState::Pending.can_move_to(RecordingState::Recording));
    }

    #[test]
    fn remaining_time_rounds_to_the_nearest_second_and_keeps_the_minimum() {
        let end = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 5).unwrap();
        let at = |ms: i64| end - chrono::Duration::milliseconds(ms);
        assert_eq!(
            RecordingDuration::remaining(end, at(5000)).map(|d| d.as_secs()),
            Some(5)
        );
        assert_eq!(
            RecordingDuration::remaining(end, at(4997)).map(|d| d.as_secs()),
            Some(5)
        );
        assert_eq!(RecordingDuration::remaining(end, at(4400)), None);
        assert_eq!(RecordingDuration::remaining(end, at(-1000)), None);
        assert_eq!(
            RecordingDuration::remaining(end, at(61_400)).map(|d| d.as_secs()),
            Some(61)
        );
        assert_eq!(
            RecordingDuration::remaining(end, at(20_000_000)).map(|d| d.as_secs()),
            Some(RecordingDuration::MAX_SECS)
        );
    }

    #[test]
    fn short_bodies_are_kept_whole() {
        assert_eq!(truncate_body(""), "");
        assert_eq!(truncate_body("{\"error\":\"x\"}"), "{\"error\":\"x\"}");
        let exact = "a".repeat(BODY_KEEP_BYTES);
        assert_eq!(truncate_body(&exact), exact);
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        // 2047 ASCII bytes then a 3-byte char straddling the limit.
        let body = format!("{}€tail", "a".repeat(BODY_KEEP_BYTES - 1));
        let cut = truncate_body(&body);
        assert_eq!(cut.len(), BODY_KEEP_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'a'));

        let emoji = "😀".repeat(1000); // 4 bytes each
        let cut = truncate_body(&emoji);
        assert_eq!(cut.len(), BODY_KEEP_BYTES);
        assert_eq!(cut.chars().count(), BODY_KEEP_BYTES / 4);

        let accents = "é".repeat(2000); // 2 bytes each
        assert_eq!(truncate_body(&accents), "é".repeat(1024));
    }

    #[test]
    fn operations_round_trip_through_text() {
        for op in [Operation::Start, Operation::Stop] {
            assert_eq!(op.as_str().parse::<Operation>(), Ok(op));
            assert_eq!(op.to_string(), op.as_str());
        }
        let e = "restart".parse::<Operation>().unwrap_err();
        assert!(e.to_string().contains("`restart`"), "{e}");
    }
}
