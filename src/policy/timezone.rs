//! The policy's IANA time zone, by exact name.
//!
//! Holding one means it is valid; parsed once from the row, never
//! re-checked downstream. Depends on nothing outside `policy` and
//! `recording`.

use chrono_tz::{Tz, TZ_VARIANTS};

/// Why a string is not a time zone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not an IANA time zone name")]
pub struct TimezoneError {
    pub value: String,
    /// The zone whose name differs only in letter case, if any.
    pub suggestion: Option<&'static str>,
}

/// Parses an exact IANA name such as `Europe/Amsterdam` or `UTC`.
///
/// Letter case must match, as in the tz database; a near miss in case
/// only is offered back as a suggestion.
pub fn parse_timezone(name: &str) -> Result<Tz, TimezoneError> {
    name.parse::<Tz>().map_err(|_| TimezoneError {
        value: name.to_owned(),
        suggestion: TZ_VARIANTS
            .iter()
            .map(|tz| tz.name())
            .find(|known| known.eq_ignore_ascii_case(name)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_zones_parse() {
        for name in [
            "Europe/Amsterdam",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Tokyo",
            "UTC",
        ] {
            assert_eq!(parse_timezone(name).map(|tz| tz.name()), Ok(name));
        }
    }

    #[test]
    fn misspelt_zone_is_rejected_without_suggestion() {
        let err = parse_timezone("Europe/Amsterdm").unwrap_err();
        assert_eq!(err.suggestion, None);
    }

    #[test]
    fn zone_in_the_wrong_case_is_rejected_with_suggestion() {
        let err = parse_timezone("europe/amsterdam").unwrap_err();
        assert_eq!(err.suggestion, Some("Europe/Amsterdam"));
    }

    #[test]
    fn empty_and_padded_zone_names_are_rejected() {
        assert!(parse_timezone("").is_err());
        assert!(parse_timezone(" UTC").is_err());
    }
}
