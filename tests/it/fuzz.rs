//! Fuzz targets for the parsers that read what comes from outside the
//! process: the cron expression and the policy row (an operator's SQL),
//! the vendor's answers and its `Retry-After`, and the token answer.
//!
//! Each target is a function of bytes that must return, never panic, and
//! checks what it can of its result. It runs in the normal test run, over
//! (1) every file of its corpus, `tests/it/fuzz/corpus/<target>/`, and
//! (2) a bounded number of generated inputs, [`cases`] (2,000 unless
//! `RECSCHED_FUZZ_CASES` says otherwise; well under a second a target): most
//! are corpus files with a few random edits, the rest random bytes.
//! A longer run is `RECSCHED_FUZZ_CASES=200000 cargo test --test it fuzz::`.
//!
//! Why not bolero or cargo-fuzz: there is no nightly here, and bolero's
//! derive pins `indexmap =2.11.2` and `toml_datetime =0.6.3`, which would
//! downgrade the daemon's own `config` and `toml` crates. proptest is
//! already a dev-dependency and drives the same targets on stable.
//!
//! A crash found is kept twice, as rust-lang/regex does: its bytes go in
//! the target's corpus, and a plain `#[test]` in [`crashes`] names it and
//! says what it broke.

mod classify;
mod crashes;
mod cron;
mod policy_row;
mod retry_after;
mod token_answer;

use proptest::prelude::*;
use std::path::PathBuf;

/// Generated inputs per target in this run.
pub fn cases() -> u32 {
    std::env::var("RECSCHED_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fuzz/corpus")
        .join(target)
}

/// Every corpus file of `target`, named, in name order.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
}

/// One corpus file by name (for the crash tests).
pub fn corpus_file(target: &str, name: &str) -> Vec<u8> {
    let path = corpus_dir(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `check` over every corpus file, naming the file that fails.
pub fn replay(target: &str, check: fn(&[u8])) {
    for (name, bytes) in corpus(target) {
        let caught = std::panic::catch_unwind(|| check(&bytes));
        assert!(
            caught.is_ok(),
            "corpus/{target}/{name} broke the target: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

/// Fragments that tend to matter to parsers of numbers, times and JSON,
/// spliced in by [`inputs`].
const DICTIONARY: &[&str] = &[
    "0",
    "-1",
    "9999999999999",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "1e309",
    "-1e308",
    "0.5",
    "NaN",
    "null",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\n",
    "\\u0000",
    "*",
    "/",
    "-",
    "?",
    "L",
    "W",
    "#",
    "@",
    "é",
    "\u{202e}",
    "\u{feff}",
    "GMT",
    "Feb",
    "29",
    "31",
];

fn mutate(seed: &[u8], edits: &[(u16, u8, u8)]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(pos, byte, kind) in edits {
        let at = usize::from(pos) % (v.len() + 1);
        match kind % 4 {
            0 => v.insert(at, byte),
            1 => {
                if at < v.len() {
                    v.remove(at);
                }
            }
            2 => {
                if let Some(b) = v.get_mut(at) {
                    *b = byte;
                }
            }
            _ => {
                let word = DICTIONARY[usize::from(byte) % DICTIONARY.len()].as_bytes();
                v.splice(at..at, word.iter().copied());
            }
        }
    }
    v
}

/// Generated inputs for `target`: mostly corpus files with up to eight
/// random edits (inserts, deletions, replaced bytes, dictionary words),
/// and random bytes.
pub fn inputs(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, b)| b).collect();
    let mutated = (
        proptest::sample::select(seeds),
        proptest::collection::vec(any::<(u16, u8, u8)>(), 0..8),
    )
        .prop_map(|(seed, edits)| mutate(&seed, &edits));
    let random = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![4 => mutated, 1 => random]
}

/// The proptest settings of a target: [`cases`] inputs, nothing written
/// to the source tree (a failure prints its minimal input; keep it in the
/// corpus and in [`crashes`]).
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A target's two tests: the corpus replay and the generated inputs.
macro_rules! fuzz_target {
    ($target:literal, $check:path) => {
        #[test]
        fn corpus_replays() {
            $crate::fuzz::replay($target, $check);
        }

        proptest::proptest! {
            #![proptest_config($crate::fuzz::config())]
            #[test]
            fn generated_inputs(data in $crate::fuzz::inputs($target)) {
                $check(&data);
            }
        }
    };
}
pub(crate) use fuzz_target;

#[test]
fn mutations_stay_in_bounds_and_change_inputs() {
    assert_eq!(mutate(b"", &[(9, b'x', 0)]), b"x");
    assert_eq!(mutate(b"ab", &[(1, 0, 1)]), b"a");
    assert_eq!(mutate(b"ab", &[(4, b'z', 2)]), b"az");
    assert_eq!(mutate(b"", &[(0, 0, 1), (0, 0, 2)]), b"");
    assert_eq!(mutate(b"ab", &[(1, 0, 3)]), b"a0b");
}
