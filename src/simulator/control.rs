//! The simulator's own endpoints under `/_sim/` (not part of the vendor
//! API) and the request log.
//!
//! Tests, the demo and operators use them to turn faults on and off while
//! the simulator runs, and to see what the "vendor" did: which recordings
//! it made and which requests it received. They never meet faults, and
//! they are not themselves logged, so reading the log does not change it.
//!
//! - `GET /_sim/config`, `PUT /_sim/config`: the [`Faults`] in force; a PUT
//!   replaces them wholesale and restarts the fault RNG from their seed.
//! - `GET /_sim/recordings`: every recording ever made.
//! - `GET /_sim/requests`, `DELETE /_sim/requests`: the request log.
//! - `GET /_sim/stats`: the worker gate's counters (peak concurrency).
//! - `GET /_sim/teams`: the directory's teams (team -> users);
//!   `PUT /_sim/teams/{team}/{user}` puts a user in a team (moving it),
//!   `DELETE /_sim/teams/{team}/{user}` takes it out (404 if not there).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::faults::Faults;
use super::state::{LoggedRequest, Shared};

/// The prefix of the simulator's own endpoints.
pub const PREFIX: &str = "/_sim/";

pub async fn get_config(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(shared.lock().faults.clone())
}

pub async fn put_config(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<Faults>, JsonRejection>,
) -> Response {
    let faults = match body {
        Ok(Json(faults)) => faults,
        Err(e) => return refuse(e.status(), &e.body_text()),
    };
    if let Err(e) = faults.validate() {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
    }
    tracing::info!(?faults, "simulator faults replaced");
    shared.set_faults(faults.clone());
    Json(faults).into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

pub async fn recordings(State(shared): State<Arc<Shared>>) -> Response {
    let now = shared.clock.now();
    Json(shared.lock().ledger.all(now)).into_response()
}

pub async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    let log: Vec<LoggedRequest> = shared.lock().requests.iter().cloned().collect();
    Json(log).into_response()
}

pub async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().requests.clear();
    StatusCode::NO_CONTENT
}

pub async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.gate.stats()).into_response()
}

pub async fn teams(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().directory.teams()).into_response()
}

pub async fn put_team_user(
    State(shared): State<Arc<Shared>>,
    Path((team, user)): Path<(String, String)>,
) -> StatusCode {
    shared.lock().directory.put(&team, &user);
    StatusCode::NO_CONTENT
}

pub async fn delete_team_user(
    State(shared): State<Arc<Shared>>,
    Path((team, user)): Path<(String, String)>,
) -> StatusCode {
    if shared.lock().directory.remove(&team, &user) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// Middleware: logs every request outside `/_sim/` with its final status.
/// Entries are appended when the answer is ready (completion order);
/// `at` is the arrival time.
pub async fn log_request(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with(PREFIX) {
        return next.run(req).await;
    }
    let at = shared.clock.now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let response = next.run(req).await;
    shared.log(LoggedRequest {
        method,
        path,
        query,
        status: response.status().as_u16(),
        at,
    });
    response
}
