//! The two vendor API calls, start and stop, as one pipeline:
//! draw faults (arrival order) -> wait for a worker slot -> latency ->
//! bearer check -> injected status or the real call -> dressed answer.
//!
//! The order is the one a caller would see from a real vendor with a
//! gateway in front: slowness and queueing happen to every call, an
//! injected 425/500/504 replaces the call's effect, a 504 after the effect
//! hides a call that did happen, and only a call that succeeded can come
//! back as 202, with a string contact id or with an unreadable body. A
//! user's own fault ([`UserFault`]) comes before the drawn ones: a
//! 425 or a redirect instead of the call, or, after the call took
//! effect, a body without end or an over-long `interactionId`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};

use super::auth;
use super::faults::{Dressing, Injected, UserFault};
use super::params::{self, ParamError, StartParams, StopParams};
use super::state::Shared;

/// The API paths' two spellings (`API.md`: the example omits `/v1`).
pub const PREFIXES: [&str; 2] = [
    "/interaction-recording-management-service/v1/interactions",
    "/interaction-recording-management-service/interactions",
];
pub const START: &str = "/start-screen-interaction-recording";
pub const STOP: &str = "/stop-screen-interaction-recording";

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Start,
    Stop,
}

/// Why a call had no effect.
enum Refused {
    /// 400, with the reason.
    BadRequest(String),
    /// 404: nothing to stop.
    NotFound,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(message) => error(StatusCode::BAD_REQUEST, &message),
            Self::NotFound => error(StatusCode::NOT_FOUND, "no interactive interactions found"),
        }
    }
}

/// A call that took effect.
struct Done {
    description: &'static str,
    contact_id: u64,
    interaction_id: String,
}

/// `POST {prefix}/start-screen-interaction-recording`.
pub async fn start(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    pairs: Pairs,
) -> Response {
    handle(&shared, &headers, pairs, Call::Start).await
}

/// `POST {prefix}/stop-screen-interaction-recording`.
pub async fn stop(State(shared): State<Arc<Shared>>, headers: HeaderMap, pairs: Pairs) -> Response {
    handle(&shared, &headers, pairs, Call::Stop).await
}

async fn handle(shared: &Shared, headers: &HeaderMap, pairs: Pairs, call: Call) -> Response {
    let (faults, draw) = shared.draw();
    let _slot = tokio::select! {
        slot = shared.gate.acquire() => slot,
        () = shared.stopping.cancelled() => return shutting_down(),
    };
    let latency = faults.latency(&draw);
    if !latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = shared.stopping.cancelled() => return shutting_down(),
        }
    }
    if !auth::has_valid_bearer(shared, headers) {
        return auth::unauthorized();
    }
    let user_fault = pairs
        .as_ref()
        .ok()
        .and_then(|Query(p)| params::user_of(p))
        .and_then(|user| faults.user_faults.get(user))
        .cloned();
    match &user_fault {
        Some(UserFault::Locked) => return locked(faults.retry_after_secs),
        Some(UserFault::Redirect { location }) => return redirect(location),
        _ => {}
    }
    let injected = faults.injected(&draw);
    match injected {
        Injected::Locked => return locked(faults.retry_after_secs),
        Injected::InternalError => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
        Injected::Timeout => return gateway_timeout(),
        Injected::None | Injected::TimeoutAfterEffect => {}
    }
    let outcome = carry_out(shared, pairs, call);
    if injected == Injected::TimeoutAfterEffect {
        return gateway_timeout();
    }
    match outcome {
        Ok(mut done) => {
            match user_fault {
                Some(UserFault::OversizedBody { bytes }) => return oversized(&done, bytes),
                Some(UserFault::LongInteractionId { chars }) => {
                    let mut long: String = done.interaction_id.chars().take(chars).collect();
                    let short = chars.saturating_sub(long.chars().count());
                    long.extend(std::iter::repeat_n('x', short));
                    done.interaction_id = long;
                }
                _ => {}
            }
            let mut dressing = faults.dressing(&draw);
            dressing.accepted &= call == Call::Start;
            success(done, dressing)
        }
        Err(refused) => refused.into_response(),
    }
}

/// The call's real effect on the ledger, or why it had none.
fn carry_out(shared: &Shared, pairs: Pairs, call: Call) -> Result<Done, Refused> {
    let Query(pairs) = pairs.map_err(|e| Refused::BadRequest(e.body_text()))?;
    let now = shared.clock.now();
    match call {
        Call::Start => {
            let p = StartParams::parse(&pairs).map_err(bad_params)?;
            let started = shared.lock().ledger.start(&p.user_id, p.duration, now);
            Ok(Done {
                description: if started.created {
                    "Screen recording started"
                } else {
                    "A screen recording is already running for this user"
                },
                contact_id: started.contact_id,
                interaction_id: started.interaction_id,
            })
        }
        Call::Stop => {
            let p = StopParams::parse(&pairs).map_err(bad_params)?;
            let stopped = shared
                .lock()
                .ledger
                .stop(&p.user_id, p.contact_id, now)
                .map_err(|e| {
                    tracing::debug!(error = %e, "simulated stop found nothing to stop");
                    Refused::NotFound
                })?;
            Ok(Done {
                description: "Screen recording stopped",
                contact_id: stopped.contact_id,
                interaction_id: stopped.interaction_id,
            })
        }
    }
}

fn success(done: Done, dressing: Dressing) -> Response {
    let status = if dressing.accepted {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    if dressing.malformed {
        // Says JSON, is not: cut off before the contact id.
        let body = format!("{{\"description\":\"{}\",\"contactId\":", done.description);
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let contact_id = if dressing.contact_id_as_string {
        Value::String(done.contact_id.to_string())
    } else {
        Value::from(done.contact_id)
    };
    let body = if dressing.accepted {
        json!({
            "contactId": contact_id,
            "interactionId": done.interaction_id,
            "httpStatus": "Accepted",
        })
    } else {
        json!({
            "description": done.description,
            "contactId": contact_id,
            "interactionId": done.interaction_id,
            "httpStatus": "OK",
        })
    };
    (status, Json(body)).into_response()
}

fn bad_params(e: ParamError) -> Refused {
    Refused::BadRequest(e.to_string())
}

/// An error answer; its body shape is undocumented, so any will do.
fn error(status: StatusCode, message: &str) -> Response {
    let http_status = status
        .canonical_reason()
        .unwrap_or("Error")
        .replace(' ', "");
    (
        status,
        Json(json!({"message": message, "httpStatus": http_status})),
    )
        .into_response()
}

fn locked(retry_after_secs: Option<u64>) -> Response {
    let mut response = error(
        StatusCode::TOO_EARLY,
        "The interaction is locked while an earlier request is processed",
    );
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A `307 Temporary Redirect` to `location` (validated with the faults).
pub fn redirect(location: &str) -> Response {
    let mut response = error(StatusCode::TEMPORARY_REDIRECT, "moved");
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A 200 of `bytes` bytes, streamed: `{"description":"xxx…","contactId":…}`,
/// JSON that parses only if read whole.
fn oversized(done: &Done, bytes: u64) -> Response {
    static FILLER: [u8; 16 * 1024] = [b'x'; 16 * 1024];
    let head = Bytes::from_static(br#"{"description":""#);
    let tail = Bytes::from(format!(
        r#"","contactId":{},"interactionId":"{}","httpStatus":"OK"}}"#,
        done.contact_id, done.interaction_id
    ));
    let framing = u64::try_from(head.len() + tail.len()).unwrap_or(u64::MAX);
    let filler = futures::stream::unfold(bytes.saturating_sub(framing), |left| async move {
        if left == 0 {
            return None;
        }
        let n = usize::try_from(left).map_or(FILLER.len(), |l| l.min(FILLER.len()));
        let sent = u64::try_from(n).unwrap_or(left);
        Some((Bytes::from_static(&FILLER[..n]), left.saturating_sub(sent)))
    });
    let body = futures::stream::iter([head])
        .chain(filler)
        .chain(futures::stream::iter([tail]))
        .map(Ok::<_, Infallible>);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// A gateway's 504: plain text, not the API's JSON.
fn gateway_timeout() -> Response {
    (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout").into_response()
}

fn shutting_down() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "simulator shutting down")
}
