//! A simulator on a loopback port with a manual clock, and a thin HTTP
//! client that speaks to it the way the tests need (the tests deliberately
//! use raw JSON, not any crate type, to read what went over the wire).

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use recsched::clock::ManualClock;
use recsched::simulator::{self, SimConfig, SimHandle};
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// The API prefix the project sends by default.
pub const V1: &str = "/interaction-recording-management-service/v1/interactions";
/// The prefix of the vendor page's example (no `/v1`).
pub const NO_V1: &str = "/interaction-recording-management-service/interactions";
pub const START: &str = "/start-screen-interaction-recording";
pub const STOP: &str = "/stop-screen-interaction-recording";

pub struct Sim {
    pub handle: SimHandle,
    pub clock: ManualClock,
    pub http: reqwest::Client,
}

impl Sim {
    /// A simulator with default credentials and no faults.
    pub async fn start() -> Self {
        Self::with_config(SimConfig::default()).await
    }

    pub async fn with_config(config: SimConfig) -> Self {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 29, 8, 0, 0).unwrap());
        let handle = simulator::spawn_with_clock(config, Arc::new(clock.clone()))
            .await
            .expect("simulator binds a loopback port");
        Self {
            handle,
            clock,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.url())
    }

    /// A password grant with the configured credentials; the whole answer.
    pub async fn grant(&self) -> Value {
        let c = self.handle.config();
        let response = self
            .http
            .post(self.handle.token_url())
            .basic_auth(&c.client_id, Some(&c.client_secret))
            .form(&[
                ("grant_type", "password"),
                ("username", c.access_key_id.as_str()),
                ("password", c.access_key_secret.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// A fresh access token.
    pub async fn token(&self) -> String {
        self.grant().await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `POST {url}{path}` with a bearer token and query pairs, which
    /// reqwest percent-encodes.
    pub async fn call(&self, path: &str, token: &str, query: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .query(query)
            .send()
            .await
            .unwrap()
    }

    /// A v1 start for `user` of `duration` seconds.
    pub async fn start_recording(&self, token: &str, user: &str, duration: &str) -> Response {
        self.call(
            &format!("{V1}{START}"),
            token,
            &[("userId", user), ("recordingDuration", duration)],
        )
        .await
    }

    /// A v1 stop for `user`'s `contact_id`.
    pub async fn stop_recording(&self, token: &str, user: &str, contact_id: &str) -> Response {
        self.call(
            &format!("{V1}{STOP}"),
            token,
            &[("userId", user), ("contactId", contact_id)],
        )
        .await
    }

    /// `GET /_sim/recordings`.
    pub async fn recordings(&self) -> Vec<Value> {
        self.get_json("/_sim/recordings").await
    }

    /// `GET /_sim/requests`.
    pub async fn requests(&self) -> Vec<Value> {
        self.get_json("/_sim/requests").await
    }

    async fn get_json(&self, path: &str) -> Vec<Value> {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// `PUT /_sim/config` with a JSON fault set.
    pub async fn put_faults(&self, faults: Value) -> Response {
        self.http
            .put(self.url("/_sim/config"))
            .json(&faults)
            .send()
            .await
            .unwrap()
    }

    /// Moves the manual clock on.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }
}

/// The body's `contactId` as text, whether it came as a number or a string.
pub fn contact_id(body: &Value) -> String {
    match &body["contactId"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("contactId is neither number nor string: {other}"),
    }
}
