//! Every crash the targets (or the issue tracker) ever found, as a plain
//! test over its committed corpus bytes, saying what it broke.

use recsched::cxone::token_answer::{parse, MAX_LIFETIME, MIN_LIFETIME};

/// Issue 12, case 5: `expires_in` 9999999999999 overflowed `now +
/// lifetime` in the token cache and panicked every start.
#[test]
fn absurd_expires_in_is_clamped_to_a_day() {
    let bytes = super::corpus_file("token_answer", "absurd-expires-in");
    super::token_answer::check(&bytes);
    assert_eq!(parse(&bytes).unwrap().lifetime, MAX_LIFETIME);
}

/// Issue 12, case 5: `expires_in` 1 was shorter than the renewal margin,
/// so every call fetched a token of its own.
#[test]
fn tiny_expires_in_is_clamped_to_a_minute() {
    let bytes = super::corpus_file("token_answer", "tiny-expires-in");
    super::token_answer::check(&bytes);
    assert_eq!(parse(&bytes).unwrap().lifetime, MIN_LIFETIME);
}

/// Issue 12, case 7: `Retry-After: 0` was taken at its word.
#[test]
fn retry_after_zero_waits_the_backoff() {
    super::retry_after::check(&super::corpus_file("retry_after", "zero"));
}
