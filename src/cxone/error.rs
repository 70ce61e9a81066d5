//! `CxoneError`: what went wrong talking to the vendor, and what the caller
//! should do about it ([`Action`]). The classification lives here because
//! this layer knows what a 425 or a 404 means; the caller knows whether
//! its window still has time left.

use std::time::Duration;

/// What a caller should do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Try again later (425, 504, other 5xx, 429, transport errors,
    /// timeouts); `retry_after` when the server said how long to wait.
    /// `server_error` marks a 500, which is retried only a few times.
    Retry {
        retry_after: Option<Duration>,
        server_error: bool,
    },
    /// Fetch a new token, then try once more (401).
    Reauthenticate,
    /// Do not try again (400, 403, 404 on a start, other 4xx, a 3xx, a
    /// malformed success body, a configuration problem). A stop's 404 is not an
    /// error at all: it is `Stopped::AlreadyEnded`.
    Final,
}

/// Why a call to the vendor did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CxoneError {
    #[error("CXone answered HTTP {status}: {body}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
        /// The response body, truncated to 2 KiB.
        body: String,
    },
    #[error(
        "CXone answered HTTP {status} with a body that is not a start answer ({reason}): {body}"
    )]
    MalformedBody {
        status: u16,
        reason: String,
        /// The raw body, truncated to 2 KiB, kept for the audit trail.
        body: String,
    },
    /// A 3xx. No redirect is followed: it would carry the bearer token (or,
    /// at the token endpoint, the secrets) to wherever `Location` points.
    #[error(
        "CXone answered HTTP {status}, a redirect to {to}; recsched follows no redirect, so \
         that a token or secret never goes to another host: check that {setting} is the \
         endpoint itself"
    )]
    Redirected {
        status: u16,
        /// Where it pointed: `host `name``, or why there is no host.
        to: String,
        /// The setting holding the URL that was redirected.
        setting: &'static str,
    },
    #[error("no answer from CXone within {0:?}")]
    Timeout(Duration),
    #[error("could not reach CXone: {0}")]
    Transport(String),
    #[error("CXone token request failed: {message}")]
    Token {
        message: String,
        /// `false` when the endpoint rejected our credentials: no retry
        /// will fix that, the operator must.
        retryable: bool,
    },
    #[error("CXone client is misconfigured: {0}")]
    Config(String),
    /// The directory answered something that is not a page of users, or
    /// paging did not add up. Retried a few times, like a 500.
    #[error("CXone directory: {0}")]
    Directory(String),
    /// Finding the endpoints from `cxone.issuer` failed.
    #[error("CXone discovery failed: {message}")]
    Discovery {
        message: String,
        /// `false` when only the operator can fix it (a redirect, a 4xx,
        /// a token without a tenant id).
        retryable: bool,
    },
    /// Shutdown came while the request waited for its turn: it was never
    /// sent.
    #[error("not sent: shutting down")]
    Shutdown,
    /// The caller's [`Gate`](super::Gate) withdrew the request just before
    /// it would have left (its recording row is no longer this instance's):
    /// it was never sent.
    #[error("not sent: withdrawn by the caller")]
    Withdrawn,
}

impl CxoneError {
    /// What the caller should do next.
    pub fn action(&self) -> Action {
        match self {
            Self::Status {
                status,
                retry_after,
                ..
            } => classify_status(*status, *retry_after),
            Self::Timeout(_) | Self::Transport(_) => Action::Retry {
                retry_after: None,
                server_error: false,
            },
            // The token endpoint being down is as transient as the API being
            // down; a rejected credential is not (see auth.rs).
            Self::Token {
                retryable: true, ..
            } => Action::Retry {
                retry_after: None,
                server_error: false,
            },
            Self::Token { .. } => Action::Final,
            Self::Discovery {
                retryable: true, ..
            } => Action::Retry {
                retry_after: None,
                server_error: false,
            },
            Self::Discovery { .. } => Action::Final,
            Self::Directory(_) => Action::Retry {
                retry_after: None,
                server_error: true,
            },
            Self::MalformedBody { .. }
            | Self::Redirected { .. }
            | Self::Config(_)
            | Self::Shutdown
            | Self::Withdrawn => Action::Final,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. }
            | Self::MalformedBody { status, .. }
            | Self::Redirected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The classification of an error status as a pure function.
///
/// A 404 here is final: for a stop, `classify` turns 404 into
/// `Stopped::AlreadyEnded` before this is ever asked.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Action {
    match status {
        401 => Action::Reauthenticate,
        425 | 429 | 408 | 502 | 503 | 504 => Action::Retry {
            retry_after,
            server_error: false,
        },
        500 => Action::Retry {
            retry_after,
            server_error: true,
        },
        s if s >= 505 => Action::Retry {
            retry_after,
            server_error: true,
        },
        _ => Action::Final,
    }
}
