//! Fault injection: which misbehaviour of the vendor API a request meets.
//!
//! The point of the simulator is to let the client and daemon meet every
//! answer `API.md` allows (425 with `Retry-After`, 500, 504 before and after
//! the call took effect, 202, a contact id as a string, an unreadable body,
//! slowness, a vendor with few workers) on demand and reproducibly.
//!
//! Beside the rates, a few knobs make one thing misbehave every time, for
//! the tests of a hostile vendor: the token endpoint advertising an absurd
//! or tiny `expires_in`, or redirecting to another host; and one user's
//! calls meeting a [`UserFault`] (425 for ever, a redirect, a body without
//! end, an over-long `interactionId`).
//!
//! Reproducibility: each start or stop request takes one [`Draw`] from a
//! single RNG seeded with [`Faults::seed`], in arrival order, whatever the
//! request's outcome. A draw is always the same fixed block of samples, so
//! the same seed and the same request sequence give the same statuses,
//! whichever knobs are turned. Deciding from a draw is pure ([`Faults::injected`],
//! [`Faults::latency`], ...), so it is unit-tested without a server.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::HeaderValue;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The fault set. Every knob defaults to off; a rate is a probability in
/// `0.0..=1.0` per start or stop request. `/auth/token` meets only the
/// `token_*` knobs, and `/_sim/*` never meets faults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Answer 425 ("interaction locked") without effect.
    pub rate_425: f64,
    /// Answer 500 without effect.
    pub rate_500: f64,
    /// Answer 504 without effect.
    pub rate_504: f64,
    /// Carry the call out (the recording starts, the stop ends it), then
    /// answer 504 anyway: the ambiguous case of `API.md`.
    pub rate_504_after_start: f64,
    /// Answer a fraction of successful starts with 202 instead of 200.
    pub rate_202: f64,
    /// Sent as `Retry-After` (seconds) with every injected 425.
    pub retry_after_secs: Option<u64>,
    /// Answer a fraction of 2xx with `contactId` as a JSON string of digits.
    pub contact_id_as_string_rate: f64,
    /// Answer a fraction of 2xx with a body that is not JSON; the call
    /// still takes effect.
    pub malformed_body_rate: f64,
    /// Fixed latency added to every start and stop.
    pub latency_ms: u64,
    /// Uniformly random extra latency, `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    /// Fraction of requests that meet a latency spike of `spike_ms` extra.
    pub spike_rate: f64,
    /// Extra latency of a spike.
    pub spike_ms: u64,
    /// At most this many start/stop requests are worked on at once; the
    /// others wait for a slot, like a vendor with few workers.
    pub max_concurrency: Option<usize>,
    /// Seed of the fault RNG. Setting the fault set restarts the sequence.
    pub seed: u64,
    /// Sent as `expires_in` in token answers instead of the real lifetime
    /// (`token_ttl_secs`, which the simulator still enforces): a token
    /// endpoint whose answer is absurd (`9999999999999`) or tiny (`1`).
    pub token_expires_in: Option<i64>,
    /// Answer `/auth/token` with `307 Temporary Redirect` to this
    /// `Location`, issuing nothing.
    pub token_redirect: Option<String>,
    /// Redirect only the first this-many token requests after the fault
    /// set took effect; `None`: all of them.
    pub token_redirect_limit: Option<u64>,
    /// Sent as `resource_server_base_uri` and `refresh_token_server_uri`
    /// (`{base}/auth/token`) in token answers instead of the simulator's
    /// own URL. A client must use neither: its endpoints are configured.
    pub token_advertised_base: Option<String>,
    /// A fault for every start and stop of one user (by user id), whatever
    /// the rates.
    pub user_faults: BTreeMap<String, UserFault>,
    /// Sent as `api_endpoint` by `/.well-known/cxone-configuration`
    /// instead of the simulator's own URL; `""` leaves `api_endpoint` out
    /// (a client then builds the host from `area` and `domain`).
    pub discovery_api_endpoint: Option<String>,
    /// Answer both `/.well-known/` documents with 503.
    pub discovery_unavailable: bool,
    /// The user search is down: its connection is dropped mid-answer.
    pub search_down: bool,
    /// Answer every user search with this status (e.g. 503).
    pub search_status: Option<u16>,
    /// Latency added to every user search.
    pub search_latency_ms: u64,
    /// Answer 500 to every user search whose `skip` is at least this: a
    /// paging that fails half-way.
    pub search_fail_from_skip: Option<u64>,
}

/// What one user's start and stop requests meet, every time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum UserFault {
    /// 425 without effect, with `Retry-After: {retry_after_secs}` when
    /// that is set (`0` makes the hammering case).
    Locked,
    /// `307 Temporary Redirect` to `location`, without effect.
    Redirect { location: String },
    /// Take effect, then answer with a body of `bytes` bytes: JSON that
    /// would parse if read whole (a long `description`, then the contact
    /// id). It is streamed, so a huge one costs nothing unless read.
    OversizedBody { bytes: u64 },
    /// Take effect, then answer with an `interactionId` of `chars`
    /// characters.
    LongInteractionId { chars: usize },
}

/// The longest `interactionId` a [`UserFault::LongInteractionId`] makes.
pub const MAX_FAULT_INTERACTION_ID_CHARS: usize = 1 << 20;

/// Why a fault set was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultsError {
    #[error("fault `{name}` is {value}; a rate must be between 0.0 and 1.0")]
    RateOutOfRange { name: &'static str, value: f64 },
    #[error("fault `max_concurrency` is 0; use at least 1, or leave it out for no limit")]
    ZeroConcurrency,
    #[error("fault `{name}` location `{value}` cannot be sent as a Location header")]
    BadLocation { name: String, value: String },
    #[error(
        "fault `user_faults.{user}` asks for a {chars}-character interactionId; at most \
         {MAX_FAULT_INTERACTION_ID_CHARS}"
    )]
    InteractionIdTooLong { user: String, chars: usize },
    #[error("fault `search_status` is {0}; use an error status, 400 to 599")]
    SearchStatus(u16),
}

/// A fault that replaces or follows the real handling of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Handle the request as the vendor would.
    None,
    /// 425 without effect.
    Locked,
    /// 500 without effect.
    InternalError,
    /// 504 without effect.
    Timeout,
    /// Take effect, then answer 504.
    TimeoutAfterEffect,
}

/// One request's fixed block of uniform samples in `0.0..1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    fault: f64,
    accepted: f64,
    string_id: f64,
    malformed: f64,
    jitter: f64,
    spike: f64,
}

impl Draw {
    /// Takes the next draw from `rng`: always six samples, in this order.
    pub fn take(rng: &mut SmallRng) -> Self {
        Self {
            fault: rng.random(),
            accepted: rng.random(),
            string_id: rng.random(),
            malformed: rng.random(),
            jitter: rng.random(),
            spike: rng.random(),
        }
    }
}

/// How a 2xx is to be dressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dressing {
    /// 202 instead of 200 (starts only).
    pub accepted: bool,
    /// `contactId` as a string of digits.
    pub contact_id_as_string: bool,
    /// A body that is not JSON.
    pub malformed: bool,
}

impl Faults {
    /// Checks every rate is a probability and the concurrency limit can
    /// ever admit a request.
    pub fn validate(&self) -> Result<(), FaultsError> {
        let rates = [
            ("rate_425", self.rate_425),
            ("rate_500", self.rate_500),
            ("rate_504", self.rate_504),
            ("rate_504_after_start", self.rate_504_after_start),
            ("rate_202", self.rate_202),
            ("contact_id_as_string_rate", self.contact_id_as_string_rate),
            ("malformed_body_rate", self.malformed_body_rate),
            ("spike_rate", self.spike_rate),
        ];
        for (name, value) in rates {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultsError::RateOutOfRange { name, value });
            }
        }
        if self.max_concurrency == Some(0) {
            return Err(FaultsError::ZeroConcurrency);
        }
        let location = |name: String, value: &str| {
            HeaderValue::from_str(value)
                .map(drop)
                .map_err(|_| FaultsError::BadLocation {
                    name,
                    value: value.to_owned(),
                })
        };
        if let Some(to) = &self.token_redirect {
            location("token_redirect".to_owned(), to)?;
        }
        if let Some(status) = self.search_status {
            if !(400..=599).contains(&status) {
                return Err(FaultsError::SearchStatus(status));
            }
        }
        for (user, fault) in &self.user_faults {
            match fault {
                UserFault::Redirect { location: to } => {
                    location(format!("user_faults.{user}"), to)?;
                }
                UserFault::LongInteractionId { chars }
                    if *chars > MAX_FAULT_INTERACTION_ID_CHARS =>
                {
                    return Err(FaultsError::InteractionIdTooLong {
                        user: user.clone(),
                        chars: *chars,
                    })
                }
                UserFault::Locked
                | UserFault::OversizedBody { .. }
                | UserFault::LongInteractionId { .. } => {}
            }
        }
        Ok(())
    }

    /// A fresh RNG for this fault set's seed.
    pub fn rng(&self) -> SmallRng {
        SmallRng::seed_from_u64(self.seed)
    }

    /// Which fault the request meets. One sample decides among the
    /// status faults, cumulatively in the order 425, 500, 504,
    /// 504-after-effect: with rates 0.5 and 0.5 half the requests get each.
    /// If the rates add up past 1.0 the later ones get what is left.
    pub fn injected(&self, draw: &Draw) -> Injected {
        let mut upper = 0.0;
        for (rate, fault) in [
            (self.rate_425, Injected::Locked),
            (self.rate_500, Injected::InternalError),
            (self.rate_504, Injected::Timeout),
            (self.rate_504_after_start, Injected::TimeoutAfterEffect),
        ] {
            upper += rate;
            if draw.fault < upper {
                return fault;
            }
        }
        Injected::None
    }

    /// How a successful answer is dressed. `accepted` is only honoured for
    /// starts by the caller.
    pub fn dressing(&self, draw: &Draw) -> Dressing {
        Dressing {
            accepted: draw.accepted < self.rate_202,
            contact_id_as_string: draw.string_id < self.contact_id_as_string_rate,
            malformed: draw.malformed < self.malformed_body_rate,
        }
    }

    /// The request's latency: fixed part, jitter, and a spike if it meets one.
    pub fn latency(&self, draw: &Draw) -> Duration {
        // jitter is uniform over 0..=latency_jitter_ms whole milliseconds.
        let jitter = (draw.jitter * (self.latency_jitter_ms as f64 + 1.0)).floor() as u64;
        let jitter = jitter.min(self.latency_jitter_ms);
        let spike = if draw.spike < self.spike_rate {
            self.spike_ms
        } else {
            0
        };
        Duration::from_millis(self.latency_ms.saturating_add(jitter).saturating_add(spike))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(fault: f64) -> Draw {
        Draw {
            fault,
            accepted: 0.5,
            string_id: 0.5,
            malformed: 0.5,
            jitter: 0.5,
            spike: 0.5,
        }
    }

    #[test]
    fn default_faults_inject_nothing_and_add_no_latency() {
        let f = Faults::default();
        let mut rng = f.rng();
        for _ in 0..1000 {
            let d = Draw::take(&mut rng);
            assert_eq!(f.injected(&d), Injected::None);
            assert_eq!(f.dressing(&d), Dressing::default());
            assert_eq!(f.latency(&d), Duration::ZERO);
        }
    }

    #[test]
    fn each_status_fault_at_rate_one_always_fires() {
        let cases = [
            (
                Faults {
                    rate_425: 1.0,
                    ..Faults::default()
                },
                Injected::Locked,
            ),
            (
                Faults {
                    rate_500: 1.0,
                    ..Faults::default()
                },
                Injected::InternalError,
            ),
            (
                Faults {
                    rate_504: 1.0,
                    ..Faults::default()
                },
                Injected::Timeout,
            ),
            (
                Faults {
                    rate_504_after_start: 1.0,
                    ..Faults::default()
                },
                Injected::TimeoutAfterEffect,
            ),
        ];
        for (faults, want) in cases {
            for x in [0.0, 0.3, 0.999_999] {
                assert_eq!(faults.injected(&draw(x)), want, "{faults:?} at {x}");
            }
        }
    }

    #[test]
    fn status_rates_split_one_sample_cumulatively() {
        let f = Faults {
            rate_425: 0.25,
            rate_500: 0.25,
            ..Faults::default()
        };
        assert_eq!(f.injected(&draw(0.1)), Injected::Locked);
        assert_eq!(f.injected(&draw(0.3)), Injected::InternalError);
        assert_eq!(f.injected(&draw(0.6)), Injected::None);
    }

    #[test]
    fn same_seed_gives_same_draws() {
        let f = Faults {
            seed: 42,
            ..Faults::default()
        };
        let (mut a, mut b) = (f.rng(), f.rng());
        for _ in 0..100 {
            assert_eq!(Draw::take(&mut a), Draw::take(&mut b));
        }
        let mut c = Faults {
            seed: 43,
            ..Faults::default()
        }
        .rng();
        let mut a = f.rng();
        let same = (0..100).all(|_| Draw::take(&mut a) == Draw::take(&mut c));
        assert!(!same, "different seeds must give different draws");
    }

    #[test]
    fn latency_adds_fixed_jitter_and_spike() {
        let f = Faults {
            latency_ms: 100,
            latency_jitter_ms: 10,
            spike_rate: 0.5,
            spike_ms: 1000,
            ..Faults::default()
        };
        let low = Draw {
            jitter: 0.0,
            spike: 0.9,
            ..draw(0.0)
        };
        let high = Draw {
            jitter: 0.999_999,
            spike: 0.1,
            ..draw(0.0)
        };
        assert_eq!(f.latency(&low), Duration::from_millis(100));
        assert_eq!(f.latency(&high), Duration::from_millis(1110));
    }

    #[test]
    fn rates_outside_zero_to_one_and_zero_concurrency_are_refused() {
        let bad_rate = Faults {
            rate_504: 1.5,
            ..Faults::default()
        };
        assert!(matches!(
            bad_rate.validate(),
            Err(FaultsError::RateOutOfRange {
                name: "rate_504",
                ..
            })
        ));
        let nan = Faults {
            spike_rate: f64::NAN,
            ..Faults::default()
        };
        assert!(nan.validate().is_err());
        let zero = Faults {
            max_concurrency: Some(0),
            ..Faults::default()
        };
        assert_eq!(zero.validate(), Err(FaultsError::ZeroConcurrency));
        assert_eq!(Faults::default().validate(), Ok(()));
    }

    #[test]
    fn user_faults_and_token_knobs_parse_and_are_validated() {
        let f: Faults = serde_json::from_str(
            r#"{"token_expires_in": 9999999999999,
                "token_redirect": "http://127.0.0.2:1/auth/token",
                "token_redirect_limit": 1,
                "user_faults": {
                    "a": {"fault": "locked"},
                    "b": {"fault": "redirect", "location": "http://127.0.0.2:1/x"},
                    "c": {"fault": "oversized_body", "bytes": 10000000},
                    "d": {"fault": "long_interaction_id", "chars": 300}
                }}"#,
        )
        .unwrap();
        assert_eq!(f.token_expires_in, Some(9_999_999_999_999));
        assert_eq!(f.user_faults["a"], UserFault::Locked);
        assert_eq!(
            f.user_faults["c"],
            UserFault::OversizedBody { bytes: 10_000_000 }
        );
        assert_eq!(f.validate(), Ok(()));
        let bad = Faults {
            token_redirect: Some("http://x/\n".to_owned()),
            ..Faults::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(FaultsError::BadLocation { .. })
        ));
        let long = Faults {
            user_faults: [(
                "u".to_owned(),
                UserFault::LongInteractionId { chars: usize::MAX },
            )]
            .into(),
            ..Faults::default()
        };
        assert!(matches!(
            long.validate(),
            Err(FaultsError::InteractionIdTooLong { .. })
        ));
        assert!(
            serde_json::from_str::<Faults>(r#"{"user_faults":{"a":{"fault":"nope"}}}"#).is_err()
        );
    }

    #[test]
    fn unknown_fault_names_are_refused_when_parsing() {
        let typo = serde_json::from_str::<Faults>(r#"{"rate425": 1.0}"#);
        assert!(typo.is_err());
        let partial: Faults = serde_json::from_str(r#"{"rate_425": 1.0}"#).unwrap();
        assert_eq!(partial.rate_425, 1.0);
        assert_eq!(partial.rate_500, 0.0);
    }
}
