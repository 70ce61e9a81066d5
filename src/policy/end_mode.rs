//! How a window ends: trust the vendor's timer, or also send a stop.
//!
//! Holding one means it is valid; parsed once from the row, never
//! re-checked downstream. Depends on nothing outside `policy` and
//! `recording`.

use std::fmt;
use std::str::FromStr;

/// The `end_mode` column.
///
/// The order matters: `Expire < Stop`, so the combined mode of several
/// policies is their maximum (one `stop` policy makes a stop necessary).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EndMode {
    /// Let the recording run out on the vendor's own timer.
    Expire,
    /// Also send an explicit stop at the window's end.
    Stop,
}

/// Why a string is not an [`EndMode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("end mode `{0}` is not `expire` or `stop`")]
pub struct EndModeError(pub String);

impl EndMode {
    pub const ALL: [Self; 2] = [Self::Expire, Self::Stop];

    /// The column's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expire => "expire",
            Self::Stop => "stop",
        }
    }
}

impl FromStr for EndMode {
    type Err = EndModeError;

    /// Exactly `expire` or `stop`, as the column stores them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| EndModeError(s.to_owned()))
    }
}

impl fmt::Display for EndMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_mode_round_trips_through_text() {
        for mode in EndMode::ALL {
            assert_eq!(mode.as_str().parse::<EndMode>(), Ok(mode));
        }
    }

    #[test]
    fn end_mode_rejects_other_words_and_other_cases() {
        for raw in ["halt", "", "STOP", " stop", "expired"] {
            assert_eq!(raw.parse::<EndMode>(), Err(EndModeError(raw.to_owned())));
        }
    }

    #[test]
    fn stop_outranks_expire_when_combined() {
        assert_eq!(EndMode::Expire.max(EndMode::Stop), EndMode::Stop);
    }
}
