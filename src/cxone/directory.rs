//! The directory client: a CXone team's members, from the UserHub user
//! search (API.md, "Around the recording API").
//!
//! `POST <api>/user-management/v2/users/search` with
//! `{"filter": {"teamId": [team], "status": ["ACTIVE"]}, "fields": [...],
//! "skip": n, "top": page}`, paged on `skip` until `totalRecords` is
//! reached. The path, the page size, the statuses and every field name
//! are settings (`[directory]`), with those values as defaults.
//!
//! The search goes through the same client as the recording calls: the
//! same token (a 401 renews it once), the same caps on requests, the same
//! timeouts, no redirect, bodies read to 64 KiB at most. Each page is
//! retried like a start ([`crate::retry`]: transport errors, timeouts,
//! 425/429/5xx with backoff and `Retry-After`, 500 a few times) up to the
//! caller's deadline. A team is only ever returned whole: a page that
//! fails, or paging that does not add up, fails the team, so the caller
//! keeps the membership it had. Reading a page is pure ([`parse_page`]).

use super::body::{is_oversized, read_capped, MAX_BODY_BYTES};
use super::classify::redirect_target;
use super::discovery::HostSign;
use super::error::{Action, CxoneError};
use super::Client;
use crate::config::{Range, RangeCheck};
use crate::policy::TeamId;
use crate::recording::UserId;
use crate::retry::{parse_retry_after, Decision, RetryPolicy};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::time::Duration;

/// `[directory]` in the config file.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// How often each named team's members are read again, seconds
    /// (default 900); also the age past which a team is read again just
    /// before one of its policies' windows opens.
    pub refresh_seconds: u64,
    /// Users asked for per page (`top`; default 500).
    pub page_size: u64,
    /// How long one team's read may take, retries included, seconds
    /// (default 120).
    pub team_timeout_seconds: u64,
    /// The search endpoint, under the API base.
    pub search_path: String,
    /// The user statuses that count as members.
    pub statuses: Vec<String>,
    /// Field names of the request and the answer.
    pub id_field: String,
    pub team_field: String,
    pub status_field: String,
    pub users_field: String,
    pub total_field: String,
    pub skip_field: String,
    pub top_field: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            refresh_seconds: 900,
            page_size: 500,
            team_timeout_seconds: 120,
            search_path: "/user-management/v2/users/search".to_owned(),
            statuses: vec!["ACTIVE".to_owned()],
            id_field: "id".to_owned(),
            team_field: "teamId".to_owned(),
            status_field: "status".to_owned(),
            users_field: "users".to_owned(),
            total_field: "totalRecords".to_owned(),
            skip_field: "skip".to_owned(),
            top_field: "top".to_owned(),
        }
    }
}

impl Settings {
    pub const REFRESH_SECONDS: Range<u64> = Range::new("directory.refresh_seconds", 1, 86_400);
    pub const PAGE_SIZE: Range<u64> = Range::new("directory.page_size", 1, 10_000);
    pub const TEAM_TIMEOUT_SECONDS: Range<u64> =
        Range::new("directory.team_timeout_seconds", 1, 3600);

    /// Checks every numeric key against its range.
    pub fn check_ranges(&self, check: &mut RangeCheck) {
        check.check(Self::REFRESH_SECONDS, self.refresh_seconds);
        check.check(Self::PAGE_SIZE, self.page_size);
        check.check(Self::TEAM_TIMEOUT_SECONDS, self.team_timeout_seconds);
    }

    /// The refresh interval, kept in its range.
    pub fn refresh(&self) -> Duration {
        Duration::from_secs(
            self.refresh_seconds
                .clamp(Self::REFRESH_SECONDS.min, Self::REFRESH_SECONDS.max),
        )
    }

    /// The page size, kept in its range.
    fn top(&self) -> u64 {
        self.page_size
            .clamp(Self::PAGE_SIZE.min, Self::PAGE_SIZE.max)
    }

    /// The search request for one page.
    pub fn request(&self, team: &TeamId, skip: u64) -> serde_json::Value {
        let mut filter = serde_json::Map::new();
        filter.insert(self.team_field.clone(), serde_json::json!([team.as_str()]));
        if !self.statuses.is_empty() {
            filter.insert(self.status_field.clone(), serde_json::json!(self.statuses));
        }
        let mut body = serde_json::Map::new();
        body.insert("filter".to_owned(), serde_json::Value::Object(filter));
        body.insert(
            "fields".to_owned(),
            serde_json::json!([self.id_field, self.team_field, self.status_field]),
        );
        body.insert(self.skip_field.clone(), serde_json::json!(skip));
        body.insert(self.top_field.clone(), serde_json::json!(self.top()));
        serde_json::Value::Object(body)
    }
}

/// Most users a team may have: past it the answer is taken as broken.
pub const MAX_TEAM_MEMBERS: u64 = 1_000_000;

/// One page of the search, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// `totalRecords`.
    pub total: u64,
    /// How many users the page held (members or not): how far `skip`
    /// moves.
    pub returned: u64,
    /// The page's users in the team with a counted status.
    pub members: Vec<UserId>,
    /// Users left out because their id is not a user id.
    pub bad_ids: usize,
}

/// Reads one page of the search for `team`. A user of another team or
/// with another status (a directory that ignores the filter) is not a
/// member; a user whose id is not a user id is counted in `bad_ids`.
pub fn parse_page(body: &[u8], settings: &Settings, team: &TeamId) -> Result<Page, String> {
    if is_oversized(body) {
        return Err(format!(
            "the answer is longer than {MAX_BODY_BYTES} bytes; lower directory.page_size"
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_owned())?;
    let total = match value.get(&settings.total_field) {
        Some(v) => v
            .as_u64()
            .filter(|t| *t <= MAX_TEAM_MEMBERS)
            .ok_or_else(|| format!("{} is not a count of users", settings.total_field))?,
        None => return Err(format!("the answer has no {}", settings.total_field)),
    };
    let Some(users) = value
        .get(&settings.users_field)
        .and_then(serde_json::Value::as_array)
    else {
        return Err(format!("the answer has no {} list", settings.users_field));
    };
    let mut members = Vec::new();
    let mut bad_ids = 0;
    for user in users {
        let field = |name: &str| user.get(name).and_then(serde_json::Value::as_str);
        // A team id may come as a number.
        let user_team = match user.get(&settings.team_field) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        if user_team.as_deref().is_some_and(|t| t != team.as_str()) {
            continue;
        }
        if let Some(status) = field(&settings.status_field) {
            if !settings.statuses.is_empty() && !settings.statuses.iter().any(|s| s == status) {
                continue;
            }
        }
        let id = match user.get(&settings.id_field) {
            Some(serde_json::Value::String(s)) => UserId::parse(s.as_str()).ok(),
            Some(serde_json::Value::Number(n)) => UserId::parse(n.to_string()).ok(),
            _ => None,
        };
        match id {
            Some(id) => members.push(id),
            None => bad_ids += 1,
        }
    }
    Ok(Page {
        total,
        returned: users.len() as u64,
        members,
        bad_ids,
    })
}

/// A whole team, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRead {
    pub members: BTreeSet<UserId>,
    /// Pages asked for.
    pub pages: u32,
    /// Users left out because their id is not a user id.
    pub bad_ids: usize,
}

/// Why a team could not be read whole.
#[derive(Debug, thiserror::Error)]
#[error("team {team}: {error}")]
pub struct TeamReadError {
    pub team: TeamId,
    #[source]
    pub error: CxoneError,
}

impl Client {
    /// Every member of `team`, paging and retrying each page until
    /// `deadline` (module docs). `cancel` ends waits between retries.
    pub async fn team_members(
        &self,
        settings: &Settings,
        team: &TeamId,
        policy: &RetryPolicy,
        deadline: DateTime<Utc>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<TeamRead, TeamReadError> {
        let fail = |error| TeamReadError {
            team: team.clone(),
            error,
        };
        let mut members = BTreeSet::new();
        let mut skip = 0u64;
        let mut pages = 0u32;
        let mut bad_ids = 0;
        loop {
            let page = self
                .page_with_retries(settings, team, skip, policy, deadline, cancel)
                .await
                .map_err(fail)?;
            pages += 1;
            bad_ids += page.bad_ids;
            members.extend(page.members);
            if skip.saturating_add(page.returned) >= page.total {
                break;
            }
            if page.returned == 0 {
                return Err(fail(CxoneError::Directory(format!(
                    "the page at {} {skip} is empty, but {} is {}: the directory changed while \
                     it was read, or does not page; the team is read again next time",
                    settings.skip_field, settings.total_field, page.total
                ))));
            }
            skip += page.returned;
        }
        Ok(TeamRead {
            members,
            pages,
            bad_ids,
        })
    }

    async fn page_with_retries(
        &self,
        settings: &Settings,
        team: &TeamId,
        skip: u64,
        policy: &RetryPolicy,
        deadline: DateTime<Utc>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<Page, CxoneError> {
        let mut attempt = 0u32;
        let mut renewed = false;
        let mut server_errors = 0u32;
        loop {
            attempt += 1;
            let (result, token) = self.search_page(settings, team, skip).await;
            let error = match result {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            let retry_after = match error.action() {
                Action::Reauthenticate if !renewed => {
                    renewed = true;
                    if let Some(token) = &token {
                        self.tokens.invalidate(token).await;
                    }
                    continue;
                }
                Action::Retry {
                    retry_after,
                    server_error,
                } => {
                    server_errors += u32::from(server_error);
                    if server_errors > policy.max_server_errors {
                        return Err(error);
                    }
                    retry_after
                }
                Action::Reauthenticate | Action::Final => return Err(error),
            };
            let jitter: f64 = rand::random();
            match policy.next_delay(attempt, retry_after, jitter, self.clock.now(), deadline) {
                Decision::Wait(d) => {
                    tracing::debug!(team = %team, skip, attempt, error = %error, wait_ms = d.as_millis() as u64, "directory search failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(d) => {}
                        () = cancel.cancelled() => return Err(error),
                    }
                }
                Decision::GiveUp => return Err(error),
            }
        }
    }

    /// One search exchange; the token it used, so a 401 can renew it.
    async fn search_page(
        &self,
        settings: &Settings,
        team: &TeamId,
        skip: u64,
    ) -> (Result<Page, CxoneError>, Option<crate::secret::Secret>) {
        let endpoints = match self.endpoints().await {
            Ok(e) => e,
            Err(e) => return (Err(e), None),
        };
        let base = endpoints.api_base.as_str().trim_end_matches('/');
        let path = settings.search_path.trim();
        let url = match reqwest::Url::parse(&format!("{base}{path}")) {
            Ok(url) => url,
            Err(e) => {
                return (
                    Err(CxoneError::Config(format!(
                        "directory.search_path `{path}` under the API base is not a URL: {e}"
                    ))),
                    None,
                )
            }
        };
        let token = match self.tokens.bearer().await {
            Ok(t) => t,
            Err(e) => return (Err(e), None),
        };
        let Some(_permit) = self.limiter.admit_unless(&self.shutdown).await else {
            return (Err(CxoneError::Shutdown), Some(token));
        };
        let sent = self
            .http
            .post(url)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&settings.request(team, skip))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.note_host(HostSign::Unreachable).await;
                return (Err(self.transport_error(&e)), Some(token));
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match read_capped(response).await {
            Ok(b) => b,
            Err(e) => {
                self.note_host(HostSign::Unreachable).await;
                return (Err(self.transport_error(&e)), Some(token));
            }
        };
        self.note_host(if status == 404 {
            HostSign::NotFound
        } else {
            HostSign::Answered
        })
        .await;
        let result = match status {
            200..=299 => parse_page(&body, settings, team).map_err(|why| {
                CxoneError::Directory(format!("the search answer is not a page of users: {why}"))
            }),
            300..=399 => Err(CxoneError::Redirected {
                status,
                to: redirect_target(&headers),
                setting: "directory.search_path",
            }),
            _ => Err(CxoneError::Status {
                status,
                retry_after: headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, self.clock.now())),
                body: super::classify::kept(&body),
            }),
        };
        (result, Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn team() -> TeamId {
        TeamId::parse("t1").unwrap()
    }

    fn page(v: serde_json::Value) -> Result<Page, String> {
        parse_page(v.to_string().as_bytes(), &Settings::default(), &team())
    }

    #[test]
    fn the_request_names_the_team_statuses_and_page() {
        let s = Settings::default();
        assert_eq!(
            s.request(&team(), 500),
            json!({
                "filter": {"teamId": ["t1"], "status": ["ACTIVE"]},
                "fields": ["id", "teamId", "status"],
                "skip": 500,
                "top": 500
            })
        );
        let renamed = Settings {
            team_field: "teamIds".into(),
            skip_field: "offset".into(),
            statuses: vec![],
            ..Settings::default()
        };
        let r = renamed.request(&team(), 0);
        assert_eq!(r["filter"], json!({"teamIds": ["t1"]}));
        assert_eq!(r["offset"], json!(0));
    }

    #[test]
    fn a_page_gives_its_members_and_how_far_it_went() {
        let p = page(json!({
            "totalRecords": 3, "skip": 0, "top": 2,
            "users": [
                {"id": "u1", "teamId": "t1", "status": "ACTIVE"},
                {"id": 42, "teamId": "t1", "status": "ACTIVE"}
            ]
        }))
        .unwrap();
        assert_eq!(p.total, 3);
        assert_eq!(p.returned, 2);
        let ids: Vec<&str> = p.members.iter().map(|u| u.as_str()).collect();
        assert_eq!(ids, ["u1", "42"]);
    }

    #[test]
    fn users_of_other_teams_or_statuses_and_bad_ids_are_not_members() {
        let p = page(json!({
            "totalRecords": 4,
            "users": [
                {"id": "other", "teamId": "t2", "status": "ACTIVE"},
                {"id": "gone", "teamId": "t1", "status": "INACTIVE"},
                {"id": "", "teamId": "t1", "status": "ACTIVE"},
                {"teamId": "t1"},
                {"id": "kept"}
            ]
        }))
        .unwrap();
        let ids: Vec<&str> = p.members.iter().map(|u| u.as_str()).collect();
        assert_eq!(ids, ["kept"]);
        assert_eq!(p.bad_ids, 2);
        assert_eq!(p.returned, 5);
    }

    #[test]
    fn answers_that_are_not_pages_say_why() {
        for (body, why) in [
            (json!({"users": []}), "no totalRecords"),
            (json!({"totalRecords": -1, "users": []}), "not a count"),
            (json!({"totalRecords": 1e12, "users": []}), "not a count"),
            (json!({"totalRecords": 1}), "no users list"),
        ] {
            let e = page(body.clone()).unwrap_err();
            assert!(e.contains(why), "{body}: {e}");
        }
        let e = parse_page(b"<html>", &Settings::default(), &team()).unwrap_err();
        assert!(e.contains("not JSON"));
        let long = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(parse_page(&long, &Settings::default(), &team())
            .unwrap_err()
            .contains("directory.page_size"));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_read_as_a_page_without_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        ) {
            let _ = parse_page(&body, &Settings::default(), &team());
        }
    }
}
