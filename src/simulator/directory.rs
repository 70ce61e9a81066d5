//! The UserHub user search, over the simulator's teams:
//! `POST /user-management/v2/users/search` (API.md, "Around the recording
//! API").
//!
//! Request: `{"filter": {"teamId": [...], "status": [...]}, "fields":
//! [...], "skip": 0, "top": 500}` with a bearer token (401 without a valid
//! one; 400 for a body that is not that). Answer: `{"totalRecords": n,
//! "skip", "top", "users": [{"id", "teamId", "status", ...}]}`, users in id
//! order, at most [`MAX_TOP`] a page. Each user is in at most one team,
//! as in CXone.
//!
//! Faults (`Faults::search_*`): the connection dropped mid-answer
//! ("down"), a fixed status, a latency, or a 500 for every page from a
//! given `skip` on (a paging that fails half-way).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::auth;
use super::state::Shared;

pub const SEARCH: &str = "/user-management/v2/users/search";

/// The largest page the search answers, whatever `top` asks.
pub const MAX_TOP: u64 = 1000;
/// The page size when `top` is missing.
const DEFAULT_TOP: u64 = 100;

/// One directory user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryUser {
    pub team: String,
    /// `ACTIVE`, `INACTIVE`, ...
    pub status: String,
}

/// Every user with a team: user id -> team and status.
#[derive(Debug, Default)]
pub struct Directory {
    users: BTreeMap<String, DirectoryUser>,
}

impl Directory {
    /// Seeds the teams: team -> its users (a user named twice ends in the
    /// last team).
    pub fn seeded(teams: &BTreeMap<String, Vec<String>>) -> Self {
        let mut d = Self::default();
        for (team, users) in teams {
            for user in users {
                d.put(team, user);
            }
        }
        d
    }

    /// Puts `user` in `team` (moving it from any other), active.
    pub fn put(&mut self, team: &str, user: &str) {
        self.users.insert(
            user.to_owned(),
            DirectoryUser {
                team: team.to_owned(),
                status: "ACTIVE".to_owned(),
            },
        );
    }

    /// Takes `user` out of `team`; `false` if it was not in it.
    pub fn remove(&mut self, team: &str, user: &str) -> bool {
        if self.users.get(user).is_some_and(|u| u.team == team) {
            self.users.remove(user);
            true
        } else {
            false
        }
    }

    /// Sets a user's status; `false` if the user is unknown.
    pub fn set_status(&mut self, user: &str, status: &str) -> bool {
        match self.users.get_mut(user) {
            Some(u) => {
                u.status = status.to_owned();
                true
            }
            None => false,
        }
    }

    /// Team -> its users, every team with at least one user.
    pub fn teams(&self) -> BTreeMap<String, Vec<String>> {
        let mut teams: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (user, u) in &self.users {
            teams.entry(u.team.clone()).or_default().push(user.clone());
        }
        teams
    }

    /// The users matching the filters (an absent filter matches all), in
    /// id order: the page `skip..skip+top` and the total.
    pub fn search(
        &self,
        teams: Option<&[String]>,
        statuses: Option<&[String]>,
        skip: u64,
        top: u64,
    ) -> (u64, Vec<(&str, &DirectoryUser)>) {
        let matching: Vec<(&str, &DirectoryUser)> = self
            .users
            .iter()
            .filter(|(_, u)| teams.is_none_or(|t| t.contains(&u.team)))
            .filter(|(_, u)| statuses.is_none_or(|s| s.contains(&u.status)))
            .map(|(id, u)| (id.as_str(), u))
            .collect();
        let total = matching.len() as u64;
        let page = matching
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(usize::try_from(top).unwrap_or(usize::MAX))
            .collect();
        (total, page)
    }
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

/// A list of strings under `key` of `filter`, if present.
fn strings(filter: Option<&Value>, key: &str) -> Result<Option<Vec<String>>, String> {
    match filter.and_then(|f| f.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("filter.{key} holds a value that is not a string"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("filter.{key} is not a list")),
    }
}

fn count(body: &Value, key: &str, default: u64) -> Result<u64, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("{key} is not a whole number")),
    }
}

/// `POST /user-management/v2/users/search`.
pub async fn search(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let faults = shared.lock().faults.clone();
    if faults.search_latency_ms > 0 {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(faults.search_latency_ms)) => {}
            () = shared.stopping.cancelled() => {}
        }
    }
    if faults.search_down {
        return dropped();
    }
    if !auth::has_valid_bearer(&shared, &headers) {
        return auth::unauthorized();
    }
    if let Some(status) = faults.search_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (status, Json(json!({"error": "injected"}))).into_response();
    }
    let Ok(Json(body)) = body else {
        return bad_request("the body is not JSON");
    };
    let filter = body.get("filter");
    let (teams, statuses) = match (strings(filter, "teamId"), strings(filter, "status")) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) | (_, Err(e)) => return bad_request(&e),
    };
    let (skip, top) = match (count(&body, "skip", 0), count(&body, "top", DEFAULT_TOP)) {
        (Ok(skip), Ok(top)) => (skip, top.min(MAX_TOP)),
        (Err(e), _) | (_, Err(e)) => return bad_request(&e),
    };
    if faults
        .search_fail_from_skip
        .is_some_and(|from| skip >= from)
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "injected, from this skip on"})),
        )
            .into_response();
    }
    let answer = {
        let inner = shared.lock();
        let (total, page) =
            inner
                .directory
                .search(teams.as_deref(), statuses.as_deref(), skip, top);
        let users: Vec<Value> = page
            .into_iter()
            .map(|(id, u)| {
                json!({
                    "id": id,
                    "teamId": u.team,
                    "status": u.status,
                    "firstName": "Sim",
                    "lastName": id,
                })
            })
            .collect();
        json!({"totalRecords": total, "skip": skip, "top": top, "users": users})
    };
    Json(answer).into_response()
}

/// A 200 whose body breaks off at once: the connection is lost mid-answer,
/// which a client sees as a transport error.
fn dropped() -> Response {
    let broken = futures::stream::iter([
        Ok(Bytes::from_static(b"{\"totalRecords\":")),
        Err(std::io::Error::other("the directory is down")),
    ]);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(broken))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> Directory {
        let mut teams = BTreeMap::new();
        teams.insert("t1".to_owned(), vec!["u3".into(), "u1".into(), "u2".into()]);
        teams.insert("t2".to_owned(), vec!["u9".into(), "u1".into()]);
        Directory::seeded(&teams)
    }

    #[test]
    fn a_user_is_in_one_team_and_pages_are_in_id_order() {
        let d = seeded();
        let t1 = ["t1".to_owned()];
        let (total, page) = d.search(Some(&t1), None, 0, 10);
        assert_eq!(total, 2, "u1 moved to t2");
        let ids: Vec<&str> = page.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, ["u2", "u3"]);
        let (total, page) = d.search(None, None, 1, 2);
        assert_eq!(total, 4);
        let ids: Vec<&str> = page.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, ["u2", "u3"]);
        assert!(d.search(None, None, 99, 2).1.is_empty());
    }

    #[test]
    fn removal_and_status_change_what_the_search_finds() {
        let mut d = seeded();
        assert!(!d.remove("t1", "u1"), "u1 is in t2");
        assert!(d.remove("t2", "u1"));
        assert!(d.set_status("u9", "INACTIVE"));
        let active = ["ACTIVE".to_owned()];
        let t2 = ["t2".to_owned()];
        assert_eq!(d.search(Some(&t2), Some(&active), 0, 10).0, 0);
        assert_eq!(d.search(Some(&t2), None, 0, 10).0, 1);
        assert_eq!(d.teams()["t1"], ["u2", "u3"]);
    }
}
