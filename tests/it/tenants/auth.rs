//! `cxone.auth`: the access-key token endpoint, in the client and in the
//! daemon, and what `recsched check` says about the mode.

use super::{access_key_only, requests_to};
use crate::cli::Recsched;
use crate::common::daemon::{wait_for, Rig};
use crate::common::sim::Sim;
use crate::daemon::add_policy;
use recsched::cxone::{self, Action, AuthMode, Client, Limits};
use recsched::recording::{RecordingDuration, UserId};
use recsched::secret::Secret;
use recsched::simulator::ACCESS_KEY_PATH;
use std::sync::Arc;
use std::time::Duration;

fn access_key_settings(sim: &Sim) -> cxone::Settings {
    let c = sim.handle.config();
    cxone::Settings {
        auth: Some(AuthMode::AccessKey),
        api_base: sim.handle.url().to_owned(),
        access_key_url: sim.handle.access_key_url(),
        access_key_id: c.access_key_id.clone(),
        access_key_secret: Some(Secret::new(c.access_key_secret.clone())),
        ..cxone::Settings::default()
    }
}

fn user(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

#[tokio::test]
async fn an_access_key_token_is_used_and_renewed_by_posting_the_key_again() {
    let sim = Sim::start().await;
    let clock = Arc::new(sim.clock.clone());
    let c = Client::new(&access_key_settings(&sim), None, Limits::default(), clock).unwrap();
    let d = RecordingDuration::from_secs(30).unwrap();
    assert_eq!(c.start(&user("a"), d).await.exchange.status, Some(200));
    assert_eq!(c.start(&user("b"), d).await.exchange.status, Some(200));
    let count = |path: &str| {
        sim.handle
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    };
    assert_eq!(count(ACCESS_KEY_PATH), 1, "one token for both calls");
    assert_eq!(count("/auth/token"), 0, "no OAuth grant in access-key mode");

    // Past the token's lifetime: the key is posted again.
    sim.advance(3600);
    assert_eq!(c.start(&user("c"), d).await.exchange.status, Some(200));
    assert_eq!(count(ACCESS_KEY_PATH), 2);
}

#[tokio::test]
async fn a_wrong_access_key_is_final_and_never_shown() {
    let sim = Sim::start().await;
    let settings = cxone::Settings {
        access_key_secret: Some(Secret::new("wrong-zq-secret")),
        ..access_key_settings(&sim)
    };
    let c = Client::new(
        &settings,
        None,
        Limits::default(),
        Arc::new(sim.clock.clone()),
    )
    .unwrap();
    let a = c
        .start(&user("a"), RecordingDuration::from_secs(30).unwrap())
        .await;
    let e = a.result.unwrap_err();
    assert_eq!(e.action(), Action::Final);
    let text = e.to_string();
    assert!(text.contains("access-key grant"), "{text}");
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(
        text.contains("check cxone.access_key_id and cxone.access_key_secret"),
        "{text}"
    );
    assert!(!text.contains("zq"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_with_only_an_access_key_records() {
    let mut rig = Rig::new().await;
    access_key_only(&mut rig);
    let url = rig.sim.access_key_url();
    rig.set("RECSCHED_CXONE__ACCESS_KEY_URL", &url);
    add_policy(&rig, "keyed", "* * * * * *", 30, "expire", &["k1"]).await;
    let daemon = rig.spawn();
    wait_for(Duration::from_secs(15), "k1 recording", || async {
        rig.recordings()
            .iter()
            .any(|r| r.user_id == "k1")
            .then_some(())
    })
    .await;
    // The contact id (above 2^53, as NICE's are) is kept exactly.
    let made = rig.recordings()[0].contact_id;
    assert!(made > 1 << 53);
    let row = wait_for(Duration::from_secs(5), "the row's contact id", || async {
        rig.rows().await.into_iter().find_map(|r| r.contact_id)
    })
    .await;
    assert_eq!(u64::try_from(row.get()).unwrap(), made);
    assert!(requests_to(&rig, ACCESS_KEY_PATH) >= 1);
    assert_eq!(requests_to(&rig, "/auth/token"), 0);
    let log = daemon.log();
    let secret = rig.sim.config().access_key_secret.clone();
    assert!(!log.contains(&secret), "the secret is in the log:\n{log}");
}

#[test]
fn check_names_the_mode_and_the_keys_it_lacks() {
    let r = Recsched::migrated();
    let run = r.ok(&["check"]);
    assert!(
        run.stdout
            .contains("cxone: auth password (the default); missing cxone.client_id"),
        "{run:?}"
    );

    let mut cmd = r.command(&["check"]);
    cmd.env("RECSCHED_CXONE__AUTH", "access-key")
        .env("RECSCHED_CXONE__ACCESS_KEY_ID", "key-1")
        .env("RECSCHED_CXONE__CLIENT_ID", "client-1");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "cxone: auth access-key (cxone.auth = \"access-key\"); missing \
             cxone.access_key_secret: `recsched run` refuses to start until it is set; \
             unused in this mode: cxone.client_id"
        ),
        "{stdout}"
    );

    let mut cmd = r.command(&["check"]);
    cmd.env("RECSCHED_CXONE__AUTH", "access-key")
        .env("RECSCHED_CXONE__ACCESS_KEY_ID", "key-1")
        .env("RECSCHED_CXONE__ACCESS_KEY_SECRET", "zq-secret");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("every key it needs is set"), "{stdout}");
    assert!(!stdout.contains("zq-secret"), "{stdout}");

    let mut cmd = r.command(&["check"]);
    cmd.env("RECSCHED_CXONE__AUTH", "oauth");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("access-key"), "{stdout}");
}
