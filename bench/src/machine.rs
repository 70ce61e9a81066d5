//! What the benchmark reads about the machine and about its own process:
//! cores, CPU model, kernel, the file system under the databases, how long
//! one fsync takes there, peak RSS and CPU time (from `/proc`).
//!
//! Kept apart so every figure's source is in one place and the scenarios
//! only ask "how much CPU has this process used so far".

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// The machine, as printed at the top of the report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub fs_type: String,
    /// Mean time of one `write(4 KiB)` + `fdatasync` on the database's file
    /// system: the floor under every SQLite commit with `synchronous=FULL`.
    pub fsync_ms: f64,
}

impl Machine {
    pub fn probe(dir: &Path) -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            fs_type: fs_type(dir),
            fsync_ms: fsync_ms(dir, 200).unwrap_or(f64::NAN),
        }
    }
}

fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn fs_type(dir: &Path) -> String {
    std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// Mean milliseconds of `rounds` × (write 4 KiB, fdatasync) in `dir`.
pub fn fsync_ms(dir: &Path, rounds: u32) -> std::io::Result<f64> {
    let path = dir.join(format!("fsync-probe-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = [7u8; 4096];
    let t = Instant::now();
    for _ in 0..rounds {
        file.write_all(&block)?;
        file.sync_data()?;
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(ms)
}

/// The 1-minute load average (`/proc/loadavg`): how busy the shared
/// machine was around the run.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// This process's peak resident set (`VmHWM`), bytes.
pub fn peak_rss() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// This process's resident set now (`VmRSS`), bytes.
pub fn rss() -> u64 {
    status_kib("VmRSS:") * 1024
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used so far, from
/// `/proc/self/stat` (clock-tick resolution, 10 ms on Linux).
pub fn cpu_time() -> Duration {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// utime + stime of a `/proc/PID/stat` line.
pub fn stat_cpu(stat: &str) -> Duration {
    // Fields after the command name, which is in parentheses and may hold
    // spaces: utime and stime are fields 14 and 15 of the whole line.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    let (Some(utime), Some(stime)) = (ticks(11), ticks(12)) else {
        return Duration::ZERO;
    };
    let hz = clock_ticks_per_second();
    Duration::from_secs_f64((utime + stime) as f64 / hz as f64)
}

/// `getconf CLK_TCK`, or 100 (every Linux default) if that is unavailable;
/// asked once (the dense scenario reads a child's CPU every 50 ms).
fn clock_ticks_per_second() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|hz| *hz > 0)
            .unwrap_or(100)
    })
}
