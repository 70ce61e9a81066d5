//! The database cannot be written: a read-only file, then a full disk.
//! Either way the daemon must say what is wrong (the log names the file
//! and the fix), keep what was stored, and send no start it cannot record.
//!
//! Root ignores file modes, and CI runs as root, so "read-only" is made
//! with `chattr +i` (immutable even for root), or failing that with a
//! read-only bind mount; a full disk is a small tmpfs. Where the machine
//! allows neither, the test says why and passes without checking.

use super::hostile::{assert_no_panic, assert_on_time};
use super::hosts::{pid_writing, Peers};
use super::{
    add_policy, cron_at, now, refs, running, second_after, start_requests, until, user_of, users,
};
use crate::common::daemon::{wait_for, Rig};
use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::simulator::{self, SimConfig};
use recsched::store::{self, RecordingRow, Store};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a command; `Err` with what it printed if it fails.
fn sh(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Undoes a way of making the database unwritable when dropped.
enum Unwritable {
    /// `chattr +i` on the file.
    Immutable(PathBuf),
    /// A mount point to unmount (read-only bind mount, tmpfs).
    Mount(PathBuf),
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let result = match self {
            // SQLite deletes the WAL when the last connection closes.
            Self::Immutable(p) if !p.exists() => Ok(()),
            Self::Immutable(p) => sh("chattr", &["-i", &p.display().to_string()]),
            Self::Mount(p) => sh("umount", &["-l", &p.display().to_string()]),
        };
        if let Err(e) = result {
            eprintln!("cleanup failed: {e}");
        }
    }
}

/// The rows, in a form that compares what matters.
fn snapshot(rows: &[RecordingRow]) -> Vec<(String, String, RecordingState, Option<i64>)> {
    rows.iter()
        .map(|r| {
            (
                r.user_id.to_string(),
                r.segment_start.to_rfc3339(),
                r.state,
                r.contact_id.map(|c| c.get()),
            )
        })
        .collect()
}

/// Makes `rig`'s database unwritable for the next daemon: `chattr +i`,
/// else a read-only bind mount of its directory (the rig then points at
/// the file through the mount). `Err` says why neither worked.
fn make_read_only(rig: Rig) -> Result<(Rig, Unwritable, &'static str), String> {
    let db = rig.db.display().to_string();
    let chattr = match sh("chattr", &["+i", &db]) {
        Ok(()) => {
            let undo = Unwritable::Immutable(rig.db.clone());
            return Ok((rig, undo, "chattr +i"));
        }
        Err(e) => e,
    };
    let view = rig.dir.path().join("read-only-view");
    let bind = std::fs::create_dir(&view)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            sh(
                "mount",
                &[
                    "--bind",
                    &rig.dir.path().display().to_string(),
                    &view.display().to_string(),
                ],
            )
        });
    if let Err(e) = bind {
        return Err(format!("{chattr}; {e}"));
    }
    let guard = Unwritable::Mount(view.clone());
    if let Err(e) = sh(
        "mount",
        &["-o", "remount,bind,ro", &view.display().to_string()],
    ) {
        return Err(format!("{chattr}; {e}"));
    }
    let Rig {
        dir,
        sim,
        store,
        env,
        ..
    } = rig;
    let rig = Rig {
        db: view.join("recsched.db"),
        dir,
        sim,
        store,
        env,
        credentials: None,
    };
    Ok((rig, guard, "a read-only bind mount"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_database_is_named_with_its_fix_and_no_start_is_sent() {
    let rig = Rig::new().await;
    let before = users("ro-before", 3);
    let after = users("ro-after", 3);
    let t1 = second_after(Duration::seconds(3));
    add_policy(&rig, "before", &cron_at(t1), 30, "expire", &refs(&before)).await;

    // A first daemon records the first window, then stops.
    let daemon = rig.spawn();
    wait_for(
        std::time::Duration::from_secs(20),
        "the first window recorded",
        || async {
            let rows = rig.rows().await;
            (rows.iter().filter(|r| r.contact_id.is_some()).count() == before.len()).then_some(())
        },
    )
    .await;
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
    let stored = snapshot(&rig.rows().await);
    let sent_before = start_requests(&rig).len();
    // The second window opens a few seconds from now, after the file is
    // read-only and a second daemon has had time to start on it.
    let t2 = second_after(Duration::seconds(3));
    add_policy(&rig, "after", &cron_at(t2), 30, "expire", &refs(&after)).await;

    let (rig, _undo, how) = match make_read_only(rig) {
        Ok(done) => done,
        Err(why) => {
            println!("read-only database: skipped, cannot make the file unwritable as this user here: {why}");
            return;
        }
    };
    // A second daemon on the unwritable file, across the second window.
    let daemon = rig.spawn();
    until(t2 + Duration::seconds(2)).await;
    // Already exited (refused to start): its own status; else SIGTERM's.
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    let db = rig.db.display().to_string();
    let starts = start_requests(&rig);
    let sent_after: Vec<_> = starts[sent_before..].iter().filter_map(user_of).collect();
    let rows = rig.rows().await;
    println!(
        "read-only database ({how}): daemon {}; {} start requests after it became read-only; \
         {} rows kept; log: {}",
        if status.success() {
            "kept running".to_owned()
        } else {
            format!("refused to start ({status})")
        },
        sent_after.len(),
        rows.len(),
        log.lines()
            .filter(|l| l.contains("read-only"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    assert!(log.contains(&db), "the log does not name {db}:\n{log}");
    assert!(
        log.contains("read-only") && log.contains("write access"),
        "the log does not say what is wrong and how to fix it:\n{log}"
    );
    assert!(
        sent_after.is_empty(),
        "starts sent that could not be recorded: {sent_after:?}"
    );
    assert_eq!(snapshot(&rows), stored, "stored rows changed");
    assert!(
        rig.recordings().iter().all(|m| !after.contains(&m.user_id)),
        "the vendor recorded a user whose window could not be stored"
    );
}

/// Fills the file system holding `dir` with one file; returns its size.
fn fill(dir: &Path) -> (PathBuf, u64) {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0xA5u8; 64 * 1024];
    let mut written = 0u64;
    // Bounded: the tmpfs is a few MiB.
    for _ in 0..100_000 {
        match f.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // The last partial block, in smaller writes down to single bytes.
    for size in [4096usize, 512, 1] {
        for _ in 0..block.len() / size {
            match f.write(&block[..size]) {
                Ok(n) if n > 0 => written += n as u64,
                _ => break,
            }
        }
    }
    let _ = f.sync_all();
    (path, written)
}

/// How the database becomes unwritable while the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breakage {
    /// A 4 MiB tmpfs filled to the last byte; mended by deleting the filler.
    FullDisk,
    /// `chattr +i` on the database and its WAL; mended by `chattr -i`.
    Immutable,
}

/// A first window is recorded; the database becomes unwritable; a second
/// window of 100 users opens. The daemon must name the file and the fix,
/// keep the stored rows and send none of the 100 starts. With
/// `recovery`, once the database is mended every open window must be
/// caught up, once, inside itself.
async fn unwritable_while_running(kind: Breakage, recovery: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut guards = Vec::new();
    let db = match kind {
        Breakage::FullDisk => {
            let small = dir.path().join("small-disk");
            std::fs::create_dir(&small).unwrap();
            let opts = ["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"];
            if let Err(why) = sh(
                "mount",
                &[&opts[..], &[&small.display().to_string()]].concat(),
            ) {
                println!("full disk: skipped, cannot mount a small tmpfs here: {why}");
                return;
            }
            guards.push(Unwritable::Mount(small.clone()));
            small.join("recsched.db")
        }
        Breakage::Immutable => dir.path().join("recsched.db"),
    };
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    let store = Store::open(&store::Settings {
        path: db.clone(),
        ..store::Settings::default()
    })
    .await
    .unwrap();
    let rig = Rig {
        dir,
        db,
        sim,
        store,
        // The database breaks a second before the window: what is under
        // test is the claim at the instant, not one made ahead of it.
        env: vec![(
            "RECSCHED_SCHEDULE__CLAIM_AHEAD_SECONDS".to_owned(),
            "0".to_owned(),
        )],
        credentials: None,
    };
    let first = users("first", 3);
    let burst = users("burst", 100);
    let t1 = second_after(Duration::seconds(3));
    let window = 40;
    add_policy(&rig, "first", &cron_at(t1), window, "expire", &refs(&first)).await;

    let mut daemon = rig.spawn();
    let peers = Peers::watch(pid_writing(&daemon.log));
    running(&daemon).await;
    wait_for(
        std::time::Duration::from_secs(20),
        "the first window recorded",
        || async {
            let rows = rig.rows().await;
            (rows.iter().filter(|r| r.contact_id.is_some()).count() == first.len()).then_some(())
        },
    )
    .await;
    let stored = snapshot(&rig.rows().await);
    assert_on_time(&rig.recordings(), &first, t1);
    // The burst's window opens a few seconds from now: the daemon loads it
    // (it polls every 200 ms) before the database breaks under it.
    let t2 = second_after(Duration::seconds(2));
    add_policy(&rig, "burst", &cron_at(t2), window, "expire", &refs(&burst)).await;
    wait_for(
        std::time::Duration::from_secs(10),
        "the burst's policy loaded",
        || async { daemon.log().contains("policies reloaded").then_some(()) },
    )
    .await;

    // Break it.
    let db = rig.db.display().to_string();
    let wal = format!("{db}-wal");
    let (how, filler) = match kind {
        Breakage::FullDisk => {
            let (filler, bytes) = fill(rig.db.parent().unwrap());
            (
                format!("a 4 MiB tmpfs filled with {} KiB", bytes / 1024),
                Some(filler),
            )
        }
        Breakage::Immutable => {
            if let Err(why) = sh("chattr", &["+i", &db, &wal]) {
                println!("read-only while running: skipped, chattr +i fails here: {why}");
                return;
            }
            guards.push(Unwritable::Immutable(rig.db.clone()));
            guards.push(Unwritable::Immutable(PathBuf::from(&wal)));
            ("chattr +i on the database and its WAL".to_owned(), None)
        }
    };
    let broken_at = now();
    assert!(
        broken_at < t2 - Duration::seconds(1),
        "breaking took too long"
    );

    // The second window opens on it.
    until(t2 + Duration::seconds(2)).await;
    daemon.assert_running();
    let log = daemon.log();
    let sent_while_broken = start_requests(&rig)
        .iter()
        .filter_map(user_of)
        .filter(|u| burst.contains(u))
        .count();
    let rows_while_broken = rig.rows().await;
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    println!(
        "{kind:?} ({how}) across a window of {} users: {} starts sent, {} rows kept; the daemon \
         said first: {}\n  and last: {}",
        burst.len(),
        sent_while_broken,
        rows_while_broken.len(),
        said.first().copied().unwrap_or("nothing"),
        said.last().copied().unwrap_or("nothing")
    );
    assert_eq!(
        sent_while_broken, 0,
        "starts sent that could not be recorded"
    );
    assert_eq!(snapshot(&rows_while_broken), stored, "stored rows changed");
    assert!(log.contains(&db), "the log does not name {db}:\n{log}");
    let fix = match kind {
        Breakage::FullDisk => log.contains("disk is full") && log.contains("free space"),
        Breakage::Immutable => log.contains("read-only") && log.contains("write access"),
    };
    assert!(
        fix,
        "the log does not say what is wrong and how to fix it:\n{log}"
    );

    // Mend it.
    match filler {
        Some(filler) => std::fs::remove_file(filler).unwrap(),
        None => sh("chattr", &["-i", &db, &wal]).unwrap(),
    }
    let mended_at = now();
    if recovery {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let rows = loop {
            let rows = rig.rows().await;
            let done = rows
                .iter()
                .filter(|r| burst.contains(&r.user_id.to_string()) && r.contact_id.is_some())
                .count();
            if done == burst.len() {
                break rows;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{done} of {} windows caught up 20 s after the database was mended:\n{}",
                burst.len(),
                daemon.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let sim = rig.recordings();
        for u in &burst {
            let mine: Vec<_> = rows.iter().filter(|r| r.user_id.as_str() == u).collect();
            assert_eq!(mine.len(), 1, "{u}: {mine:?}");
            assert_eq!(mine[0].segment_start, t2);
            let made: Vec<_> = sim.iter().filter(|m| &m.user_id == u).collect();
            assert_eq!(made.len(), 1, "{u}: {made:?}");
            assert!(
                made[0].started_at >= mended_at,
                "{u} started before the mend"
            );
            assert!(made[0].started_at < t2 + Duration::seconds(window));
            assert_eq!(
                mine[0].contact_id.map(|c| c.get()),
                Some(made[0].contact_id as i64)
            );
        }
        let kept: Vec<_> = snapshot(&rows)
            .into_iter()
            .filter(|(u, ..)| first.contains(u))
            .collect();
        assert_eq!(kept, stored, "the first window's rows changed");
        let caught_up = rows.iter().map(|r| r.updated_at).max().unwrap();
        println!(
            "{kind:?}: mended {:.1} s after breaking; all {} windows caught up {:.1} s later, once each",
            (mended_at - broken_at).num_milliseconds() as f64 / 1000.0,
            burst.len(),
            (caught_up - mended_at).num_milliseconds() as f64 / 1000.0
        );
    }
    daemon.assert_running();
    peers.assert_only(&[rig.sim.addr()]);
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{log}");
    assert_no_panic(&log);
    // Mounts and flags go before the temporary directory does.
    let Rig { dir, store, .. } = rig;
    store.close().await;
    drop(guards);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_named_with_its_fix_and_no_start_is_sent() {
    unwritable_while_running(Breakage::FullDisk, false).await;
}

/// A transaction that failed on SQLITE_FULL used to leave its pooled
/// connection at sqlx transaction depth 1, so every later `BEGIN
/// IMMEDIATE` on it failed until a restart; the pool now closes such a
/// connection instead of handing it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_disk_is_freed_open_windows_are_caught_up_once() {
    unwritable_while_running(Breakage::FullDisk, true).await;
}

/// SQLite opens a file it cannot write read-only, and a pooled connection
/// that did so kept answering SQLITE_READONLY after the file was writable
/// again, so nothing was caught up until a restart. A read-only answer now
/// retires every pooled connection opened before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_made_read_only_while_running_is_named_and_recovered_from() {
    unwritable_while_running(Breakage::Immutable, true).await;
}
