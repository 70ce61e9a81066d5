//! The directory client against the simulator: whole teams in pages, or
//! nothing (so the daemon keeps what it had).

use recsched::clock::{Clock, SystemClock};
use recsched::cxone::directory::Settings;
use recsched::cxone::{self, AuthMode, Client, CxoneError, Limits};
use recsched::policy::TeamId;
use recsched::retry::RetryPolicy;
use recsched::secret::Secret;
use recsched::simulator::{self, Faults, SimConfig, SimHandle, SEARCH_PATH};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

async fn sim(n: usize) -> SimHandle {
    let users = (0..n).map(|i| format!("m{i:04}")).collect();
    simulator::spawn(SimConfig {
        teams: BTreeMap::from([("t".to_owned(), users)]),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client(sim: &SimHandle) -> Client {
    let c = sim.config();
    let settings = cxone::Settings {
        auth: Some(AuthMode::AccessKey),
        api_base: sim.url().to_owned(),
        access_key_url: sim.access_key_url(),
        access_key_id: c.access_key_id.clone(),
        access_key_secret: Some(Secret::new(c.access_key_secret.clone())),
        ..cxone::Settings::default()
    };
    Client::new(&settings, None, Limits::default(), Arc::new(SystemClock)).unwrap()
}

const QUICK: RetryPolicy = RetryPolicy {
    base_ms: 10,
    cap_ms: 40,
    max_server_errors: 2,
};

async fn read(c: &Client, settings: &Settings) -> Result<usize, CxoneError> {
    let deadline = SystemClock.now() + chrono::Duration::seconds(5);
    c.team_members(
        settings,
        &TeamId::parse("t").unwrap(),
        &QUICK,
        deadline,
        &CancellationToken::new(),
    )
    .await
    .map(|r| r.members.len())
    .map_err(|e| e.error)
}

#[tokio::test]
async fn a_team_is_read_whole_in_pages_of_the_configured_size() {
    let sim = sim(1200).await;
    let c = client(&sim);
    assert_eq!(read(&c, &Settings::default()).await.unwrap(), 1200);
    let searches = |sim: &SimHandle| {
        sim.requests()
            .iter()
            .filter(|r| r.path == SEARCH_PATH)
            .count()
    };
    assert_eq!(searches(&sim), 3);
    let small = Settings {
        page_size: 100,
        ..Settings::default()
    };
    assert_eq!(read(&c, &small).await.unwrap(), 1200);
    assert_eq!(searches(&sim), 3 + 12);
}

#[tokio::test]
async fn a_page_that_keeps_failing_fails_the_whole_team() {
    let sim = sim(1200).await;
    let c = client(&sim);
    sim.set_faults(Faults {
        search_fail_from_skip: Some(500),
        ..Faults::default()
    })
    .unwrap();
    let e = read(&c, &Settings::default()).await.unwrap_err();
    assert_eq!(e.status(), Some(500), "{e}");
    // A refusal is final at once.
    sim.set_faults(Faults {
        search_status: Some(403),
        ..Faults::default()
    })
    .unwrap();
    let e = read(&c, &Settings::default()).await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    let answered: Vec<u16> = sim
        .requests()
        .iter()
        .filter(|r| r.path == SEARCH_PATH)
        .map(|r| r.status)
        .collect();
    assert_eq!(answered.last(), Some(&403));
    assert_eq!(
        answered.iter().filter(|s| **s == 403).count(),
        1,
        "a 403 is final: {answered:?}"
    );
}
