//! The simulator over real HTTP on loopback: tokens, the API's rules,
//! both spellings, hostile user ids, every fault knob, reproducibility and
//! the worker limit. Time moves by a manual clock; nothing sleeps.

use std::time::{Duration, Instant};

use recsched::simulator::{self, EndReason, Faults, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::sim::{contact_id, Sim, NO_V1, START, STOP, V1};

// ---- tokens -------------------------------------------------------------

#[tokio::test]
async fn password_grant_issues_a_bearer_token_that_opens_the_api() {
    let sim = Sim::start().await;
    let grant = sim.grant().await;
    assert_eq!(grant["token_type"], "bearer");
    assert_eq!(grant["expires_in"], 3600);
    assert!(grant["refresh_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let token = grant["access_token"].as_str().unwrap();
    let response = sim.start_recording(token, "alice", "60").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_grant_issues_a_new_working_token() {
    let sim = Sim::start().await;
    let first = sim.grant().await;
    let c = sim.handle.config();
    let response = sim
        .http
        .post(sim.handle.token_url())
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    assert_ne!(second["access_token"], first["access_token"]);
    let token = second["access_token"].as_str().unwrap();
    assert_eq!(
        sim.start_recording(token, "alice", "60").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn token_endpoint_answers_401_to_wrong_or_missing_client_credentials() {
    let sim = Sim::start().await;
    let form = [
        ("grant_type", "password"),
        ("username", "sim-key"),
        ("password", "sim-key-secret"),
    ];
    let missing = sim.http.post(sim.handle.token_url()).form(&form);
    let wrong = sim
        .http
        .post(sim.handle.token_url())
        .basic_auth("sim-client", Some("nope"))
        .form(&form);
    for request in [missing, wrong] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn token_endpoint_answers_400_to_a_bad_grant() {
    let sim = Sim::start().await;
    let cases: &[&[(&str, &str)]] = &[
        &[
            ("grant_type", "password"),
            ("username", "other-key"),
            ("password", "sim-key-secret"),
        ],
        &[
            ("grant_type", "password"),
            ("username", "sim-key"),
            ("password", "wrong"),
        ],
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "made-up"),
        ],
        &[("grant_type", "client_credentials")],
        &[("username", "sim-key"), ("password", "sim-key-secret")],
    ];
    for form in cases {
        let response = sim
            .http
            .post(sim.handle.token_url())
            .basic_auth("sim-client", Some("sim-client-secret"))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{form:?}");
    }
}

#[tokio::test]
async fn api_calls_without_a_valid_bearer_are_401() {
    let sim = Sim::start().await;
    let no_header = sim
        .http
        .post(sim.url(&format!("{V1}{START}")))
        .query(&[("userId", "alice"), ("recordingDuration", "60")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), StatusCode::UNAUTHORIZED);
    let made_up = sim.start_recording("made-up", "alice", "60").await;
    assert_eq!(made_up.status(), StatusCode::UNAUTHORIZED);
    let stop = sim.stop_recording("made-up", "alice", "1").await;
    assert_eq!(stop.status(), StatusCode::UNAUTHORIZED);
    assert!(sim.recordings().await.is_empty());
}

#[tokio::test]
async fn an_access_token_expires_after_its_ttl() {
    let sim = Sim::with_config(SimConfig {
        token_ttl_secs: 60,
        ..SimConfig::default()
    })
    .await;
    let token = sim.token().await;
    sim.advance(59);
    assert_eq!(
        sim.start_recording(&token, "alice", "60").await.status(),
        StatusCode::OK
    );
    sim.advance(1);
    assert_eq!(
        sim.start_recording(&token, "bob", "60").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let fresh = sim.token().await;
    assert_eq!(
        sim.start_recording(&fresh, "bob", "60").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_zero_ttl_token_is_never_valid() {
    let sim = Sim::with_config(SimConfig {
        token_ttl_secs: 0,
        ..SimConfig::default()
    })
    .await;
    let grant = sim.grant().await;
    assert_eq!(grant["expires_in"], 0);
    let token = grant["access_token"].as_str().unwrap();
    assert_eq!(
        sim.start_recording(token, "alice", "60").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

// ---- the API's rules ----------------------------------------------------

#[tokio::test]
async fn start_and_stop_round_trip_shows_in_recordings() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let started = sim.start_recording(&token, "alice", "600").await;
    assert_eq!(started.status(), StatusCode::OK);
    let body: Value = started.json().await.unwrap();
    assert_eq!(body["httpStatus"], "OK");
    assert!(body["description"].is_string());
    assert!(body["contactId"].is_u64(), "contactId is a number: {body}");
    let interaction = body["interactionId"].as_str().unwrap().to_owned();
    let contact = contact_id(&body);

    let running = sim.recordings().await;
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["user_id"], "alice");
    assert_eq!(running[0]["contact_id"].to_string(), contact);
    assert_eq!(running[0]["interaction_id"], interaction);
    assert_eq!(running[0]["duration"], 600);
    assert_eq!(running[0]["started_at"], "2026-03-29T08:00:00.000Z");
    assert_eq!(running[0]["ended_at"], Value::Null);
    assert_eq!(running[0]["end_reason"], Value::Null);

    sim.advance(30);
    let stopped = sim.stop_recording(&token, "alice", &contact).await;
    assert_eq!(stopped.status(), StatusCode::OK);
    let body: Value = stopped.json().await.unwrap();
    assert_eq!(contact_id(&body), contact);

    let ended = sim.recordings().await;
    assert_eq!(ended[0]["ended_at"], "2026-03-29T08:00:30.000Z");
    assert_eq!(ended[0]["end_reason"], "stopped");
    // The in-process view agrees with the HTTP one.
    let direct = sim.handle.recordings();
    assert_eq!(direct[0].end_reason, Some(EndReason::Stopped));
}

#[tokio::test]
async fn a_repeated_start_returns_the_running_contact_id_and_keeps_the_duration() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let first: Value = sim
        .start_recording(&token, "alice", "60")
        .await
        .json()
        .await
        .unwrap();
    sim.advance(10);
    let again = sim.start_recording(&token, "alice", "13200").await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(contact_id(&again), contact_id(&first));
    assert_eq!(again["interactionId"], first["interactionId"]);
    let recordings = sim.recordings().await;
    assert_eq!(recordings.len(), 1);
    assert_eq!(recordings[0]["duration"], 60);
    // It still ends at the first request's time.
    sim.advance(50);
    assert_eq!(sim.recordings().await[0]["end_reason"], "expired");
}

#[tokio::test]
async fn a_recording_expires_when_its_duration_has_elapsed() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let first: Value = sim
        .start_recording(&token, "alice", "5")
        .await
        .json()
        .await
        .unwrap();
    sim.advance(4);
    assert_eq!(sim.recordings().await[0]["ended_at"], Value::Null);
    sim.advance(100);
    let recordings = sim.recordings().await;
    assert_eq!(recordings[0]["end_reason"], "expired");
    assert_eq!(recordings[0]["ended_at"], "2026-03-29T08:00:05.000Z");
    // The user can be recorded again, as a new recording.
    let second: Value = sim
        .start_recording(&token, "alice", "5")
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(contact_id(&second), contact_id(&first));
    assert_eq!(sim.recordings().await.len(), 2);
}

#[tokio::test]
async fn invalid_starts_are_400_and_record_nothing() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let path = format!("{V1}{START}");
    let cases: &[&[(&str, &str)]] = &[
        &[("recordingDuration", "60")],
        &[("userId", ""), ("recordingDuration", "60")],
        &[("userId", "alice")],
        &[("userId", "alice"), ("recordingDuration", "4")],
        &[("userId", "alice"), ("recordingDuration", "13201")],
        &[("userId", "alice"), ("recordingDuration", "abc")],
        &[("userId", "alice"), ("recordingDuration", "60.5")],
        &[("userId", "alice"), ("recordingDuration", "-60")],
        &[("userId", "alice"), ("recordingDuration", "")],
    ];
    for query in cases {
        let response = sim.call(&path, &token, query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query:?}");
    }
    assert!(sim.recordings().await.is_empty());
    for edge in ["5", "13200"] {
        let response = sim.start_recording(&token, &format!("u{edge}"), edge).await;
        assert_eq!(response.status(), StatusCode::OK, "duration {edge}");
    }
}

#[tokio::test]
async fn stops_that_find_no_running_recording_are_404() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let alice: Value = sim
        .start_recording(&token, "alice", "60")
        .await
        .json()
        .await
        .unwrap();
    let alice_id = contact_id(&alice);
    let unknown = sim.stop_recording(&token, "alice", "12345").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let wrong_user = sim.stop_recording(&token, "bob", &alice_id).await;
    assert_eq!(wrong_user.status(), StatusCode::NOT_FOUND);
    // Still running after both.
    assert_eq!(sim.recordings().await[0]["ended_at"], Value::Null);

    assert_eq!(
        sim.stop_recording(&token, "alice", &alice_id)
            .await
            .status(),
        StatusCode::OK
    );
    let again = sim.stop_recording(&token, "alice", &alice_id).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    let bob: Value = sim
        .start_recording(&token, "bob", "60")
        .await
        .json()
        .await
        .unwrap();
    sim.advance(60);
    let expired = sim.stop_recording(&token, "bob", &contact_id(&bob)).await;
    assert_eq!(expired.status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.recordings().await[1]["end_reason"], "expired");
}

#[tokio::test]
async fn invalid_stops_are_400() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let path = format!("{V1}{STOP}");
    let cases: &[&[(&str, &str)]] = &[
        &[("userId", "alice")],
        &[("userId", "alice"), ("contactId", "abc")],
        &[("contactId", "12345")],
        &[("userId", ""), ("contactId", "12345")],
    ];
    for query in cases {
        let response = sim.call(&path, &token, query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query:?}");
    }
}

#[tokio::test]
async fn both_path_and_parameter_spellings_are_accepted() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let spellings = [
        (V1, "userId", "contactId"),
        (V1, "user-id", "contact-id"),
        (NO_V1, "userId", "contactId"),
        (NO_V1, "user-id", "contact-id"),
    ];
    for (i, (prefix, user_key, contact_key)) in spellings.into_iter().enumerate() {
        let user = format!("user{i}");
        let started = sim
            .call(
                &format!("{prefix}{START}"),
                &token,
                &[(user_key, &user), ("recordingDuration", "60")],
            )
            .await;
        assert_eq!(started.status(), StatusCode::OK, "{prefix} {user_key}");
        let body: Value = started.json().await.unwrap();
        let stopped = sim
            .call(
                &format!("{prefix}{STOP}"),
                &token,
                &[(user_key, &user), (contact_key, &contact_id(&body))],
            )
            .await;
        assert_eq!(stopped.status(), StatusCode::OK, "{prefix} {contact_key}");
    }
    let recordings = sim.recordings().await;
    assert_eq!(recordings.len(), 4);
    assert!(recordings.iter().all(|r| r["end_reason"] == "stopped"));
}

#[tokio::test]
async fn hostile_user_ids_arrive_intact_as_one_value() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let users = [
        "1&recordingDuration=1",
        "a b",
        "#fragment",
        "100%",
        "50%25",
        "plus+sign",
        "ünïcödé 😀",
        "semi;colon=x",
    ];
    for user in users {
        let response = sim.start_recording(&token, user, "600").await;
        assert_eq!(response.status(), StatusCode::OK, "{user}");
    }
    let recordings = sim.recordings().await;
    let got: Vec<&str> = recordings
        .iter()
        .map(|r| r["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, users);
    assert!(recordings.iter().all(|r| r["duration"] == 600));
    // The log keeps the raw, encoded query.
    let requests = sim.requests().await;
    let first = requests
        .iter()
        .find(|r| r["path"] == format!("{V1}{START}"));
    let raw = first.unwrap()["query"].as_str().unwrap();
    assert!(raw.contains("1%26recordingDuration%3D1"), "{raw}");
}

#[tokio::test]
async fn an_unencoded_user_id_smuggling_a_parameter_is_refused() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    // What a client that formats the query by hand would send.
    let url = sim.url(&format!(
        "{V1}{START}?userId=1&recordingDuration=1&recordingDuration=600"
    ));
    let response = sim.http.post(url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(sim.recordings().await.is_empty());
}

// ---- faults -------------------------------------------------------------

#[tokio::test]
async fn each_status_fault_at_rate_one_answers_its_status_without_effect() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let cases = [
        (json!({"rate_425": 1.0}), StatusCode::TOO_EARLY),
        (json!({"rate_500": 1.0}), StatusCode::INTERNAL_SERVER_ERROR),
        (json!({"rate_504": 1.0}), StatusCode::GATEWAY_TIMEOUT),
    ];
    for (faults, status) in cases {
        assert_eq!(sim.put_faults(faults).await.status(), StatusCode::OK);
        let start = sim.start_recording(&token, "alice", "60").await;
        assert_eq!(start.status(), status);
    }
    assert!(sim.recordings().await.is_empty());

    // Stops meet faults too, and then do not stop.
    sim.put_faults(json!({})).await;
    let body: Value = sim
        .start_recording(&token, "alice", "60")
        .await
        .json()
        .await
        .unwrap();
    sim.put_faults(json!({"rate_500": 1.0})).await;
    let stop = sim
        .stop_recording(&token, "alice", &contact_id(&body))
        .await;
    assert_eq!(stop.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(sim.recordings().await[0]["ended_at"], Value::Null);
}

#[tokio::test]
async fn an_injected_425_carries_retry_after_when_configured() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"rate_425": 1.0, "retry_after_secs": 7}))
        .await;
    let response = sim.start_recording(&token, "alice", "60").await;
    assert_eq!(response.status(), StatusCode::TOO_EARLY);
    assert_eq!(response.headers()["retry-after"], "7");
    sim.put_faults(json!({"rate_425": 1.0})).await;
    let response = sim.start_recording(&token, "alice", "60").await;
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn a_504_after_start_has_started_the_recording() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"rate_504_after_start": 1.0})).await;
    let response = sim.start_recording(&token, "alice", "60").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let recordings = sim.recordings().await;
    assert_eq!(recordings.len(), 1);
    assert_eq!(recordings[0]["ended_at"], Value::Null);

    // The safe retry of API.md: the running recording comes back.
    sim.put_faults(json!({})).await;
    let retry: Value = sim
        .start_recording(&token, "alice", "60")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(contact_id(&retry), recordings[0]["contact_id"].to_string());

    // A stop answered 504 after the effect has ended the recording.
    sim.put_faults(json!({"rate_504_after_start": 1.0})).await;
    let stop = sim
        .stop_recording(&token, "alice", &contact_id(&retry))
        .await;
    assert_eq!(stop.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(sim.recordings().await[0]["end_reason"], "stopped");
}

#[tokio::test]
async fn rate_202_answers_accepted_without_a_description() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"rate_202": 1.0})).await;
    let response = sim.start_recording(&token, "alice", "60").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("description").is_none(), "{body}");
    assert!(body["contactId"].is_u64());
    assert!(body["interactionId"].is_string());
    assert_eq!(sim.recordings().await.len(), 1);
}

#[tokio::test]
async fn contact_id_can_come_as_a_string_of_digits() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"contact_id_as_string_rate": 1.0}))
        .await;
    let body: Value = sim
        .start_recording(&token, "alice", "60")
        .await
        .json()
        .await
        .unwrap();
    let id = body["contactId"].as_str().expect("contactId is a string");
    assert!(id.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(sim.recordings().await[0]["contact_id"].to_string(), id);
}

#[tokio::test]
async fn a_malformed_body_still_takes_effect() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"malformed_body_rate": 1.0})).await;
    let response = sim.start_recording(&token, "alice", "60").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert_eq!(sim.recordings().await.len(), 1);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"latency_ms": 150})).await;
    let begun = Instant::now();
    let response = sim.start_recording(&token, "alice", "60").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(begun.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn faults_spare_the_token_endpoint_and_the_sim_endpoints() {
    let sim = Sim::start().await;
    sim.put_faults(json!({"rate_500": 1.0, "latency_ms": 60000}))
        .await;
    let begun = Instant::now();
    let _ = sim.token().await; // asserts 200
    assert_eq!(sim.recordings().await.len(), 0);
    assert!(begun.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn the_fault_set_is_replaced_wholesale_and_validated() {
    let sim = Sim::start().await;
    let set = json!({"rate_425": 0.5, "retry_after_secs": 3, "seed": 9});
    let put = sim.put_faults(set.clone()).await;
    assert_eq!(put.status(), StatusCode::OK);
    let got: Value = sim
        .http
        .get(sim.url("/_sim/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["rate_425"], 0.5);
    assert_eq!(got["retry_after_secs"], 3);
    assert_eq!(got["seed"], 9);

    // A second PUT replaces, not merges.
    sim.put_faults(json!({"rate_500": 0.1})).await;
    assert_eq!(sim.handle.faults().rate_425, 0.0);
    assert_eq!(sim.handle.faults().retry_after_secs, None);

    let out_of_range = sim.put_faults(json!({"rate_504": 2.0})).await;
    assert_eq!(out_of_range.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let typo = sim.put_faults(json!({"rate425": 1.0})).await;
    assert!(typo.status().is_client_error());
    let zero = sim.put_faults(json!({"max_concurrency": 0})).await;
    assert_eq!(zero.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Refused sets change nothing.
    assert_eq!(sim.handle.faults().rate_500, 0.1);
}

/// The statuses of `n` sequential starts for distinct users.
async fn statuses(sim: &Sim, token: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let response = sim.start_recording(token, &format!("u{i}"), "60").await;
        out.push(response.status().as_u16());
    }
    out
}

#[tokio::test]
async fn the_same_seed_gives_the_same_statuses() {
    let faults =
        json!({"rate_425": 0.3, "rate_500": 0.2, "rate_504": 0.1, "rate_202": 0.3, "seed": 7});
    let a = Sim::start().await;
    let token = a.token().await;
    a.put_faults(faults.clone()).await;
    let first = statuses(&a, &token, 40).await;
    // The mix really is mixed.
    for status in [200, 202, 425, 500, 504] {
        assert!(first.contains(&status), "{status} missing from {first:?}");
    }
    // Setting the same faults again restarts the sequence.
    a.put_faults(faults.clone()).await;
    assert_eq!(statuses(&a, &token, 40).await, first);

    // A second simulator started with the same seed agrees.
    let b = Sim::with_config(SimConfig {
        faults: serde_json::from_value(faults.clone()).unwrap(),
        ..SimConfig::default()
    })
    .await;
    let token_b = b.token().await;
    assert_eq!(statuses(&b, &token_b, 40).await, first);

    // Another seed does not.
    let mut other = faults;
    other["seed"] = json!(8);
    a.put_faults(other).await;
    assert_ne!(statuses(&a, &token, 40).await, first);
}

#[tokio::test]
async fn max_concurrency_makes_extra_requests_wait_for_a_slot() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"latency_ms": 100, "max_concurrency": 2}))
        .await;
    let begun = Instant::now();
    let calls = (0..8).map(|i| {
        let (sim, token) = (&sim, &token);
        async move { sim.start_recording(token, &format!("u{i}"), "60").await }
    });
    let responses = futures::future::join_all(calls).await;
    assert!(responses.iter().all(|r| r.status() == StatusCode::OK));
    // 8 requests, 2 at a time, 100 ms each: at least 4 rounds.
    assert!(begun.elapsed() >= Duration::from_millis(400));
    let stats: Value = sim
        .http
        .get(sim.url("/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["peak_in_flight"], 2);
    assert_eq!(stats["in_flight"], 0);
    assert_eq!(stats["waiting"], 0);
}

#[tokio::test]
async fn without_max_concurrency_requests_overlap() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"latency_ms": 300})).await;
    let calls = (0..6).map(|i| {
        let (sim, token) = (&sim, &token);
        async move { sim.start_recording(token, &format!("u{i}"), "60").await }
    });
    futures::future::join_all(calls).await;
    assert!(sim.handle.stats().peak_in_flight > 2);
}

// ---- request log and lifecycle ------------------------------------------

#[tokio::test]
async fn the_request_log_holds_every_request_and_can_be_cleared() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.start_recording(&token, "alice", "60").await;
    sim.start_recording(&token, "bob", "1").await;
    sim.http.get(sim.url("/no/such/path")).send().await.unwrap();
    let log = sim.requests().await;
    let seen: Vec<(&str, &str, u64)> = log
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let start = format!("{V1}{START}");
    assert_eq!(
        seen,
        [
            ("POST", "/auth/token", 200),
            ("POST", start.as_str(), 200),
            ("POST", start.as_str(), 400),
            ("GET", "/no/such/path", 404),
        ]
    );
    assert_eq!(log[0]["query"], Value::Null);
    assert_eq!(log[1]["query"], "userId=alice&recordingDuration=60");
    assert_eq!(log[1]["at"], "2026-03-29T08:00:00.000Z");

    let cleared = sim
        .http
        .delete(sim.url("/_sim/requests"))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    assert!(sim.requests().await.is_empty());
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let sim = Sim::start().await;
    let url = sim.url("/_sim/config");
    assert!(sim.http.get(&url).send().await.is_ok());
    let Sim { handle, http, .. } = sim;
    handle.shutdown().await.unwrap();
    assert!(http.get(&url).send().await.is_err());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let sim = Sim::start().await;
    let url = sim.url("/_sim/config");
    // No pooled connection may outlive the server's listener.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert!(http.get(&url).send().await.is_ok());
    drop(sim);
    // The server stops in its own task: poll until it refuses, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if http.get(&url).send().await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "server still answers after drop");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn serve_runs_on_a_given_listener_until_the_shutdown_future_completes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(simulator::serve(
        listener,
        SimConfig::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let config = reqwest::get(format!("http://{addr}/_sim/config"))
        .await
        .unwrap();
    let faults: Faults = serde_json::from_value(config.json().await.unwrap()).unwrap();
    assert_eq!(faults, Faults::default());
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn spawn_refuses_an_invalid_fault_set() {
    let config = SimConfig {
        faults: Faults {
            rate_425: 3.0,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let err = simulator::spawn(config).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

// ---- hostile-vendor knobs -------------------------------------------------

/// A client that shows a 3xx as it is, rather than following it.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn token_answers_can_advertise_an_absurd_lifetime_and_another_host() {
    let sim = Sim::start().await;
    sim.put_faults(json!({
        "token_expires_in": 9_999_999_999_999_i64,
        "token_advertised_base": "http://127.0.0.2:9/",
    }))
    .await;
    let grant = sim.grant().await;
    assert_eq!(grant["expires_in"], 9_999_999_999_999_i64);
    assert_eq!(grant["resource_server_base_uri"], "http://127.0.0.2:9/");
    assert_eq!(
        grant["refresh_token_server_uri"],
        "http://127.0.0.2:9/auth/token"
    );
    // The token still lives `token_ttl_secs` (3600 s), whatever it says.
    let token = grant["access_token"].as_str().unwrap();
    sim.advance(3600);
    let response = sim.start_recording(token, "alice", "60").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    sim.put_faults(json!({"token_expires_in": 1})).await;
    let grant = sim.grant().await;
    assert_eq!(grant["expires_in"], 1);
    let token = grant["access_token"].as_str().unwrap();
    sim.advance(10);
    let response = sim.start_recording(token, "alice", "60").await;
    assert_eq!(response.status(), StatusCode::OK, "a tiny expires_in lies");
}

#[tokio::test]
async fn the_token_endpoint_can_redirect_its_first_requests() {
    let sim = Sim::start().await;
    sim.put_faults(json!({
        "token_redirect": "http://127.0.0.2:9/auth/token",
        "token_redirect_limit": 2,
    }))
    .await;
    let c = sim.handle.config();
    let http = no_redirects();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = http
            .post(sim.handle.token_url())
            .basic_auth(&c.client_id, Some(&c.client_secret))
            .form(&[
                ("grant_type", "password"),
                ("username", c.access_key_id.as_str()),
                ("password", c.access_key_secret.as_str()),
            ])
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TEMPORARY_REDIRECT {
            assert_eq!(
                response.headers()["location"],
                "http://127.0.0.2:9/auth/token"
            );
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [307, 307, 200]);
    // Setting the faults again restarts the count.
    sim.put_faults(json!({"token_redirect": "http://127.0.0.2:9/auth/token"}))
        .await;
    let logged = sim.requests().await.len();
    let response = http.post(sim.handle.token_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(sim.requests().await.len(), logged + 1);
}

#[tokio::test]
async fn a_locked_user_gets_425_every_time_and_others_are_served() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({
        "retry_after_secs": 0,
        "user_faults": {"stuck": {"fault": "locked"}},
    }))
    .await;
    for _ in 0..3 {
        let response = sim.start_recording(&token, "stuck", "60").await;
        assert_eq!(response.status(), StatusCode::TOO_EARLY);
        assert_eq!(response.headers()["retry-after"], "0");
    }
    // The other spelling names the same user.
    let response = sim
        .call(
            &format!("{V1}{START}"),
            &token,
            &[("user-id", "stuck"), ("recordingDuration", "60")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_EARLY);
    let ok = sim.start_recording(&token, "free", "60").await;
    assert_eq!(ok.status(), StatusCode::OK);
    let made = sim.recordings().await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["user_id"], "free");
}

#[tokio::test]
async fn a_redirected_user_gets_307_without_effect() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"user_faults": {
        "moved": {"fault": "redirect", "location": "http://127.0.0.2:9/steal"},
    }}))
    .await;
    let response = no_redirects()
        .post(sim.url(&format!("{V1}{START}")))
        .bearer_auth(&token)
        .query(&[("userId", "moved"), ("recordingDuration", "60")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(response.headers()["location"], "http://127.0.0.2:9/steal");
    assert!(sim.recordings().await.is_empty());
    // A redirect location that is not a header value is refused.
    let bad = sim
        .put_faults(json!({"user_faults": {"x": {"fault": "redirect", "location": "a\nb"}}}))
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_oversized_body_is_json_read_whole_and_the_call_took_effect() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    let bytes = 300_000;
    sim.put_faults(json!({"user_faults": {
        "big": {"fault": "oversized_body", "bytes": bytes},
    }}))
    .await;
    let response = sim.start_recording(&token, "big", "60").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), bytes);
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    let made = sim.recordings().await;
    assert_eq!(made.len(), 1);
    assert_eq!(contact_id(&parsed), made[0]["contact_id"].to_string());
    // A body far larger than memory is only made as it is read.
    sim.put_faults(json!({"user_faults": {
        "big": {"fault": "oversized_body", "bytes": 1_u64 << 40},
    }}))
    .await;
    let mut response = sim.start_recording(&token, "big", "60").await;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(br#"{"description":""#));
}

#[tokio::test]
async fn a_long_interaction_id_is_answered_for_a_user() {
    let sim = Sim::start().await;
    let token = sim.token().await;
    sim.put_faults(json!({"user_faults": {
        "long": {"fault": "long_interaction_id", "chars": 300},
    }}))
    .await;
    let body: Value = sim
        .start_recording(&token, "long", "60")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["interactionId"].as_str().unwrap().chars().count(), 300);
    let body: Value = sim
        .start_recording(&token, "short", "60")
        .await
        .json()
        .await
        .unwrap();
    assert!(body["interactionId"].as_str().unwrap().len() < 100);
    let huge = sim
        .put_faults(json!({"user_faults": {
            "long": {"fault": "long_interaction_id", "chars": 100_000_000},
        }}))
        .await;
    assert_eq!(huge.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
