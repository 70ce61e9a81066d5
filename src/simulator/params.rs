//! Query parameters of start and stop, read the way `API.md` allows.
//!
//! The vendor page spells the parameters two ways (`userId`/`user-id`,
//! `contactId`/`contact-id`); both are accepted. Anything ambiguous is a
//! 400: a parameter given twice, or both spellings at once. That is
//! stricter than a lenient server would be on purpose: a client that
//! forgets to percent-encode a user id like `1&recordingDuration=1` sends
//! `recordingDuration` twice and is caught here instead of recording the
//! wrong user. The pairs arrive already percent-decoded (axum's `Query`).

/// Shortest recording the API accepts, seconds.
pub const MIN_DURATION_SECS: u64 = 5;
/// Longest recording the API accepts, seconds (the parameter table's
/// limit; `API.md` "Ambiguities").
pub const MAX_DURATION_SECS: u64 = 13_200;

/// Why a start or stop is answered 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("query parameter `{0}` is required")]
    Missing(&'static str),
    #[error("query parameter `{0}` is empty")]
    Empty(&'static str),
    #[error("query parameter `{0}` is given more than once")]
    Repeated(String),
    #[error("query parameter `{0}` is not an integer: `{1}`")]
    NotAnInteger(&'static str, String),
    #[error("recordingDuration {0} is outside {MIN_DURATION_SECS}..={MAX_DURATION_SECS} seconds")]
    DurationOutOfRange(u64),
}

/// A valid start request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartParams {
    pub user_id: String,
    pub duration: u64,
}

/// A valid stop request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopParams {
    pub user_id: String,
    pub contact_id: u64,
}

impl StartParams {
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        let user_id = user_id(pairs)?;
        let raw = one_of(pairs, &["recordingDuration"])?
            .ok_or(ParamError::Missing("recordingDuration"))?;
        let duration = integer("recordingDuration", raw)?;
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&duration) {
            return Err(ParamError::DurationOutOfRange(duration));
        }
        Ok(Self { user_id, duration })
    }
}

impl StopParams {
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        let user_id = user_id(pairs)?;
        let raw =
            one_of(pairs, &["contactId", "contact-id"])?.ok_or(ParamError::Missing("contactId"))?;
        let contact_id = integer("contactId", raw)?;
        Ok(Self {
            user_id,
            contact_id,
        })
    }
}

/// The user a request names, under either spelling, if it names exactly
/// one (for the per-user faults, which apply before the request is
/// checked).
pub fn user_of(pairs: &[(String, String)]) -> Option<&str> {
    one_of(pairs, &["userId", "user-id"]).ok().flatten()
}

fn user_id(pairs: &[(String, String)]) -> Result<String, ParamError> {
    let user = one_of(pairs, &["userId", "user-id"])?.ok_or(ParamError::Missing("userId"))?;
    if user.is_empty() {
        return Err(ParamError::Empty("userId"));
    }
    Ok(user.to_owned())
}

/// The one value given under any of `names`; an error if more than one
/// pair carries any of them.
fn one_of<'a>(
    pairs: &'a [(String, String)],
    names: &[&str],
) -> Result<Option<&'a str>, ParamError> {
    let mut found = None;
    for (key, value) in pairs {
        if names.contains(&key.as_str()) {
            if found.is_some() {
                return Err(ParamError::Repeated(key.clone()));
            }
            found = Some(value.as_str());
        }
    }
    Ok(found)
}

/// A non-negative decimal integer, surrounding blanks refused.
fn integer(name: &'static str, raw: &str) -> Result<u64, ParamError> {
    raw.parse::<u64>()
        .ok()
        .filter(|_| !raw.starts_with('+'))
        .ok_or_else(|| ParamError::NotAnInteger(name, raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn start_accepts_both_user_spellings() {
        for key in ["userId", "user-id"] {
            let p = StartParams::parse(&pairs(&[(key, "a b#%é"), ("recordingDuration", "600")]));
            assert_eq!(
                p,
                Ok(StartParams {
                    user_id: "a b#%é".into(),
                    duration: 600
                })
            );
        }
    }

    #[test]
    fn start_duration_bounds_are_inclusive() {
        for (raw, ok) in [("4", false), ("5", true), ("13200", true), ("13201", false)] {
            let p = StartParams::parse(&pairs(&[("userId", "u"), ("recordingDuration", raw)]));
            assert_eq!(p.is_ok(), ok, "{raw}");
        }
    }

    #[test]
    fn start_refuses_missing_empty_or_odd_values() {
        let cases: &[(&[(&str, &str)], ParamError)] = &[
            (
                &[("recordingDuration", "60")],
                ParamError::Missing("userId"),
            ),
            (
                &[("userId", ""), ("recordingDuration", "60")],
                ParamError::Empty("userId"),
            ),
            (&[("userId", "u")], ParamError::Missing("recordingDuration")),
            (
                &[("userId", "u"), ("recordingDuration", "6.5")],
                ParamError::NotAnInteger("recordingDuration", "6.5".into()),
            ),
            (
                &[("userId", "u"), ("recordingDuration", "-10")],
                ParamError::NotAnInteger("recordingDuration", "-10".into()),
            ),
            (
                &[("userId", "u"), ("recordingDuration", "+10")],
                ParamError::NotAnInteger("recordingDuration", "+10".into()),
            ),
            (
                &[("userId", "u"), ("recordingDuration", " 10")],
                ParamError::NotAnInteger("recordingDuration", " 10".into()),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                StartParams::parse(&pairs(raw)).as_ref(),
                Err(want),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn an_unencoded_user_id_that_smuggles_a_parameter_is_refused() {
        // `userId=1&recordingDuration=1&recordingDuration=600`
        let p = pairs(&[
            ("userId", "1"),
            ("recordingDuration", "1"),
            ("recordingDuration", "600"),
        ]);
        assert_eq!(
            StartParams::parse(&p),
            Err(ParamError::Repeated("recordingDuration".into()))
        );
        let both = pairs(&[
            ("userId", "a"),
            ("user-id", "b"),
            ("recordingDuration", "60"),
        ]);
        assert_eq!(
            StartParams::parse(&both),
            Err(ParamError::Repeated("user-id".into()))
        );
    }

    #[test]
    fn stop_accepts_both_contact_spellings_and_wants_an_integer() {
        for key in ["contactId", "contact-id"] {
            let p = StopParams::parse(&pairs(&[("user-id", "u"), (key, "123456789012")]));
            assert_eq!(
                p,
                Ok(StopParams {
                    user_id: "u".into(),
                    contact_id: 123_456_789_012
                })
            );
        }
        assert_eq!(
            StopParams::parse(&pairs(&[("userId", "u")])),
            Err(ParamError::Missing("contactId"))
        );
        assert_eq!(
            StopParams::parse(&pairs(&[("userId", "u"), ("contactId", "abc")])),
            Err(ParamError::NotAnInteger("contactId", "abc".into()))
        );
    }
}
