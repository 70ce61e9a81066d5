//! Who a policy records: a set of user ids.
//!
//! Holding one means every id in it is valid; parsed once from the row,
//! never re-checked downstream. Parsed from `policy_users` alone it is
//! never empty; a policy that names teams may record nobody until the
//! directory has listed their members. Depends on nothing outside `policy` and
//! `recording`.

use std::collections::btree_set;
use std::collections::BTreeSet;

use crate::recording::{UserId, UserIdError};

/// A set of [`UserId`]s; duplicates in the row collapse.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct UserSet(BTreeSet<UserId>);

/// Why a list of raw ids is not a [`UserSet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserSetError {
    #[error("no users")]
    Empty,
    #[error("user id `{value}`: {error}")]
    BadUser { value: String, error: UserIdError },
}

impl UserSet {
    /// Wraps a set that is already parsed; `None` when it is empty.
    pub fn new(users: BTreeSet<UserId>) -> Option<Self> {
        (!users.is_empty()).then_some(Self(users))
    }

    /// Parses every raw id with [`UserId::parse`] and reports every one
    /// that fails, not just the first.
    ///
    /// ```
    /// use recsched::policy::UserSet;
    /// let users = UserSet::parse(["b", "a", "b"]).unwrap();
    /// assert_eq!(users.iter().map(|u| u.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    /// assert!(UserSet::parse(Vec::<String>::new()).is_err());
    /// ```
    pub fn parse<I, S>(raw: I) -> Result<Self, Vec<UserSetError>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut users = BTreeSet::new();
        let mut errors = Vec::new();
        for value in raw {
            let value = value.as_ref();
            match UserId::parse(value) {
                Ok(user) => {
                    users.insert(user);
                }
                Err(error) => errors.push(UserSetError::BadUser {
                    value: value.to_owned(),
                    error,
                }),
            }
        }
        if errors.is_empty() && users.is_empty() {
            errors.push(UserSetError::Empty);
        }
        if errors.is_empty() {
            Ok(Self(users))
        } else {
            Err(errors)
        }
    }

    /// This set and `more`, together.
    pub fn with(mut self, more: impl IntoIterator<Item = UserId>) -> Self {
        self.0.extend(more);
        self
    }

    pub fn iter(&self) -> btree_set::Iter<'_, UserId> {
        self.0.iter()
    }

    pub fn contains(&self, user: &UserId) -> bool {
        self.0.contains(user)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True only for a policy of teams whose members are not known yet.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a UserSet {
    type Item = &'a UserId;
    type IntoIter = btree_set::Iter<'a, UserId>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_set_rejects_an_empty_list() {
        assert_eq!(
            UserSet::parse(Vec::<&str>::new()),
            Err(vec![UserSetError::Empty])
        );
        assert_eq!(UserSet::new(BTreeSet::new()), None);
    }

    #[test]
    fn user_set_reports_every_bad_id() {
        let errors = UserSet::parse(["ok", "", "a\nb"]).unwrap_err();
        assert_eq!(
            errors,
            vec![
                UserSetError::BadUser {
                    value: String::new(),
                    error: UserIdError::Empty
                },
                UserSetError::BadUser {
                    value: "a\nb".into(),
                    error: UserIdError::ControlCharacter(1)
                },
            ]
        );
    }

    #[test]
    fn user_set_collapses_duplicates() {
        let users = UserSet::parse(["u1", "u1", "u2"]).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.contains(&UserId::parse("u2").unwrap()));
    }

    proptest! {
        #[test]
        fn any_printable_ids_make_a_set(ids in prop::collection::vec("[a-zA-Z0-9 &=#%]{1,20}", 1..10)) {
            let users = UserSet::parse(&ids).unwrap();
            for id in &ids {
                prop_assert!(users.contains(&UserId::parse(id.as_str()).unwrap()));
            }
        }
    }
}
