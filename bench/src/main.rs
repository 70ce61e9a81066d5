//! `recsched-bench`: how the daemon compares with the raw HTTP limit and
//! with a cron+curl loop, how much memory and CPU it needs for 100,000
//! users, and how fast it restarts. Prints one table; never part of the
//! test gate. Run it with `cargo run --release -p recsched-bench`
//! (`-- --quick` for a shorter idle measurement); `docs/benchmarks.md`
//! explains the figures. `-- --postgres` runs only the PostgreSQL burst
//! with one, two and three daemon instances on one database, against a
//! throwaway server the bench starts itself. `-- --dense` runs only issue
//! 15's dense policy on the real `recsched` binary (one or more builds,
//! alternating, `--recsched before=PATH --recsched after=PATH`).
//!
//! Every scenario runs in a fresh child process of this binary
//! (`--child ...`), so peak RSS, CPU time and cold connection pools belong
//! to that scenario alone. Everything is in-process inside the child: the
//! simulator on loopback with 20 ms latency per call, the daemon through
//! `daemon::run_with` on a SQLite file in a temporary directory, and the
//! baselines.
//!
//! Layout: `rig` (simulator, store, daemon), `burst` (scenario 1 and its
//! baselines), `footprint` (scenario 2), `restart` (scenario 3),
//! `machine` (`/proc` readers, fsync probe), `report` (the table), `pg`
//! (the throwaway PostgreSQL server), `pgburst` (the `--postgres` burst),
//! `dense` (the `--dense` run of the real binary).

mod burst;
mod dense;
mod diagnose;
mod footprint;
mod machine;
mod pg;
mod pgburst;
mod report;
mod restart;
mod rig;

use anyhow::Context as _;
use burst::{DaemonBurst, RawBurst, Sequential};
use clap::Parser;
use diagnose::{Pieces, WriteBatch};
use footprint::Footprint;
use pgburst::PgBurst;
use report::{mib, ms, per_sec, Table, Verdict};
use restart::Restart;
use rig::{CONCURRENCY, LATENCY_MS};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// Benchmarks of the recsched daemon against the raw HTTP limit and a
/// cron+curl loop (simulator on loopback, 20 ms per call).
#[derive(Debug, Parser)]
struct Args {
    /// Shorter run: idle CPU over 10 s instead of 60 s, and 30-call
    /// sequential samples instead of 100.
    #[arg(long)]
    quick: bool,

    /// Burst sizes (users whose windows open at the same instant).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    users: Vec<usize>,

    /// Where the temporary databases go (default: the system temp dir).
    /// Its file system's fsync speed bounds every commit.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Show the daemon's log on stderr. By default its lines are formatted
    /// (as production formats them for the journal) into a sink.
    #[arg(long)]
    log: bool,

    /// Run only the PostgreSQL burst (the largest of --users) with one,
    /// two and three daemon instances on one database, on a throwaway
    /// server started here; skipped, saying why, without PostgreSQL.
    #[arg(long)]
    postgres: bool,

    /// Run only the dense scenario: one policy `* H * * *` (every minute
    /// of the hour two hours ahead, UTC), 30 s windows, 100,000 users,
    /// beside a small policy (2 users, 5 s every 10 s), run by the real
    /// `recsched run` with MALLOC_ARENA_MAX=2 and a watchdog of 30 s.
    #[arg(long)]
    dense: bool,

    /// The `recsched` binaries the dense scenario runs, as `LABEL=PATH`
    /// or `PATH`; several alternate, run after run. Default: the
    /// `recsched` next to this binary (target/release/recsched).
    #[arg(long, value_name = "[LABEL=]PATH")]
    recsched: Vec<String>,

    /// Dense scenario: what each run's database holds, `dense` (the dense
    /// policy and the small one) and/or `footprint` (100,000 users in
    /// 1,000 policies, as the footprint scenario, on the real binary).
    #[arg(long, value_delimiter = ',', default_value = "dense,footprint")]
    workloads: Vec<String>,

    /// Dense scenario: runs of each binary.
    #[arg(long, default_value_t = 1, value_name = "N")]
    rounds: usize,

    /// Dense scenario: how long each run lasts, seconds from the spawn.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    dense_secs: u64,

    /// Dense scenario: the daemon is killed as soon as its RSS passes
    /// this many MiB, so that a runaway build cannot take the machine.
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    rss_cap_mib: u64,

    /// Internal: run one scenario in this process and print its result
    /// as one JSON line.
    #[arg(long, hide = true, num_args = 1.., value_name = "SCENARIO")]
    child: Option<Vec<String>>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.child {
        Some(child) => run_child(child, args.log),
        None if args.postgres => run_postgres(&args),
        None if args.dense => run_dense(&args),
        None => run_parent(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recsched-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one scenario and prints its result as JSON on the last line.
fn run_child(child: &[String], log: bool) -> anyhow::Result<()> {
    let directives = std::env::var("RUST_LOG").ok();
    let sub = if log {
        recsched::telemetry::subscriber(
            recsched::telemetry::LogFormat::Text,
            directives.as_deref(),
            std::io::stderr,
            false,
        )
    } else {
        recsched::telemetry::subscriber(
            recsched::telemetry::LogFormat::Text,
            directives.as_deref(),
            std::io::sink,
            false,
        )
    };
    tracing::subscriber::set_global_default(sub).context("cannot install the log subscriber")?;
    // As `recsched run` builds it: multi-threaded, one worker per core.
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let arg = |i: usize| {
        child
            .get(i)
            .map(String::as_str)
            .with_context(|| format!("--child {child:?}: argument {i} missing"))
    };
    let number = |i: usize| -> anyhow::Result<usize> {
        arg(i)?
            .parse()
            .with_context(|| format!("--child {child:?}: argument {i} is not a number"))
    };
    let json = runtime.block_on(async {
        Ok::<_, anyhow::Error>(match arg(0)? {
            "burst" => {
                serde_json::to_string(&burst::daemon(number(1)?, Path::new(arg(2)?)).await?)?
            }
            "raw" => serde_json::to_string(&burst::raw(number(1)?).await?)?,
            "pieces" => {
                serde_json::to_string(&diagnose::pieces(number(1)?, Path::new(arg(2)?)).await?)?
            }
            "pg-pieces" => {
                serde_json::to_string(&diagnose::store_pieces(number(1)?, arg(2)?).await?)?
            }
            "sequential" => serde_json::to_string(&burst::sequential(number(1)?).await?)?,
            "pg-burst" => {
                serde_json::to_string(&pgburst::burst(number(1)?, number(2)?, arg(3)?).await?)?
            }
            "footprint-prepare" => {
                serde_json::to_string(&footprint::prepare(Path::new(arg(1)?)).await?)?
            }
            "footprint" => {
                let idle = Duration::from_secs(number(2)? as u64);
                serde_json::to_string(&footprint::measure(Path::new(arg(1)?), idle).await?)?
            }
            "restart-prepare" => {
                serde_json::to_string(&restart::prepare(Path::new(arg(1)?)).await?)?
            }
            "restart" => serde_json::to_string(&restart::measure(Path::new(arg(1)?)).await?)?,
            other => anyhow::bail!("unknown scenario `{other}`"),
        })
    })?;
    println!("{json}");
    Ok(())
}

/// Runs `--child what...` and reads its JSON answer.
fn child<T: serde::de::DeserializeOwned>(log: bool, what: &[&str]) -> anyhow::Result<T> {
    child_env(log, what, ("RECSCHED_BENCH_CHILD", "1"))
}

/// [`child`] with one more environment variable; an empty value removes
/// it from the child's environment.
fn child_env<T: serde::de::DeserializeOwned>(
    log: bool,
    what: &[&str],
    (key, value): (&str, &str),
) -> anyhow::Result<T> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut cmd = Command::new(exe);
    if value.is_empty() {
        cmd.env_remove(key);
    } else {
        cmd.env(key, value);
    }
    if log {
        cmd.arg("--log");
    }
    let out = cmd
        .arg("--child")
        .args(what)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run scenario {what:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "scenario {what:?} failed ({})",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .with_context(|| format!("scenario {what:?} printed no result: {stdout}"))
}

fn run_parent(args: &Args) -> anyhow::Result<()> {
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    // A directory of our own (no tempfile crate for one directory), removed
    // at the end (and by the next run's operator if this one is killed).
    let tmp = base.join(format!("recsched-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot make {}", tmp.display()))?;
    let result = run_in(args, &base, &tmp);
    if let Err(e) = std::fs::remove_dir_all(&tmp) {
        eprintln!("recsched-bench: could not remove {}: {e}", tmp.display());
    }
    result
}

fn run_in(args: &Args, base: &Path, tmp: &Path) -> anyhow::Result<()> {
    let dir = |name: &str| -> anyhow::Result<String> {
        let d = tmp.join(name);
        std::fs::create_dir(&d)?;
        Ok(d.display().to_string())
    };
    let load_start = machine::load_average();
    let m = machine::Machine::probe(tmp);
    let idle_secs: u64 = if args.quick { 10 } else { 60 };
    let sample: usize = if args.quick { 30 } else { 100 };
    let build = if cfg!(debug_assertions) {
        "DEBUG build: figures are not representative"
    } else {
        "release build"
    };
    println!("recsched-bench {} ({build})", env!("CARGO_PKG_VERSION"));
    println!(
        "machine: {} cores ({}), Linux {}",
        m.cores, m.cpu_model, m.kernel
    );
    println!(
        "databases: {} ({}), one 4 KiB write+fdatasync = {:.2} ms",
        base.display(),
        m.fs_type,
        m.fsync_ms
    );
    println!(
        "settings: simulator on loopback, {LATENCY_MS} ms per start/stop, unlimited workers; \
         daemon schedule.max_concurrency = {CONCURRENCY} (raw baseline: the same); \
         SQLite WAL, synchronous=FULL; daemon log formatted at info{}",
        if args.log {
            " to stderr"
        } else {
            " into a sink"
        }
    );
    println!(
        "everything (simulator, daemon, baselines) shares this machine's {} cores\n",
        m.cores
    );

    let mut table = Table::default();
    let seq: Option<Sequential> = match child(args.log, &["sequential", &sample.to_string()]) {
        Ok(s) => Some(s),
        Err(e) => {
            table.failed("sequential loop", &e);
            None
        }
    };
    for &n in &args.users {
        eprintln!("recsched-bench: burst of {n} ...");
        let d: anyhow::Result<DaemonBurst> = dir(&format!("burst-{n}"))
            .and_then(|d| child(args.log, &["burst", &n.to_string(), &d]));
        let r: anyhow::Result<RawBurst> = child(args.log, &["raw", &n.to_string()]);
        burst_lines(&mut table, n, d, r, seq.as_ref());
    }
    if let Some(&n) = args.users.iter().max() {
        eprintln!("recsched-bench: the pieces of a burst of {n}, without HTTP ...");
        let p: anyhow::Result<Pieces> =
            dir("pieces").and_then(|d| child(args.log, &["pieces", &n.to_string(), &d]));
        pieces_lines(&mut table, p);
    }
    eprintln!("recsched-bench: footprint, idling {idle_secs} s ...");
    // Under the unit's malloc setting (systemd/recsched.service), as the
    // issue's target is stated.
    let f = dir("footprint").and_then(|d| {
        child::<f64>(args.log, &["footprint-prepare", &d])?;
        child_env::<Footprint>(
            args.log,
            &["footprint", &d, &idle_secs.to_string()],
            ("MALLOC_ARENA_MAX", "2"),
        )
    });
    // The same once more with glibc's default arenas, for the peak RSS
    // only: what the unit's setting saves.
    let default_arenas = dir("footprint-default-arenas").and_then(|d| {
        child::<f64>(args.log, &["footprint-prepare", &d])?;
        child_env::<Footprint>(args.log, &["footprint", &d, "5"], ("MALLOC_ARENA_MAX", ""))
    });
    footprint_lines(&mut table, f, default_arenas, args.quick);
    eprintln!("recsched-bench: restart ...");
    let r = dir("restart").and_then(|d| {
        child::<()>(args.log, &["restart-prepare", &d])?;
        child::<Restart>(args.log, &["restart", &d])
    });
    restart_lines(&mut table, r);

    let fsync_end = machine::fsync_ms(tmp, 200).unwrap_or(f64::NAN);
    let load_end = machine::load_average();
    print!("{}", table.render());
    println!(
        "\none 4 KiB write+fdatasync: {:.2} ms before the run, {fsync_end:.2} ms after it; \
         load average {load_start} before, {load_end} after (the machine and its disk are \
         shared with whatever else runs on it)",
        m.fsync_ms
    );
    println!("{} target(s) missed", table.misses());
    if let Some(s) = &seq {
        println!(
            "sequential loop: timed over {} calls each way and extrapolated \
             (keep-alive reqwest {:.1} ms/call{})",
            s.sample,
            s.reqwest_ms_per_call,
            s.curl_ms_per_call
                .map(|c| format!(", one curl process per call {c:.1} ms/call"))
                .unwrap_or_else(|| ", curl not installed".into())
        );
    }
    Ok(())
}

/// `--postgres`: the burst on one PostgreSQL database with one, two and
/// three daemon instances, each count in a fresh database and a fresh
/// child process; the server is started here and stopped at the end.
fn run_postgres(args: &Args) -> anyhow::Result<()> {
    let n = args.users.iter().copied().max().unwrap_or(10_000);
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let build = if cfg!(debug_assertions) {
        "DEBUG build: figures are not representative"
    } else {
        "release build"
    };
    println!("recsched-bench {} ({build})", env!("CARGO_PKG_VERSION"));
    let bin = match pg::find_bin() {
        Ok(bin) => bin,
        Err(why) => {
            println!("PostgreSQL scenario skipped: {why}");
            return Ok(());
        }
    };
    let server = pg::PgServer::start(bin, &base)?;
    let m = machine::Machine::probe(&base);
    println!(
        "machine: {} cores ({}), Linux {}",
        m.cores, m.cpu_model, m.kernel
    );
    println!(
        "database: {} on 127.0.0.1 in {} ({}), fsync=on, synchronous_commit=on; \
         one 4 KiB write+fdatasync = {:.2} ms",
        server.version(),
        base.display(),
        m.fs_type,
        m.fsync_ms
    );
    println!(
        "settings: simulator on loopback, {LATENCY_MS} ms per start/stop; each instance: \
         schedule.max_concurrency = {CONCURRENCY}, database.max_connections = {}, \
         its own Client; one simulator shared",
        recsched::store::Settings::DEFAULT_MAX_CONNECTIONS
    );
    println!(
        "everything (simulator, daemons, PostgreSQL) shares this machine's {} cores\n",
        m.cores
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut table = Table::default();
    for instances in 1..=3usize {
        eprintln!("recsched-bench: PostgreSQL burst of {n}, {instances} instance(s) ...");
        let name = format!("bench_{instances}");
        let result: anyhow::Result<PgBurst> = runtime
            .block_on(server.create_database(&name))
            .and_then(|()| {
                child(
                    args.log,
                    &[
                        "pg-burst",
                        &n.to_string(),
                        &instances.to_string(),
                        &server.url(&name),
                    ],
                )
            });
        pg_lines(&mut table, n, instances, result);
    }
    eprintln!("recsched-bench: PostgreSQL store pieces of {n}, without HTTP ...");
    table.section(format!(
        "PostgreSQL: the store's pieces of a burst of {n}, without HTTP"
    ));
    let pieces: anyhow::Result<WriteBatch> = runtime
        .block_on(server.create_database("bench_pieces"))
        .and_then(|()| {
            child(
                args.log,
                &["pg-pieces", &n.to_string(), &server.url("bench_pieces")],
            )
        });
    match pieces {
        Ok(w) => write_batch_lines(&mut table, "PostgreSQL", &w),
        Err(e) => table.failed("PostgreSQL store pieces", &e),
    }
    drop(server);
    print!("{}", table.render());
    println!("{} target(s) missed", table.misses());
    Ok(())
}

/// `--dense`: the dense scenario on each binary, alternating, `rounds`
/// times each; each run on a fresh database in a directory of its own.
fn run_dense(args: &Args) -> anyhow::Result<()> {
    let binaries = binaries(&args.recsched)?;
    let workloads = args
        .workloads
        .iter()
        .map(|w| match w.as_str() {
            "dense" => Ok(dense::Workload::Dense),
            "footprint" => Ok(dense::Workload::Footprint),
            other => anyhow::bail!("--workloads: `{other}` is neither dense nor footprint"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = base.join(format!("recsched-bench-dense-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot make {}", tmp.display()))?;
    let load_start = machine::load_average();
    let m = machine::Machine::probe(&tmp);
    println!(
        "recsched-bench {} (dense scenario)",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "machine: {} cores ({}), Linux {}; databases: {} ({}), one 4 KiB write+fdatasync = {:.2} ms",
        m.cores,
        m.cpu_model,
        m.kernel,
        base.display(),
        m.fs_type,
        m.fsync_ms
    );
    println!(
        "settings: `recsched run` as a child, MALLOC_ARENA_MAX=2, WATCHDOG_USEC={} (WatchdogSec=30s), \
         {} s per run, killed past {} MiB RSS; simulator on loopback in the bench, {LATENCY_MS} ms per call",
        dense::WATCHDOG.as_micros(),
        args.dense_secs,
        args.rss_cap_mib
    );
    for (label, path) in &binaries {
        println!("binary {label}: {}", path.display());
    }
    println!();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut table = Table::default();
    let mut runs: Vec<(dense::Workload, String, anyhow::Result<dense::Dense>)> = Vec::new();
    for round in 1..=args.rounds.max(1) {
        for (workload, (label, path)) in workloads
            .iter()
            .flat_map(|w| binaries.iter().map(move |b| (*w, b)))
        {
            let name = workload.name();
            eprintln!("recsched-bench: {name}, {label}, run {round} ...");
            let setup = dense::Setup {
                workload,
                binary: path.clone(),
                run_for: Duration::from_secs(args.dense_secs),
                rss_cap: args.rss_cap_mib * 1024 * 1024,
                log: args.log,
            };
            let dir = tmp.join(format!("{name}-{label}-{round}"));
            let result = std::fs::create_dir(&dir)
                .map_err(anyhow::Error::from)
                .and_then(|()| runtime.block_on(dense::run(&setup, &dir)));
            runs.push((workload, format!("{label}, run {round}"), result));
        }
    }
    for (workload, name, result) in runs {
        dense_lines(&mut table, workload, &name, result, args.rss_cap_mib);
    }
    if let Err(e) = std::fs::remove_dir_all(&tmp) {
        eprintln!("recsched-bench: could not remove {}: {e}", tmp.display());
    }
    print!("{}", table.render());
    println!(
        "\nload average {load_start} before, {} after",
        machine::load_average()
    );
    println!("{} target(s) missed", table.misses());
    Ok(())
}

/// `--recsched` values as (label, path); by default the `recsched` beside
/// this binary.
fn binaries(given: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    if given.is_empty() {
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let path = exe.with_file_name("recsched");
        anyhow::ensure!(
            path.is_file(),
            "{} is missing: build it with `cargo build --release --bin recsched`, \
             or name a binary with --recsched",
            path.display()
        );
        return Ok(vec![("this build".into(), path)]);
    }
    given
        .iter()
        .map(|g| {
            let (label, path) = match g.split_once('=') {
                Some((label, path)) => (label.to_owned(), PathBuf::from(path)),
                None => (g.clone(), PathBuf::from(g)),
            };
            anyhow::ensure!(
                path.is_file(),
                "--recsched {g}: no file at {}",
                path.display()
            );
            Ok((label, path))
        })
        .collect()
}

fn dense_lines(
    t: &mut Table,
    workload: dense::Workload,
    name: &str,
    r: anyhow::Result<dense::Dense>,
    cap_mib: u64,
) {
    let (title, limit) = match workload {
        dense::Workload::Dense => (
            format!(
                "dense: {} users in one policy, 30 s windows every minute of one hour 2 h \
                 ahead, + 2 users every 10 s",
                dense::USERS
            ),
            256 * 1024 * 1024,
        ),
        dense::Workload::Footprint => (
            format!(
                "footprint on the real binary: {} users in {} policies",
                footprint::POLICIES * footprint::USERS_PER_POLICY,
                footprint::POLICIES
            ),
            64 * 1024 * 1024,
        ),
    };
    t.section(format!("{title} ({name})"));
    let d = match r {
        Ok(d) => d,
        Err(e) => return t.failed(workload.name(), &e),
    };
    let peak = match d.capped_at_ms {
        Some(at) => format!("> {cap_mib} MiB (killed at {})", ms(at)),
        None => mib(d.peak_rss),
    };
    t.line(
        "peak RSS (VmHWM of recsched run)",
        peak,
        format!("< {}", mib(limit)),
        Some(d.peak_rss as f64 / limit as f64),
        Verdict::from(d.capped_at_ms.is_none() && d.peak_rss < limit),
    );
    t.line(
        "CPU time of recsched run (user + system)",
        ms(d.cpu_ms),
        format!("over {} from spawn", ms(d.ran_ms)),
        None,
        Verdict::Info,
    );
    t.line(
        "spawn -> READY=1",
        d.ready_ms.map_or("never".into(), ms),
        if d.dense_cron.is_empty() {
            format!("policies written in {}", ms(d.prepare_ms))
        } else {
            format!(
                "cron `{}`, policies written in {}",
                d.dense_cron,
                ms(d.prepare_ms)
            )
        },
        None,
        Verdict::Info,
    );
    if let Some(s) = &d.small {
        small_lines(t, s);
    }
    let gap = d.longest_ping_gap_ms;
    t.line(
        "longest gap without WATCHDOG=1 (from READY to the end)",
        gap.map_or("no READY".into(), ms),
        format!(
            "interval {} (pings every {}); {} pings",
            ms(dense::WATCHDOG.as_secs_f64() * 1000.0),
            ms(dense::WATCHDOG.as_secs_f64() * 500.0),
            d.pings
        ),
        gap.map(|g| g / (dense::WATCHDOG.as_secs_f64() * 1000.0)),
        Verdict::from(gap.is_some() && d.watchdog_misses == 0),
    );
    if let Some(status) = &d.exited {
        t.line(
            "  exited on its own",
            status.clone(),
            "",
            None,
            Verdict::Miss,
        );
    }
}

fn small_lines(t: &mut Table, s: &dense::Small) {
    t.line(
        "small policy: windows on time / expected (2 users)",
        format!("{} / {}", s.on_time, s.expected),
        format!(
            "late {} / failed {} / absent {}; start <= {} s late",
            s.late,
            s.failed,
            s.absent,
            dense::LATE_AFTER_SECS
        ),
        None,
        Verdict::from(s.all_on_time()),
    );
    t.line(
        "  small policy: max late_seconds / row written after opening / lag at simulator",
        format!(
            "{:.2} s / {:.2} s / {}",
            s.max_late_s,
            s.max_written_after_s,
            ms(s.max_sim_lag_ms)
        ),
        "",
        None,
        Verdict::Info,
    );
}

fn pg_lines(t: &mut Table, n: usize, instances: usize, r: anyhow::Result<PgBurst>) {
    t.section(format!(
        "PostgreSQL: burst of {n} users, {instances} instance(s) on one database"
    ));
    let r = match r {
        Ok(r) => r,
        Err(e) => return t.failed("PostgreSQL burst", &e),
    };
    t.line(
        "lag p50 / p99 / max (window start -> request at simulator)",
        format!("{} / {} / {}", ms(r.lag.p50), ms(r.lag.p99), ms(r.lag.max)),
        format!("ready {} before the window", ms(r.lead_ms)),
        None,
        Verdict::Info,
    );
    t.line(
        "every row committed with its contact id after",
        ms(r.all_committed_ms),
        "",
        None,
        Verdict::Info,
    );
    t.line(
        "starts/s, committed (N / time to all committed)",
        per_sec(r.committed_per_sec()),
        "",
        None,
        Verdict::Info,
    );
    t.line(
        "  rows claimed per instance",
        r.per_instance
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" / "),
        "the unique key gives each segment to one",
        None,
        Verdict::Info,
    );
    t.line(
        "  CPU used (daemons + simulator, not PostgreSQL)",
        ms(r.cpu_ms),
        "",
        None,
        Verdict::Info,
    );
    t.line(
        "  rows / recording / start requests / vendor recordings",
        format!(
            "{} / {} / {} / {}",
            r.rows, r.rows_recording, r.start_requests, r.sim_recordings
        ),
        format!("{n} each"),
        None,
        Verdict::from(r.exact()),
    );
    t.line(
        "  users with two vendor recordings",
        r.users_twice.to_string(),
        "0",
        None,
        Verdict::from(r.users_twice == 0),
    );
}

fn burst_lines(
    t: &mut Table,
    n: usize,
    d: anyhow::Result<DaemonBurst>,
    r: anyhow::Result<RawBurst>,
    seq: Option<&Sequential>,
) {
    let bound = (n as f64 / CONCURRENCY as f64 - 1.0).max(0.0) * LATENCY_MS as f64;
    let target = if n <= 1_000 { 150.0 } else { 1_000.0 };
    t.section(format!(
        "burst of {n} users, one window opening at once (bound (N/C-1)xL = {})",
        ms(bound)
    ));
    let (d, r) = match (d, r) {
        (Ok(d), Ok(r)) => (d, r),
        (d, r) => {
            if let Err(e) = d {
                t.failed("daemon burst", &e);
            }
            if let Err(e) = r {
                t.failed("raw reqwest burst", &e);
            }
            return;
        }
    };
    let raw_ref = |v: f64| format!("raw reqwest {}", ms(v));
    t.line(
        "lag p50 (window start -> request at simulator)",
        ms(d.lag.p50),
        raw_ref(r.lag.p50),
        Some(d.lag.p50 / r.lag.p50.max(0.1)),
        Verdict::Info,
    );
    t.line(
        "lag p99",
        ms(d.lag.p99),
        format!("< {}", ms(target)),
        Some(d.lag.p99 / target),
        Verdict::from(d.lag.p99 < target),
    );
    t.line(
        "lag p99 vs the bound",
        ms(d.lag.p99),
        format!("bound {} (raw reqwest p99 {})", ms(bound), ms(r.lag.p99)),
        Some(d.lag.p99 / bound.max(0.1)),
        Verdict::Info,
    );
    t.line(
        "lag max",
        ms(d.lag.max),
        raw_ref(r.lag.max),
        Some(d.lag.max / r.lag.max.max(0.1)),
        Verdict::Info,
    );
    t.line(
        "every row committed with its contact id after",
        ms(d.all_committed_ms),
        format!("raw reqwest all answered {}", ms(r.elapsed_ms)),
        Some(d.all_committed_ms / r.elapsed_ms),
        Verdict::Info,
    );
    let raw_rate = r.per_sec();
    t.line(
        "starts/s, committed (N / time to all committed)",
        per_sec(d.committed_per_sec()),
        format!(">= 0.8x raw reqwest {}", per_sec(raw_rate)),
        Some(d.committed_per_sec() / raw_rate),
        Verdict::from(d.committed_per_sec() >= 0.8 * raw_rate),
    );
    t.line(
        "starts/s, answered (N / last answer)",
        per_sec(d.answered_per_sec()),
        format!("raw reqwest {}", per_sec(raw_rate)),
        Some(d.answered_per_sec() / raw_rate),
        Verdict::Info,
    );
    if let Some(s) = seq {
        let loop_rate = s.best_per_sec();
        t.line(
            "starts/s vs a sequential loop",
            per_sec(d.committed_per_sec()),
            format!(
                ">= 50x loop {} ({} for N)",
                per_sec(loop_rate),
                ms(n as f64 / loop_rate * 1000.0)
            ),
            Some(d.committed_per_sec() / loop_rate),
            Verdict::from(d.committed_per_sec() >= 50.0 * loop_rate),
        );
    }
    t.line(
        "  write-ahead rows claimed after",
        ms(d.claimed_ms),
        "chunks of 256, jobs spawned per chunk",
        None,
        Verdict::Info,
    );
    t.line(
        "  request left the client p50 / p99",
        format!("{} / {}", ms(d.sent.p50), ms(d.sent.p99)),
        "after the 256-permit cap",
        None,
        Verdict::Info,
    );
    t.line(
        "  contact id written p50 / p99 / max",
        format!(
            "{} / {} / {}",
            ms(d.written.p50),
            ms(d.written.p99),
            ms(d.written.max)
        ),
        "the batched writer",
        None,
        Verdict::Info,
    );
    t.line(
        "  CPU used (whole process)",
        ms(d.cpu_ms),
        format!("raw reqwest {}", ms(r.cpu_ms)),
        Some(d.cpu_ms / r.cpu_ms.max(0.1)),
        Verdict::Info,
    );
    let complete = d.rows_recording == n && d.start_requests == n && d.sim_recordings == n;
    t.line(
        "  rows recording / start requests / vendor recordings",
        format!(
            "{} / {} / {}",
            d.rows_recording, d.start_requests, d.sim_recordings
        ),
        format!("{n} each"),
        None,
        Verdict::from(complete),
    );
}

fn pieces_lines(t: &mut Table, p: anyhow::Result<Pieces>) {
    let p = match p {
        Ok(p) => p,
        Err(e) => {
            t.section("the pieces of a burst");
            return t.failed("pieces", &e);
        }
    };
    let n = p.users;
    t.section(format!(
        "the pieces of a burst of {n}, without HTTP (what limits the figures above)"
    ));
    t.line(
        "planning pass (coverage + plan), pure",
        ms(p.plan_ms),
        "",
        None,
        Verdict::Info,
    );
    t.line(
        "write-ahead claim: Store::claim_many (multi-row INSERTs)",
        ms(p.claim_many_ms),
        format!(
            "multi-row INSERTs of 500: {} (from block_on's thread: {})",
            ms(p.claim_multirow_ms),
            ms(p.claim_many_main_ms)
        ),
        Some(p.claim_many_ms / p.claim_multirow_ms),
        Verdict::Info,
    );
    t.line(
        "contact ids: finish_attempt per start, all at once (daemon)",
        ms(p.finish_concurrent_ms),
        format!(
            "{:.0} us/start, {} voluntary context switches",
            p.finish_concurrent_ms * 1000.0 / n as f64,
            p.finish_concurrent_switches
        ),
        None,
        Verdict::Info,
    );
    t.line(
        "  finish_attempt one at a time",
        ms(p.finish_sequential_ms),
        format!("{:.0} us/start", p.finish_sequential_ms * 1000.0 / n as f64),
        None,
        Verdict::Info,
    );
    t.line(
        "  batched writer: one transaction for all",
        ms(p.finish_batched_ms),
        format!(
            "{:.0} us/start; batches of 256: {}",
            p.finish_batched_ms * 1000.0 / n as f64,
            ms(p.finish_batched_256_ms)
        ),
        Some(p.finish_concurrent_ms / p.finish_batched_ms),
        Verdict::Info,
    );
    write_batch_lines(t, "SQLite", &p.write_batch);
}

fn write_batch_lines(t: &mut Table, backend: &str, w: &WriteBatch) {
    let n = w.users as f64;
    t.line(
        format!("{backend}: Store::write_batch, batches of 2,048 (the writer's)"),
        ms(w.batch_2048_ms),
        format!(
            "{:.0} us/start; batches of 256: {} ({:.0} us/start)",
            w.batch_2048_ms * 1000.0 / n,
            ms(w.batch_256_ms),
            w.batch_256_ms * 1000.0 / n
        ),
        None,
        Verdict::Info,
    );
    t.line(
        format!("  {backend}: Store::claim_many of the same rows"),
        ms(w.claim_many_ms),
        "",
        None,
        Verdict::Info,
    );
}

fn footprint_lines(
    t: &mut Table,
    f: anyhow::Result<Footprint>,
    default_arenas: anyhow::Result<Footprint>,
    quick: bool,
) {
    t.section(format!(
        "footprint: {} users in {} policies, windows opening 10-110 min ahead",
        footprint::POLICIES * footprint::USERS_PER_POLICY,
        footprint::POLICIES
    ));
    let f = match f {
        Ok(f) => f,
        Err(e) => return t.failed("footprint", &e),
    };
    let limit = 64 * 1024 * 1024;
    t.line(
        "peak RSS, MALLOC_ARENA_MAX=2 (VmHWM: runtime, simulator, store, daemon)",
        mib(f.peak_rss),
        format!("< {}", mib(limit)),
        Some(f.peak_rss as f64 / limit as f64),
        Verdict::from(f.peak_rss < limit),
    );
    t.line(
        "  RSS before the daemon / peak when ready / at the end",
        format!(
            "{} / {} / {}",
            mib(f.base_rss),
            mib(f.ready_peak_rss),
            mib(f.rss)
        ),
        "ready = policies loaded, not yet planned",
        None,
        Verdict::Info,
    );
    match default_arenas {
        Ok(a) => t.line(
            "  peak RSS with glibc's default arenas (diagnostic)",
            mib(a.peak_rss),
            "what the unit's MALLOC_ARENA_MAX=2 saves",
            Some(a.peak_rss as f64 / limit as f64),
            Verdict::Info,
        ),
        Err(e) => t.failed("  peak RSS with glibc's default arenas", &e),
    }
    let share = f.idle_cpu_ms / (f.idle_secs as f64 * 1000.0) * 100.0;
    t.line(
        format!(
            "CPU while idle between windows ({} s{})",
            f.idle_secs,
            if quick { ", --quick" } else { "" }
        ),
        format!("{share:.2}% of a core"),
        "< 0.5%",
        Some(share / 0.5),
        Verdict::from(share < 0.5),
    );
    t.line(
        "  planning passes while idle / CPU per pass",
        format!(
            "{} / {}",
            f.idle_passes,
            ms(f.idle_cpu_ms / f.idle_passes.max(1) as f64)
        ),
        "the loop sleeps until the next start or end",
        None,
        Verdict::Info,
    );
    t.line(
        "ready (open, load, parse, reconcile)",
        ms(f.ready_ms),
        "",
        None,
        Verdict::Info,
    );
    t.line(
        "  reading and parsing the policies",
        ms(f.load_ms),
        "",
        None,
        Verdict::Info,
    );
    t.line(
        "planning: coverage + segments, 1 h horizon (median of 3)",
        ms(f.plan_1h_ms.p50),
        format!("{} segments", f.segments_1h),
        None,
        Verdict::Info,
    );
    t.line(
        "  the same over the daemon's 3.5 h horizon",
        ms(f.plan_daemon_ms.p50),
        "what every pass computes",
        None,
        Verdict::Info,
    );
}

fn restart_lines(t: &mut Table, r: anyhow::Result<Restart>) {
    t.section(format!(
        "restart with {} live recording rows",
        restart::ROWS
    ));
    let r = match r {
        Ok(r) => r,
        Err(e) => return t.failed("restart", &e),
    };
    t.line(
        "open + load + reconcile until on_ready",
        ms(r.ready_ms),
        "< 2 s",
        Some(r.ready_ms / 2000.0),
        Verdict::from(r.ready_ms < 2000.0),
    );
    t.line(
        "  requests sent by the first pass / rows still recording",
        format!("{} / {}", r.requests, r.still_recording),
        format!("0 / {}", r.rows),
        None,
        Verdict::from(r.requests == 0 && r.still_recording == r.rows),
    );
}
