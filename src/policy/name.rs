//! A policy's name: what operators, logs and systemd's STATUS line call it.
//!
//! Names travel to places that split on lines or fields (the journal,
//! `STATUS=` in systemd's notify protocol, terminal tables), so the daemon
//! itself refuses a name that could break them, not only the CLI: one
//! typed into sqlite3 reaches the parser too. Depends on nothing.

/// Longest policy name, in characters.
pub const NAME_MAX_CHARS: usize = 200;

/// Why a stored name is not a policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty; a policy needs a name of 1 to {NAME_MAX_CHARS} printable characters")]
    Empty,
    #[error("is {0} characters long; at most {NAME_MAX_CHARS} are allowed")]
    TooLong(usize),
    #[error(
        "has a character that is not printable (U+{code:04X}) at position {position}; \
         use printable characters only"
    )]
    NotPrintable { position: usize, code: u32 },
}

/// Checks a stored name: 1 ..= [`NAME_MAX_CHARS`] printable characters.
///
/// Not printable: control characters (newline, tab, escape...), the
/// Unicode line and paragraph separators, and the bidirectional controls
/// that make a line read differently from its bytes.
///
/// ```
/// use recsched::policy::check_name;
/// assert!(check_name("night-shift (EU)").is_ok());
/// assert!(check_name("a\nWATCHDOG=trigger").is_err());
/// assert!(check_name("").is_err());
/// ```
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some((position, c)) = name.chars().enumerate().find(|(_, c)| !printable(*c)) {
        return Err(NameError::NotPrintable {
            position,
            code: u32::from(c),
        });
    }
    let chars = name.chars().count();
    if chars > NAME_MAX_CHARS {
        return Err(NameError::TooLong(chars));
    }
    Ok(())
}

fn printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_of_1_to_200_printable_characters_pass() {
        assert_eq!(check_name("x"), Ok(()));
        assert_eq!(check_name(&"é".repeat(200)), Ok(()));
        assert_eq!(check_name("Nacht – Schicht #2 (Ä)"), Ok(()));
    }

    #[test]
    fn empty_long_and_unprintable_names_are_refused() {
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(check_name(&"a".repeat(201)), Err(NameError::TooLong(201)));
        assert_eq!(
            check_name("ok\nWATCHDOG=trigger"),
            Err(NameError::NotPrintable {
                position: 2,
                code: 0x0a
            })
        );
        for bad in ["a\tb", "a\u{1b}[2J", "a\u{2028}b", "a\u{202E}b", "\u{7f}"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_name_with_a_control_character_is_refused(
            head in "[a-z]{0,10}",
            c in prop::char::range('\u{0}', '\u{1f}'),
            tail in "[a-z]{0,10}",
        ) {
            let name = format!("{head}{c}{tail}");
            prop_assert!(check_name(&name).is_err());
        }
    }
}
