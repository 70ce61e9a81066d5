//! Drives start and stop calls through retries up to a deadline.
//!
//! Each attempt is one exchange, shown to an [`Observer`] (the daemon
//! writes it to the `attempts` table) before anything else happens. The
//! delay between attempts comes from the pure [`RetryPolicy`]; a 401 is
//! answered by renewing the token and trying once more at once. A start
//! re-asks for the time that remains before every attempt, so a retried
//! start never asks for more than what is left of its segment, and no
//! attempt is sent once less than the 5 s minimum remains.

use super::{Action, Attempt, Client, CxoneError, Exchange, Gate, Started, Stopped};
use crate::clock::Clock;
use crate::recording::{ContactId, RecordingDuration, UserId};
use crate::retry::{Decision, RetryPolicy};
use chrono::{DateTime, Utc};
use std::future::Future;

/// Sees every exchange as it happens.
pub trait Observer: Send {
    /// Called once per exchange, with the 1-based attempt number.
    fn exchange(
        &mut self,
        exchange: &Exchange,
        attempt: u32,
        error: Option<&CxoneError>,
    ) -> impl Future<Output = ()> + Send;
}

/// Observes nothing.
impl Observer for () {
    async fn exchange(&mut self, _: &Exchange, _: u32, _: Option<&CxoneError>) {}
}

/// Collects exchanges in memory (tests, the demo's smoke call).
impl Observer for Vec<(Exchange, u32, Option<String>)> {
    async fn exchange(&mut self, exchange: &Exchange, attempt: u32, error: Option<&CxoneError>) {
        self.push((exchange.clone(), attempt, error.map(ToString::to_string)));
    }
}

/// Why a call was given up.
#[derive(Debug, thiserror::Error)]
pub enum GiveUp {
    /// The vendor said no in a way no retry can change.
    #[error("final error after {attempts} attempt(s): {error}")]
    Final { error: CxoneError, attempts: u32 },
    /// The next attempt would start past the deadline.
    #[error("deadline passed after {attempts} attempt(s); last error: {error}")]
    Deadline { error: CxoneError, attempts: u32 },
    /// Shutdown arrived while waiting to retry; the call is left unfinished
    /// (the caller keeps its row open for the next start to resolve). Also
    /// when `cancel` is the caller's own token and it was cancelled.
    #[error("shut down while waiting to retry, after {attempts} attempt(s)")]
    Cancelled { attempts: u32 },
    /// The [`Gate`] withdrew the next attempt before it left.
    #[error("withdrawn by the caller after {attempts} attempt(s)")]
    Withdrawn { attempts: u32 },
    /// Less than the 5 s minimum was left to ask for (a start only).
    #[error("less than 5 s of the window remained after {attempts} attempt(s){}", last.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    NoTimeLeft {
        last: Option<CxoneError>,
        attempts: u32,
    },
}

impl GiveUp {
    /// How many exchanges were made.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Final { attempts, .. }
            | Self::Deadline { attempts, .. }
            | Self::NoTimeLeft { attempts, .. }
            | Self::Cancelled { attempts }
            | Self::Withdrawn { attempts } => *attempts,
        }
    }
}

/// What every retried call needs besides the call itself.
pub struct Retrying<'a, O> {
    pub client: &'a Client,
    pub policy: &'a RetryPolicy,
    pub clock: &'a dyn Clock,
    /// A sample in `[0, 1)` per backoff (full jitter).
    pub jitter: &'a mut (dyn FnMut() -> f64 + Send),
    pub observer: &'a mut O,
    /// Cancels waits between attempts (never a request in flight).
    pub cancel: &'a tokio_util::sync::CancellationToken,
    /// Has the last word before each attempt leaves ([`super::Open`]
    /// lets every one go).
    pub gate: &'a dyn Gate,
}

impl<O: Observer> Retrying<'_, O> {
    /// Starts `user`'s recording so that it ends at `segment_end` (plus
    /// `overrun`, for recordings an explicit stop will end): every attempt
    /// asks for [`RecordingDuration::remaining`]; no attempt is sent once less than
    /// the 5 s minimum of the segment itself remains.
    pub async fn start(
        &mut self,
        user: &UserId,
        segment_end: DateTime<Utc>,
        overrun: chrono::Duration,
    ) -> Result<(Started, u32), GiveUp> {
        let deadline =
            segment_end - chrono::Duration::seconds(i64::from(RecordingDuration::MIN_SECS));
        let client = self.client;
        let clock = self.clock;
        let gate = self.gate;
        self.drive(deadline, |_| async move {
            let now = clock.now();
            RecordingDuration::remaining(segment_end, now)?;
            let duration = RecordingDuration::remaining(segment_end + overrun, now)?;
            Some(client.start_gated(user, duration, gate).await)
        })
        .await
    }

    /// Stops `user`'s recording `contact`, retrying until `deadline`.
    pub async fn stop(
        &mut self,
        user: &UserId,
        contact: ContactId,
        deadline: DateTime<Utc>,
    ) -> Result<(Stopped, u32), GiveUp> {
        let client = self.client;
        let gate = self.gate;
        self.drive(deadline, |_| async move {
            Some(client.stop_gated(user, contact, gate).await)
        })
        .await
    }

    async fn drive<T, F, Fut>(
        &mut self,
        deadline: DateTime<Utc>,
        mut call: F,
    ) -> Result<(T, u32), GiveUp>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Option<Attempt<T>>>,
    {
        let mut attempt = 0u32;
        let mut renewed = false;
        let mut server_errors = 0u32;
        let mut last: Option<CxoneError> = None;
        loop {
            let Some(a) = call(attempt + 1).await else {
                return Err(GiveUp::NoTimeLeft {
                    last,
                    attempts: attempt,
                });
            };
            match a.result {
                Err(CxoneError::Shutdown) => return Err(GiveUp::Cancelled { attempts: attempt }),
                Err(CxoneError::Withdrawn) => return Err(GiveUp::Withdrawn { attempts: attempt }),
                _ => {}
            }
            attempt += 1;
            self.observer
                .exchange(&a.exchange, attempt, a.result.as_ref().err())
                .await;
            let error = match a.result {
                Ok(v) => return Ok((v, attempt)),
                Err(e) => e,
            };
            let retry_after = match error.action() {
                Action::Reauthenticate if !renewed => {
                    renewed = true;
                    if let Some(token) = &a.token {
                        self.client.tokens.invalidate(token).await;
                    }
                    last = Some(error);
                    continue;
                }
                Action::Retry {
                    retry_after,
                    server_error,
                } => {
                    server_errors += u32::from(server_error);
                    if server_errors > self.policy.max_server_errors {
                        return Err(GiveUp::Final {
                            error,
                            attempts: attempt,
                        });
                    }
                    retry_after
                }
                Action::Reauthenticate | Action::Final => {
                    return Err(GiveUp::Final {
                        error,
                        attempts: attempt,
                    })
                }
            };
            let jitter = (self.jitter)();
            let now = self.clock.now();
            match self
                .policy
                .next_delay(attempt, retry_after, jitter, now, deadline)
            {
                Decision::Wait(d) => {
                    tokio::select! {
                        () = self.clock.sleep(d) => {}
                        () = self.cancel.cancelled() => {
                            return Err(GiveUp::Cancelled { attempts: attempt });
                        }
                    }
                    last = Some(error);
                }
                Decision::GiveUp => {
                    return Err(GiveUp::Deadline {
                        error,
                        attempts: attempt,
                    })
                }
            }
        }
    }
}
