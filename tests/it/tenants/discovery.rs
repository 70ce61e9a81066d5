//! Discovery: the endpoints found from `cxone.issuer`, cached, used again
//! when the issuer is down, re-discovered when the API host stops
//! answering; and `recsched check --online`.

use super::{issuer_only, requests_to};
use crate::cli::Recsched;
use crate::common::daemon::{wait_for, Rig};
use crate::daemon::add_policy;
use recsched::clock::SystemClock;
use recsched::cxone::{self, AuthMode, Client, Discovered, Limits};
use recsched::recording::{RecordingDuration, UserId};
use recsched::secret::Secret;
use recsched::simulator::{
    self, Faults, SimConfig, SimHandle, CXONE_CONFIGURATION_PATH, OPENID_CONFIGURATION_PATH,
};
use std::sync::Arc;
use std::time::Duration;

fn recorded(rig: &Rig, user: &str) -> bool {
    rig.recordings().iter().any(|r| r.user_id == user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_are_discovered_cached_and_used_again_when_the_issuer_is_down() {
    let mut rig = Rig::new().await;
    issuer_only(&mut rig);
    add_policy(&rig, "found", "* * * * * *", 30, "expire", &["d1"]).await;
    let daemon = rig.spawn();
    wait_for(Duration::from_secs(15), "d1 recorded", || async {
        recorded(&rig, "d1").then_some(())
    })
    .await;
    assert_eq!(requests_to(&rig, OPENID_CONFIGURATION_PATH), 1);
    let asked: Vec<_> = rig
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == CXONE_CONFIGURATION_PATH)
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let tenant = rig.sim.config().tenant_id.clone();
    assert_eq!(
        asked[0].query.as_deref(),
        Some(&*format!("tenantId={tenant}"))
    );
    let cached: Discovered = wait_for(Duration::from_secs(5), "the cache", || async {
        rig.store
            .get_state("cxone_discovered")
            .await
            .unwrap()
            .map(|t| serde_json::from_str(&t).unwrap())
    })
    .await;
    assert_eq!(cached.api_base, format!("{}/", rig.sim.url()));
    assert_eq!(cached.tenant_id, tenant);
    assert_eq!(cached.tenant_from, "token");
    assert!(cached
        .token_url
        .ends_with("/authentication/v1/token/access-key"));
    let (_, log) = daemon.term(Duration::from_secs(15));
    assert!(log.contains("discovered the CXone endpoints"), "{log}");

    // The issuer is down at the next start: the cache carries on.
    rig.sim
        .set_faults(Faults {
            discovery_unavailable: true,
            ..Faults::default()
        })
        .unwrap();
    add_policy(&rig, "cached", "* * * * * *", 30, "expire", &["d2"]).await;
    let daemon = rig.spawn();
    wait_for(Duration::from_secs(15), "d2 recorded", || async {
        recorded(&rig, "d2").then_some(())
    })
    .await;
    let log = daemon.log();
    assert!(
        log.contains("using the endpoints discovered earlier"),
        "{log}"
    );
}

fn access_key_settings(issuer: &SimHandle) -> cxone::Settings {
    let c = issuer.config();
    cxone::Settings {
        auth: Some(AuthMode::AccessKey),
        issuer: issuer.issuer().to_owned(),
        access_key_id: c.access_key_id.clone(),
        access_key_secret: Some(Secret::new(c.access_key_secret.clone())),
        request_timeout_seconds: 2.0,
        ..cxone::Settings::default()
    }
}

#[tokio::test]
async fn the_client_discovers_again_when_the_api_host_stops_answering() {
    let issuer = simulator::spawn(SimConfig::default()).await.unwrap();
    // The tenant's old API host: a port nobody listens on any more.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    issuer
        .set_faults(Faults {
            discovery_api_endpoint: Some(gone.clone()),
            ..Faults::default()
        })
        .unwrap();
    let c = Client::new(
        &access_key_settings(&issuer),
        None,
        Limits::default(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let found = c.discover().await.unwrap();
    assert_eq!(found.api_base, format!("{gone}/"));
    let user = UserId::parse("r1").unwrap();
    let d = RecordingDuration::from_secs(30).unwrap();

    // The issuer now names the new host; the client learns it only when
    // the old one has failed often enough.
    issuer.set_faults(Faults::default()).unwrap();
    for _ in 0..cxone::discovery::REDISCOVER_AFTER_FAILURES {
        assert_eq!(c.start(&user, d).await.exchange.status, None);
    }
    assert_eq!(
        c.api_base().map(|u| u.to_string()),
        Some(format!("{}/", issuer.url()))
    );
    assert_eq!(c.start(&user, d).await.exchange.status, Some(200));
    assert_eq!(issuer.recordings().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_discovers_and_gets_a_token_without_printing_secrets() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    let c = sim.config().clone();
    let r = Recsched::migrated();
    let online = |extra: &[(&str, &str)]| {
        let mut cmd = r.command(&["check", "--online"]);
        cmd.env("RECSCHED_CXONE__AUTH", "access-key")
            .env("RECSCHED_CXONE__ISSUER", sim.issuer())
            .env("RECSCHED_CXONE__ACCESS_KEY_ID", &c.access_key_id)
            .env("RECSCHED_CXONE__ACCESS_KEY_SECRET", &c.access_key_secret);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = online(&[]);
    assert_eq!(code, Some(0), "{out}");
    for want in [
        format!("online: issuer {}/ names token_endpoint {}/auth/token", sim.url(), sim.url()),
        format!("online: tenant {} (from the token's tenantId claim)", c.tenant_id),
        format!("online: API base {}/ (from the document's api_endpoint)", sim.url()),
        format!(
            "online: auth access-key: token obtained from {}/authentication/v1/token/access-key; its tenantId claim is {}",
            sim.url(),
            c.tenant_id
        ),
        "online: ok".to_owned(),
    ] {
        assert!(out.lines().any(|l| l == want), "missing {want:?}:\n{out}");
    }
    assert!(!out.contains(&c.access_key_secret), "{out}");

    // Without api_endpoint the host is built from area and domain.
    sim.set_faults(Faults {
        discovery_api_endpoint: Some(String::new()),
        ..Faults::default()
    })
    .unwrap();
    let (code, out) = online(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "online: API base https://api-sim1.recsched-simulator.invalid/ (from the document's area and domain)"
        ),
        "{out}"
    );
    sim.set_faults(Faults::default()).unwrap();

    // A tenant id of the operator's wins, and a wrong one is named.
    let (code, out) = online(&[("RECSCHED_CXONE__TENANT_ID", "not-ours")]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("online: FAILED:"), "{out}");
    assert!(out.contains("tenantId=not-ours answered HTTP 404"), "{out}");
    assert!(
        out.contains("check cxone.issuer and the tenant id"),
        "{out}"
    );

    // A wrong key fails the token request, named, the secret left out.
    let (code, out) = online(&[("RECSCHED_CXONE__ACCESS_KEY_SECRET", "zq-wrong")]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("HTTP 401"), "{out}");
    assert!(!out.contains("zq-wrong"), "{out}");
}
