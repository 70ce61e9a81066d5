//! `recsched demo`: the README's first command. Starts the built-in CXone
//! simulator in-process, creates a fresh demo database with example
//! policies, and runs the daemon against them until Ctrl-C, so a newcomer
//! sees recordings start and stop (with their contact ids) within a
//! minute, without credentials or a config file.

use crate::clock::{Clock, SystemClock};
use crate::cxone::{self, Client};
use crate::daemon::{self, Context};
use crate::secret::Secret;
use crate::simulator::{self, SimConfig};
use crate::store::{self, NewPolicy, Store};
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The demo database. Deleted and created anew at every start: do not
    /// point it at a real database.
    #[arg(long, default_value = "recsched-demo.db", value_name = "FILE")]
    pub db: PathBuf,

    /// Stop by itself after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub seconds: Option<u64>,
}

/// The demo's policies: (name, cron, window seconds, end mode, users).
const POLICIES: &[(&str, &str, i64, &str, &[&str])] = &[
    (
        "back-office-every-minute",
        "0 * * * * *",
        30,
        "expire",
        &["alice", "bob", "carol"],
    ),
    (
        "idle-agents-stop-at-end",
        "15,45 * * * * *",
        10,
        "stop",
        &["dave"],
    ),
];

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = args.db.clone().into_os_string();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove the old demo database {p:?}"))
            }
        }
    }
    let sim = simulator::spawn(SimConfig::default())
        .await
        .context("cannot start the built-in CXone simulator")?;
    let store = Store::open(&store::Settings {
        path: args.db.clone(),
        ..store::Settings::default()
    })
    .await?;
    for (name, cron, window, end_mode, users) in POLICIES {
        store
            .insert_policy(&NewPolicy {
                name: (*name).to_owned(),
                enabled: true,
                cron: (*cron).to_owned(),
                timezone: "UTC".to_owned(),
                window_seconds: *window,
                end_mode: (*end_mode).to_owned(),
                users: users.iter().map(|u| (*u).to_owned()).collect(),
            })
            .await?;
    }
    let sc = sim.config();
    let settings = cxone::Settings {
        api_base: sim.url().to_owned(),
        token_url: sim.token_url(),
        client_id: sc.client_id.clone(),
        client_secret: Some(Secret::new(sc.client_secret.clone())),
        access_key_id: sc.access_key_id.clone(),
        access_key_secret: Some(Secret::new(sc.access_key_secret.clone())),
        ..cxone::Settings::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let schedule = daemon::Settings::default();
    let cancel = CancellationToken::new();
    let client = Client::new(&settings, None, schedule.limits(), clock.clone())?
        .with_shutdown(cancel.clone());
    println!("recsched demo");
    println!(
        "  simulator: {} (GET {}/_sim/recordings lists what it recorded)",
        sim.url(),
        sim.url()
    );
    println!(
        "  database:  {} (try: sqlite3 {} 'select * from recordings')",
        args.db.display(),
        args.db.display()
    );
    for (name, cron, window, end_mode, users) in POLICIES {
        println!(
            "  policy {name}: cron `{cron}` UTC, {window} s windows, end_mode {end_mode}, users {}",
            users.join(", ")
        );
    }
    println!("  windows open at the next whole minute (a window already open is caught up now); Ctrl-C stops\n");

    let hooks = daemon::Hooks::default();
    super::run::spawn_signal_handlers(cancel.clone(), hooks.reload.clone())?;
    let metrics = crate::metrics::Settings {
        listen: "127.0.0.1:0".into(),
    };
    if let Some(addr) =
        super::run::serve_metrics(&metrics, &hooks, clock.clone(), cancel.clone()).await?
    {
        println!("  metrics:   http://{addr}/metrics and http://{addr}/healthz\n");
    }
    if let Some(secs) = args.seconds {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            c.cancel();
        });
    }
    let ctx = Context {
        store,
        client: Arc::new(client),
        clock,
        schedule,
        retry: crate::retry::RetryPolicy::default(),
    };
    daemon::run_with(ctx, cancel, hooks, || {}).await?;
    let made = sim.recordings();
    println!("\nthe simulator recorded {} recording(s)", made.len());
    Ok(ExitCode::SUCCESS)
}
