//! The CXone client against the simulator over real loopback HTTP.

use crate::common::sim::Sim;
use recsched::clock::{Clock, SystemClock};
use recsched::cxone::retrying::{GiveUp, Retrying};
use recsched::cxone::{self, Action, Client, CxoneError, Limits, Stopped};
use recsched::recording::{RecordingDuration, UserId};
use recsched::retry::RetryPolicy;
use recsched::secret::Secret;
use recsched::simulator::{self, EndReason, Faults, SimConfig, SimHandle};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

fn settings_for(sim: &SimHandle) -> cxone::Settings {
    let c = sim.config();
    cxone::Settings {
        api_base: sim.url().to_owned(),
        token_url: sim.token_url(),
        client_id: c.client_id.clone(),
        client_secret: Some(Secret::new(c.client_secret.clone())),
        access_key_id: c.access_key_id.clone(),
        access_key_secret: Some(Secret::new(c.access_key_secret.clone())),
        request_timeout_seconds: 5.0,
        ..cxone::Settings::default()
    }
}

fn client(settings: &cxone::Settings, clock: Arc<dyn Clock>) -> Client {
    Client::new(settings, None, Limits::default(), clock).expect("client builds")
}

fn user(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

fn secs(n: i64) -> RecordingDuration {
    RecordingDuration::from_secs(n).unwrap()
}

fn token_requests(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path == "/auth/token")
        .count()
}

#[tokio::test]
async fn start_then_stop_round_trip() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    let c = client(&settings_for(&sim), Arc::new(SystemClock));
    let started = c.start(&user("agent-1"), secs(60)).await;
    assert_eq!(started.exchange.status, Some(200));
    assert_eq!(started.exchange.requested, Some(secs(60)));
    let started = started.result.unwrap();
    assert!(!started.accepted);
    let made = sim.recordings();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].contact_id as i64, started.contact_id.get());
    assert_eq!(made[0].duration, 60);
    assert_eq!(
        Some(made[0].interaction_id.as_str()),
        started.interaction_id.as_ref().map(|i| i.0.as_str())
    );

    let stopped = c.stop(&user("agent-1"), started.contact_id).await;
    assert_eq!(stopped.result.unwrap(), Stopped::Ended { accepted: false });
    assert_eq!(sim.recordings()[0].end_reason, Some(EndReason::Stopped));
    // Stopping again: nothing to stop, which is "already ended".
    let again = c.stop(&user("agent-1"), started.contact_id).await;
    assert_eq!(again.exchange.status, Some(404));
    assert_eq!(again.result.unwrap(), Stopped::AlreadyEnded);
}

#[tokio::test]
async fn repeat_start_returns_the_running_contact_id() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    let c = client(&settings_for(&sim), Arc::new(SystemClock));
    let first = c.start(&user("u"), secs(100)).await.result.unwrap();
    let second = c.start(&user("u"), secs(30)).await.result.unwrap();
    assert_eq!(first.contact_id, second.contact_id);
    let made = sim.recordings();
    assert_eq!(made.len(), 1, "a repeat start made a second recording");
    assert_eq!(made[0].duration, 100);
}

#[tokio::test]
async fn fifty_concurrent_calls_share_one_token_and_one_renewal() {
    let sim = Sim::start().await;
    let clock = sim.clock.clone();
    let c = Arc::new(client(&settings_for(&sim.handle), Arc::new(clock.clone())));
    let burst = |tag: &'static str| {
        let calls = (0..50).map(|i| {
            let c = c.clone();
            async move { c.start(&user(&format!("{tag}-{i}")), secs(30)).await }
        });
        futures::future::join_all(calls)
    };
    for a in burst("first").await {
        assert_eq!(a.exchange.status, Some(200), "{:?}", a.result);
    }
    assert_eq!(token_requests(&sim.handle), 1);

    // Past the token's lifetime (3600 s): one renewal for all 50.
    clock.advance(chrono::Duration::seconds(3600));
    for a in burst("second").await {
        assert_eq!(a.exchange.status, Some(200), "{:?}", a.result);
    }
    let grants: Vec<_> = sim
        .handle
        .requests()
        .into_iter()
        .filter(|r| r.path == "/auth/token")
        .collect();
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert!(grants.iter().all(|g| g.status == 200));
}

#[tokio::test]
async fn a_rejected_token_is_renewed_once() {
    let sim = Sim::start().await;
    // The client's clock stands still while the simulator's moves on, so
    // the client holds a token it believes valid and the API rejects.
    let client_clock = recsched::clock::ManualClock::new(sim.clock.now());
    let c = client(&settings_for(&sim.handle), Arc::new(client_clock.clone()));
    c.start(&user("a"), secs(30)).await.result.unwrap();
    sim.clock.advance(chrono::Duration::seconds(4000));

    let mut seen = Vec::new();
    let cancel = CancellationToken::new();
    let mut jitter = || 0.0;
    let mut r = Retrying {
        client: &c,
        policy: &RetryPolicy::default(),
        clock: &client_clock,
        jitter: &mut jitter,
        observer: &mut seen,
        cancel: &cancel,
        gate: &cxone::Open,
    };
    let end = client_clock.now() + chrono::Duration::seconds(60);
    let (started, attempts) = r
        .start(&user("b"), end, chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(attempts, 2);
    let statuses: Vec<_> = seen.iter().map(|(ex, _, _)| ex.status).collect();
    assert_eq!(statuses, [Some(401), Some(200)]);
    assert!(started.contact_id.get() > 0);
    assert_eq!(token_requests(&sim.handle), 2, "exactly one renewal");

    // A static token cannot be renewed: one more try, then final.
    let stat = cxone::Settings {
        bearer_token: Some(Secret::new("never-issued")),
        ..settings_for(&sim.handle)
    };
    let bad = client(&stat, Arc::new(client_clock.clone()));
    let mut seen = Vec::new();
    let mut r = Retrying {
        client: &bad,
        policy: &RetryPolicy::default(),
        clock: &client_clock,
        jitter: &mut jitter,
        observer: &mut seen,
        cancel: &cancel,
        gate: &cxone::Open,
    };
    let e = r
        .start(&user("c"), end, chrono::Duration::zero())
        .await
        .unwrap_err();
    assert!(matches!(e, GiveUp::Final { attempts: 2, .. }), "{e:?}");
    match e {
        GiveUp::Final { error, .. } => assert_eq!(error.action(), Action::Reauthenticate),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn each_fault_class_is_classified() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    let c = client(&settings_for(&sim), Arc::new(SystemClock));
    let cases: &[(Faults, Option<u16>, Action)] = &[
        (
            Faults {
                rate_425: 1.0,
                retry_after_secs: Some(3),
                ..Faults::default()
            },
            Some(425),
            Action::Retry {
                retry_after: Some(std::time::Duration::from_secs(3)),
                server_error: false,
            },
        ),
        (
            Faults {
                rate_504: 1.0,
                ..Faults::default()
            },
            Some(504),
            Action::Retry {
                retry_after: None,
                server_error: false,
            },
        ),
        (
            Faults {
                rate_504_after_start: 1.0,
                ..Faults::default()
            },
            Some(504),
            Action::Retry {
                retry_after: None,
                server_error: false,
            },
        ),
        (
            Faults {
                rate_500: 1.0,
                ..Faults::default()
            },
            Some(500),
            Action::Retry {
                retry_after: None,
                server_error: true,
            },
        ),
        (
            Faults {
                malformed_body_rate: 1.0,
                ..Faults::default()
            },
            Some(200),
            Action::Final,
        ),
    ];
    for (i, (faults, status, action)) in cases.iter().enumerate() {
        sim.set_faults(faults.clone()).unwrap();
        let a = c.start(&user(&format!("fault-{i}")), secs(30)).await;
        assert_eq!(a.exchange.status, *status, "case {i}");
        let err = a.result.unwrap_err();
        assert_eq!(err.action(), *action, "case {i}: {err}");
        if let CxoneError::MalformedBody { body, .. } = &err {
            assert!(!body.is_empty(), "the raw body is kept");
        }
    }
    // 202 and a contact id sent as a string of digits are both successes.
    sim.set_faults(Faults {
        rate_202: 1.0,
        contact_id_as_string_rate: 1.0,
        ..Faults::default()
    })
    .unwrap();
    let a = c.start(&user("accepted"), secs(30)).await;
    assert_eq!(a.exchange.status, Some(202));
    let s = a.result.unwrap();
    assert!(s.accepted);
    let made = sim.recordings();
    let mine = made.iter().find(|r| r.user_id == "accepted").unwrap();
    assert_eq!(mine.contact_id as i64, s.contact_id.get());

    // A 400: the duration sent under a name the vendor does not know.
    sim.set_faults(Faults::default()).unwrap();
    let odd = client(
        &cxone::Settings {
            duration_param: "duration".into(),
            ..settings_for(&sim)
        },
        Arc::new(SystemClock),
    );
    let a = odd.start(&user("x"), secs(30)).await;
    assert_eq!(a.exchange.status, Some(400));
    assert_eq!(a.result.unwrap_err().action(), Action::Final);

    // Nobody listening: a transport error, retryable.
    let addr = sim.addr();
    drop(sim);
    let gone = client(
        &cxone::Settings {
            api_base: format!("http://{addr}"),
            bearer_token: Some(Secret::new("t")),
            ..cxone::Settings::default()
        },
        Arc::new(SystemClock),
    );
    let a = gone.start(&user("x"), secs(30)).await;
    assert_eq!(a.exchange.status, None);
    assert_eq!(
        a.result.unwrap_err().action(),
        Action::Retry {
            retry_after: None,
            server_error: false
        }
    );
}

#[tokio::test]
async fn retries_honour_retry_after_and_ask_for_less_each_time() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    sim.set_faults(Faults {
        rate_425: 1.0,
        retry_after_secs: Some(1),
        ..Faults::default()
    })
    .unwrap();
    let clock = SystemClock;
    let c = client(&settings_for(&sim), Arc::new(clock));
    let end = clock.now() + chrono::Duration::milliseconds(8_200);
    let mut seen = Vec::new();
    let cancel = CancellationToken::new();
    let mut jitter = || 0.5;
    let mut r = Retrying {
        client: &c,
        policy: &RetryPolicy::default(),
        clock: &clock,
        jitter: &mut jitter,
        observer: &mut seen,
        cancel: &cancel,
        gate: &cxone::Open,
    };
    let e = r
        .start(&user("late"), end, chrono::Duration::zero())
        .await
        .unwrap_err();
    assert!(matches!(e, GiveUp::Deadline { .. }), "{e:?}");
    let asked: Vec<u32> = seen
        .iter()
        .map(|(ex, _, _)| ex.requested.unwrap().as_secs())
        .collect();
    assert_eq!(asked, [8, 7, 6, 5], "each retry asks for what is left");
    let times: Vec<_> = seen.iter().map(|(ex, _, _)| ex.at).collect();
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= chrono::Duration::milliseconds(990),
            "Retry-After not honoured: {times:?}"
        );
    }
    // The last attempt left no later than the deadline (end - 5 s).
    assert!(*times.last().unwrap() <= end - chrono::Duration::seconds(5));
    assert!(sim.recordings().is_empty());
}

#[tokio::test]
async fn a_start_answered_504_after_it_started_is_safe_to_retry() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    let c = client(&settings_for(&sim), Arc::new(SystemClock));
    sim.set_faults(Faults {
        rate_504_after_start: 1.0,
        ..Faults::default()
    })
    .unwrap();
    let a = c.start(&user("ambiguous"), secs(60)).await;
    assert_eq!(a.exchange.status, Some(504));
    sim.set_faults(Faults::default()).unwrap();
    let b = c.start(&user("ambiguous"), secs(59)).await.result.unwrap();
    let made = sim.recordings();
    assert_eq!(made.len(), 1, "the retry made a second recording");
    assert_eq!(made[0].contact_id as i64, b.contact_id.get());
}

#[tokio::test]
async fn server_errors_are_retried_only_a_few_times() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    sim.set_faults(Faults {
        rate_500: 1.0,
        ..Faults::default()
    })
    .unwrap();
    let clock = SystemClock;
    let c = client(&settings_for(&sim), Arc::new(clock));
    let mut seen = Vec::new();
    let cancel = CancellationToken::new();
    let mut jitter = || 0.0;
    let policy = RetryPolicy {
        max_server_errors: 2,
        ..RetryPolicy::default()
    };
    let mut r = Retrying {
        client: &c,
        policy: &policy,
        clock: &clock,
        jitter: &mut jitter,
        observer: &mut seen,
        cancel: &cancel,
        gate: &cxone::Open,
    };
    let e = r
        .start(
            &user("s"),
            clock.now() + chrono::Duration::seconds(60),
            chrono::Duration::zero(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, GiveUp::Final { attempts: 3, .. }), "{e:?}");
}

#[tokio::test]
async fn hostile_user_ids_arrive_as_one_value() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    let c = client(&settings_for(&sim), Arc::new(SystemClock));
    let ids = [
        "1&recordingDuration=1",
        "a b",
        "x#frag",
        "100%25",
        "%",
        "gebruiker-é-ü-用户-🎥",
        "a+b=c;d",
        "?userId=evil",
    ];
    for raw in ids {
        let s = c.start(&user(raw), secs(45)).await;
        assert_eq!(s.exchange.status, Some(200), "{raw}");
        let contact = s.result.unwrap().contact_id;
        assert_eq!(
            c.stop(&user(raw), contact).await.exchange.status,
            Some(200),
            "{raw}"
        );
    }
    let made = sim.recordings();
    let users: Vec<&str> = made.iter().map(|r| r.user_id.as_str()).collect();
    assert_eq!(users, ids);
    assert!(made.iter().all(|r| r.duration == 45));
    assert!(made
        .iter()
        .all(|r| r.end_reason == Some(EndReason::Stopped)));
}

/// Captures every log line at trace level, for the secrets test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_logs_or_errors() {
    let capture = Capture::default();
    let subscriber = recsched::telemetry::subscriber(
        recsched::telemetry::LogFormat::Json,
        Some("trace"),
        capture.clone(),
        false,
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = SimConfig {
        client_secret: "client-SECRET-1234".into(),
        access_key_secret: "key-SECRET-5678".into(),
        token_ttl_secs: 1,
        ..SimConfig::default()
    };
    let sim = simulator::spawn(config).await.unwrap();
    let clock = SystemClock;
    let mut texts = Vec::new();
    // Good credentials: tokens are issued, renewed and used.
    let good = client(&settings_for(&sim), Arc::new(clock));
    let a = good.start(&user("u1"), secs(30)).await;
    texts.push(format!("{:?} {:?}", a.exchange, a.result));
    let a = good.start(&user("u2"), secs(30)).await;
    texts.push(format!("{:?} {:?}", a.exchange, a.result));
    // Wrong secrets: the token endpoint says no.
    let wrong = cxone::Settings {
        client_secret: Some(Secret::new("wrong-SECRET-9999")),
        ..settings_for(&sim)
    };
    let bad = client(&wrong, Arc::new(clock));
    let a = bad.start(&user("u3"), secs(30)).await;
    let err = a.result.unwrap_err();
    assert_eq!(err.action(), Action::Final, "{err}");
    texts.push(format!("{err} {err:?} {:?}", a.exchange));
    // A static token the API rejects.
    let stat = cxone::Settings {
        bearer_token: Some(Secret::new("static-SECRET-0000")),
        ..settings_for(&sim)
    };
    let st = client(&stat, Arc::new(clock));
    let a = st.start(&user("u4"), secs(30)).await;
    texts.push(format!("{:?} {:?}", a.exchange, a.result));
    texts.push(format!("{:?}", settings_for(&sim)));
    tracing::info!(settings = ?stat, "settings as a log field");

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "nothing was captured");
    let everything = format!("{logs}\n{}", texts.join("\n"));
    for secret in [
        "client-SECRET-1234",
        "key-SECRET-5678",
        "wrong-SECRET-9999",
        "static-SECRET-0000",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
    // Nor any access token the simulator issued (they are random; look for
    // the bearer header form).
    assert!(
        !everything.to_lowercase().contains("bearer "),
        "a bearer token leaked"
    );
}

#[test]
fn a_missing_secret_names_the_setting_to_fix() {
    let s = cxone::Settings {
        api_base: "http://127.0.0.1:9".into(),
        client_id: "id".into(),
        access_key_id: "key".into(),
        access_key_secret: Some(Secret::new("k")),
        ..cxone::Settings::default()
    };
    let e = Client::new(&s, None, Limits::default(), Arc::new(SystemClock))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("client secret missing"), "{e}");
    assert!(e.contains("cxone.client_secret"), "{e}");
    assert!(e.contains("RECSCHED_CXONE__CLIENT_SECRET"), "{e}");
}

#[test]
fn secrets_are_read_from_a_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("client-secret"), "from-file\n").unwrap();
    std::fs::write(dir.path().join("key-secret"), "key-from-file").unwrap();
    let s = cxone::Settings {
        api_base: "http://127.0.0.1:9".into(),
        client_id: "id".into(),
        access_key_id: "key".into(),
        client_secret_file: Some("client-secret".into()),
        access_key_secret_file: Some("key-secret".into()),
        ..cxone::Settings::default()
    };
    assert!(Client::new(
        &s,
        Some(dir.path()),
        Limits::default(),
        Arc::new(SystemClock)
    )
    .is_ok());
    let e = Client::new(&s, None, Limits::default(), Arc::new(SystemClock))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("client_secret_file client-secret: cannot read it"),
        "{e}"
    );
}

// ---- a hostile vendor -----------------------------------------------------

fn with_faults(sim: &SimHandle, faults: Faults) {
    sim.set_faults(faults).unwrap();
}

#[tokio::test]
async fn plain_http_to_a_host_that_is_not_loopback_is_refused() {
    let base = cxone::Settings {
        bearer_token: Some(Secret::new("t")),
        ..cxone::Settings::default()
    };
    let build = |s: &cxone::Settings| {
        Client::new(s, None, Limits::default(), Arc::new(SystemClock)).map(drop)
    };
    for (api_base, ok) in [
        ("http://api.example.com", false),
        ("http://192.0.2.1:8080", false),
        ("https://api.example.com", true),
        ("http://127.0.0.1:9", true),
        ("http://localhost:9", true),
        ("http://[::1]:9", true),
    ] {
        let r = build(&cxone::Settings {
            api_base: api_base.into(),
            ..base.clone()
        });
        assert_eq!(r.is_ok(), ok, "{api_base}: {r:?}");
        if let Err(e) = r {
            let e = e.to_string();
            assert!(e.contains("cxone.api_base"), "{e}");
            assert!(e.contains("use https://"), "{e}");
        }
    }
    let e = build(&cxone::Settings {
        api_base: "https://api.example.com".into(),
        token_url: "http://auth.example.com/token".into(),
        client_id: "id".into(),
        client_secret: Some(Secret::new("s")),
        access_key_id: "k".into(),
        access_key_secret: Some(Secret::new("ks")),
        ..cxone::Settings::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("cxone.token_url"), "{e}");
    assert!(e.contains("unencrypted"), "{e}");
}

#[tokio::test]
async fn an_api_redirect_is_final_names_the_host_and_is_not_followed() {
    let elsewhere = crate::faults::hostile::Elsewhere::bind().await;
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    with_faults(
        &sim,
        Faults {
            user_faults: [(
                "moved".to_owned(),
                simulator::UserFault::Redirect {
                    location: format!("{}/steal", elsewhere.url()),
                },
            )]
            .into(),
            ..Faults::default()
        },
    );
    let c = client(&settings_for(&sim), Arc::new(SystemClock));
    let a = c.start(&user("moved"), secs(30)).await;
    assert_eq!(a.exchange.status, Some(307));
    let e = a.result.unwrap_err();
    assert_eq!(e.action(), Action::Final, "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("host `{}`", elsewhere.host())),
        "{text}"
    );
    assert!(text.contains("follows no redirect"), "{text}");
    let ok = c.start(&user("stays"), secs(30)).await;
    assert_eq!(ok.exchange.status, Some(200));
    elsewhere.assert_untouched();
}

#[tokio::test]
async fn a_token_redirect_is_final_names_the_host_and_secrets_stay_home() {
    let elsewhere = crate::faults::hostile::Elsewhere::bind().await;
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    with_faults(
        &sim,
        Faults {
            token_redirect: Some(format!("{}/auth/token", elsewhere.url())),
            token_redirect_limit: Some(1),
            ..Faults::default()
        },
    );
    let c = client(&settings_for(&sim), Arc::new(SystemClock));
    let a = c.start(&user("first"), secs(30)).await;
    assert_eq!(a.exchange.status, None, "no API request without a token");
    let e = a.result.unwrap_err();
    assert_eq!(e.action(), Action::Final, "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("host `{}`", elsewhere.host())),
        "{text}"
    );
    assert!(text.contains("cxone.token_url"), "{text}");
    assert!(text.contains("307"), "{text}");
    // The redirect was one answer: the next call gets a token.
    let ok = c.start(&user("second"), secs(30)).await;
    assert_eq!(ok.exchange.status, Some(200), "{:?}", ok.result);
    elsewhere.assert_untouched();
}

#[tokio::test]
async fn token_lifetimes_are_clamped_and_renewed_half_way() {
    let elsewhere = crate::faults::hostile::Elsewhere::bind().await;
    let sim = Sim::start().await;
    let clock = sim.clock.clone();
    // An absurd lifetime once panicked on the clock arithmetic; it is used
    // for 24 h at most.
    with_faults(
        &sim.handle,
        Faults {
            token_expires_in: Some(9_999_999_999_999),
            token_advertised_base: Some(elsewhere.url()),
            ..Faults::default()
        },
    );
    let c = client(&settings_for(&sim.handle), Arc::new(clock.clone()));
    let a = c.start(&user("absurd"), secs(30)).await;
    assert_eq!(a.exchange.status, Some(200), "{:?}", a.result);
    assert_eq!(token_requests(&sim.handle), 1);

    // A tiny lifetime (1 s) is used for 60 s, renewed after 30 s, not
    // before every call.
    let sim = Sim::start().await;
    let clock = sim.clock.clone();
    with_faults(
        &sim.handle,
        Faults {
            token_expires_in: Some(1),
            token_advertised_base: Some(elsewhere.url()),
            ..Faults::default()
        },
    );
    let c = client(&settings_for(&sim.handle), Arc::new(clock.clone()));
    for i in 0..10 {
        let a = c.start(&user(&format!("tiny-{i}")), secs(30)).await;
        assert_eq!(a.exchange.status, Some(200), "{:?}", a.result);
        clock.advance(chrono::Duration::seconds(2));
    }
    assert_eq!(token_requests(&sim.handle), 1, "one token for 20 s");
    clock.advance(chrono::Duration::seconds(11));
    c.start(&user("later"), secs(30)).await.result.unwrap();
    assert_eq!(token_requests(&sim.handle), 2, "renewed after 30 s");
    elsewhere.assert_untouched();
}

#[tokio::test]
async fn a_body_without_end_is_cut_at_64_kib_and_malformed() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    with_faults(
        &sim,
        Faults {
            user_faults: [
                (
                    "endless".to_owned(),
                    simulator::UserFault::OversizedBody { bytes: 1 << 40 },
                ),
                (
                    "long-id".to_owned(),
                    simulator::UserFault::LongInteractionId { chars: 257 },
                ),
            ]
            .into(),
            ..Faults::default()
        },
    );
    let c = client(&settings_for(&sim), Arc::new(SystemClock));
    let begun = std::time::Instant::now();
    let a = c.start(&user("endless"), secs(30)).await;
    // A terabyte read whole would take far past the 5 s request timeout.
    assert!(begun.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(a.exchange.status, Some(200));
    assert!(a.exchange.body.len() <= recsched::recording::BODY_KEEP_BYTES);
    let e = a.result.unwrap_err();
    assert_eq!(e.action(), Action::Final);
    assert!(e.to_string().contains("longer than 65536 bytes"), "{e}");

    let a = c.start(&user("long-id"), secs(30)).await;
    let e = a.result.unwrap_err();
    assert!(matches!(e, CxoneError::MalformedBody { .. }), "{e:?}");
    assert!(
        e.to_string().contains("interactionId is 257 characters"),
        "{e}"
    );
}

#[tokio::test]
async fn retry_after_zero_is_retried_at_the_backoff_not_at_once() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    with_faults(
        &sim,
        Faults {
            retry_after_secs: Some(0),
            user_faults: [("stuck".to_owned(), simulator::UserFault::Locked)].into(),
            ..Faults::default()
        },
    );
    let clock = SystemClock;
    let c = client(&settings_for(&sim), Arc::new(clock));
    let policy = RetryPolicy {
        base_ms: 100,
        cap_ms: 400,
        max_server_errors: 3,
    };
    let mut seen = Vec::new();
    let cancel = CancellationToken::new();
    let mut jitter = || 0.5;
    let mut r = Retrying {
        client: &c,
        policy: &policy,
        clock: &clock,
        jitter: &mut jitter,
        observer: &mut seen,
        cancel: &cancel,
        gate: &cxone::Open,
    };
    // 1.5 s of retrying (the deadline is 5 s before the end).
    let end = clock.now() + chrono::Duration::milliseconds(6_500);
    let e = r
        .start(&user("stuck"), end, chrono::Duration::zero())
        .await
        .unwrap_err();
    assert!(matches!(e, GiveUp::Deadline { .. }), "{e:?}");
    // Waits of 50, 100, 200, 200, 200, ... ms: at most 9 attempts in
    // 1.5 s, where Retry-After: 0 taken at its word makes hundreds.
    let n = seen.len();
    assert!((5..=9).contains(&n), "{n} attempts");
    let times: Vec<_> = seen.iter().map(|(ex, _, _)| ex.at).collect();
    for (i, w) in times.windows(2).enumerate() {
        let want = policy.ceiling(i as u32 + 1).as_millis() as i64 / 2;
        assert!(
            (w[1] - w[0]).num_milliseconds() >= want - 5,
            "attempt {} followed after {:?}, under the backoff of {want} ms",
            i + 2,
            w[1] - w[0]
        );
    }
}

/// Says no once `allow` is used up, and counts how often it was asked.
struct Counting {
    allow: usize,
    asked: Mutex<usize>,
}

impl cxone::Gate for Counting {
    fn ready(&self) -> futures::future::BoxFuture<'_, bool> {
        let mut asked = self.asked.lock().unwrap();
        *asked += 1;
        let go = *asked <= self.allow;
        Box::pin(std::future::ready(go))
    }
}

#[tokio::test]
async fn a_gate_has_the_last_word_before_each_attempt_and_a_withdrawn_one_is_never_sent() {
    let sim = simulator::spawn(SimConfig {
        faults: Faults {
            rate_425: 1.0,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let clock = SystemClock;
    let c = client(&settings_for(&sim), Arc::new(clock));
    let cancel = CancellationToken::new();
    let mut jitter = || 0.0;
    let mut seen = Vec::new();
    let gate = Counting {
        allow: 2,
        asked: Mutex::new(0),
    };
    let mut r = Retrying {
        client: &c,
        policy: &RetryPolicy {
            base_ms: 1,
            cap_ms: 1,
            ..RetryPolicy::default()
        },
        clock: &clock,
        jitter: &mut jitter,
        observer: &mut seen,
        cancel: &cancel,
        gate: &gate,
    };
    let end = clock.now() + chrono::Duration::seconds(60);
    let e = r
        .start(&user("g"), end, chrono::Duration::zero())
        .await
        .unwrap_err();
    // Two attempts went (and failed, the vendor refusing all); the third
    // was withdrawn: the gate was asked three times, the vendor twice.
    assert!(matches!(e, GiveUp::Withdrawn { attempts: 2 }), "{e:?}");
    assert_eq!(*gate.asked.lock().unwrap(), 3);
    let starts = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("start-screen-interaction-recording"))
        .count();
    assert_eq!(starts, 2);
    assert_eq!(seen.len(), 2, "a withdrawn attempt is no exchange");
}
