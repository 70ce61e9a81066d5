//! The simulator's side of issue 16 over real HTTP, read as raw JSON: the
//! access-key endpoint, both discovery documents, and the paged user
//! search with its faults and team controls.

use crate::common::sim::Sim;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use recsched::simulator::{Faults, SimConfig};

async fn sim_with_team(team: &str, n: usize) -> Sim {
    let users = (0..n).map(|i| format!("{team}-u{i:04}")).collect();
    Sim::with_config(SimConfig {
        teams: BTreeMap::from([(team.to_owned(), users)]),
        ..SimConfig::default()
    })
    .await
}

async fn access_key_token(sim: &Sim) -> String {
    let c = sim.handle.config();
    let answer: Value = sim
        .http
        .post(sim.url("/authentication/v1/token/access-key"))
        .json(&json!({"accessKeyId": c.access_key_id, "accessKeySecret": c.access_key_secret}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn search(sim: &Sim, token: &str, body: Value) -> (StatusCode, Value) {
    let r = sim
        .http
        .post(sim.url("/user-management/v2/users/search"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn page(team: &str, skip: u64, top: u64) -> Value {
    json!({
        "filter": {"teamId": [team], "status": ["ACTIVE"]},
        "fields": ["id", "teamId", "status"],
        "skip": skip,
        "top": top
    })
}

#[tokio::test]
async fn the_access_key_endpoint_takes_json_and_refuses_a_wrong_key() {
    let sim = Sim::start().await;
    let token = access_key_token(&sim).await;
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let r = sim.start_recording(&token, "u1", "30").await;
    assert_eq!(r.status(), StatusCode::OK);
    let wrong = sim
        .http
        .post(sim.url("/authentication/v1/token/access-key"))
        .json(&json!({"accessKeyId": "sim-key", "accessKeySecret": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let form = sim
        .http
        .post(sim.url("/authentication/v1/token/access-key"))
        .form(&[("accessKeyId", "sim-key")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn both_discovery_documents_point_back_at_the_simulator() {
    let sim = Sim::start().await;
    let base = sim.handle.url().to_owned();
    let openid: Value = sim
        .http
        .get(sim.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        openid["token_endpoint"],
        json!(format!("{base}/auth/token"))
    );
    assert_eq!(openid["issuer"], json!(base));
    let tenant = sim.handle.config().tenant_id.clone();
    let get = |t: Option<&str>| {
        let mut r = sim.http.get(sim.url("/.well-known/cxone-configuration"));
        if let Some(t) = t {
            r = r.query(&[("tenantId", t)]);
        }
        r.send()
    };
    let doc: Value = get(Some(&tenant)).await.unwrap().json().await.unwrap();
    assert_eq!(doc["api_endpoint"], json!(base));
    assert_eq!(doc["auth_endpoint"], json!(base));
    assert!(
        doc["area"].is_string() && doc["domain"].is_string(),
        "{doc}"
    );
    assert_eq!(
        get(Some("other")).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(None).await.unwrap().status(), StatusCode::BAD_REQUEST);

    sim.handle
        .set_faults(Faults {
            discovery_unavailable: true,
            ..Faults::default()
        })
        .unwrap();
    assert_eq!(
        get(Some(&tenant)).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn the_user_search_pages_a_team_of_1200_at_500() {
    let sim = sim_with_team("back-office", 1200).await;
    let token = access_key_token(&sim).await;
    let mut seen = Vec::new();
    for skip in [0, 500, 1000] {
        let (status, body) = search(&sim, &token, page("back-office", skip, 500)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["totalRecords"], json!(1200));
        assert_eq!(body["skip"], json!(skip));
        for u in body["users"].as_array().unwrap() {
            assert_eq!(u["teamId"], json!("back-office"));
            assert_eq!(u["status"], json!("ACTIVE"));
            seen.push(u["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen.len(), 1200);
    seen.dedup();
    assert_eq!(seen.len(), 1200, "pages overlap");
    let (_, past) = search(&sim, &token, page("back-office", 1200, 500)).await;
    assert_eq!(past["users"], json!([]));
    // Other teams and other statuses are not found.
    let (_, none) = search(&sim, &token, page("elsewhere", 0, 500)).await;
    assert_eq!(none["totalRecords"], json!(0));
    assert!(sim.handle.set_user_status("back-office-u0000", "INACTIVE"));
    let (_, active) = search(&sim, &token, page("back-office", 0, 10)).await;
    assert_eq!(active["totalRecords"], json!(1199));
    // A page is at most 1000 users.
    let (_, big) = search(&sim, &token, page("back-office", 0, 5000)).await;
    assert_eq!(big["users"].as_array().unwrap().len(), 1000);
    // No token, no answer.
    let (status, _) = search(&sim, "not-a-token", page("back-office", 0, 10)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn teams_change_through_the_control_endpoints() {
    let sim = sim_with_team("t1", 2).await;
    let token = access_key_token(&sim).await;
    let put = sim
        .http
        .put(sim.url("/_sim/teams/t1/newcomer"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let del = sim
        .http
        .delete(sim.url("/_sim/teams/t1/t1-u0000"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let again = sim
        .http
        .delete(sim.url("/_sim/teams/t1/t1-u0000"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let teams: Value = sim
        .http
        .get(sim.url("/_sim/teams"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(teams, json!({"t1": ["newcomer", "t1-u0001"]}));
    let (_, body) = search(&sim, &token, page("t1", 0, 10)).await;
    assert_eq!(body["totalRecords"], json!(2));
}

#[tokio::test]
async fn the_search_can_be_down_failing_half_way_or_slow() {
    let sim = sim_with_team("t", 30).await;
    let token = access_key_token(&sim).await;
    let set = |f: Faults| sim.handle.set_faults(f).unwrap();

    set(Faults {
        search_down: true,
        ..Faults::default()
    });
    let r = sim
        .http
        .post(sim.url("/user-management/v2/users/search"))
        .bearer_auth(&token)
        .json(&page("t", 0, 10))
        .send()
        .await;
    // The answer breaks off: either sending or reading the body fails.
    let broken = match r {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(broken, "a search that is down must not answer whole");

    set(Faults {
        search_status: Some(503),
        ..Faults::default()
    });
    assert_eq!(
        search(&sim, &token, page("t", 0, 10)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(sim
        .handle
        .set_faults(Faults {
            search_status: Some(200),
            ..Faults::default()
        })
        .is_err());

    set(Faults {
        search_fail_from_skip: Some(10),
        ..Faults::default()
    });
    assert_eq!(
        search(&sim, &token, page("t", 0, 10)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        search(&sim, &token, page("t", 10, 10)).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    set(Faults {
        search_latency_ms: 300,
        ..Faults::default()
    });
    let t = Instant::now();
    assert_eq!(
        search(&sim, &token, page("t", 0, 10)).await.0,
        StatusCode::OK
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
}
