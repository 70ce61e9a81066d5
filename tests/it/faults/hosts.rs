//! Which hosts a running daemon talks to, read from `/proc` (Linux).
//!
//! A thread samples the daemon's sockets every few milliseconds for as
//! long as the watch lives and collects the far end of every TCP
//! connection it opened and every connected UDP socket (a DNS lookup of a
//! host it was never told about would be one). Connections accepted by
//! its own listeners (`/metrics`) are not "sent to" anyone and are left
//! out. Sampling can miss a connection that lives less than one period;
//! the daemon's HTTP client keeps its connections open, so the hosts it
//! uses are seen.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pid of the process whose stdout is `log` (the rig's daemons write
/// their log there), waiting up to 10 s for it to appear.
pub fn pid_writing(log: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = std::fs::read_dir("/proc").ok().and_then(|procs| {
            procs.flatten().find_map(|p| {
                let pid: u32 = p.file_name().to_str()?.parse().ok()?;
                let out = std::fs::read_link(p.path().join("fd/1")).ok()?;
                (out == log).then_some(pid)
            })
        });
        if let Some(pid) = found {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no process writes to {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One socket of the process, as `/proc/<pid>/net/*` lists it.
#[derive(Debug, Clone, Copy)]
struct Socket {
    local: SocketAddr,
    remote: SocketAddr,
    listening: bool,
}

/// Watches one process's peers until dropped or [`Peers::seen`].
pub struct Peers {
    pid: u32,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeSet<SocketAddr>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peers {
    pub fn watch(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let peers = sample(pid);
                    seen.lock().unwrap().extend(peers);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self {
            pid,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops watching; every far end seen, including in one last sample
    /// taken now: on a loaded machine the sampling thread can sleep through
    /// the few milliseconds between a connection's opening and the caller's
    /// question, and the daemon keeps its connections open.
    pub fn seen(mut self) -> BTreeSet<SocketAddr> {
        self.finish();
        let mut seen = self.seen.lock().unwrap().clone();
        seen.extend(sample(self.pid));
        seen
    }

    /// Stops watching and asserts that every far end seen is one of
    /// `allowed`, and that at least one was seen (the watch worked).
    pub fn assert_only(self, allowed: &[SocketAddr]) {
        let seen = self.seen();
        let other: Vec<_> = seen.iter().filter(|a| !allowed.contains(a)).collect();
        assert!(
            other.is_empty(),
            "the daemon talked to hosts it was not configured with: {other:?} (allowed: {allowed:?})"
        );
        assert!(
            !seen.is_empty(),
            "no connection of the daemon was seen: the watch does not work here"
        );
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        self.finish();
    }
}

/// How many connections the process holds open that it accepted on
/// `port` (its own listener's clients), right now.
pub fn accepted_on(pid: u32, port: u16) -> usize {
    let (tcp, _) = sockets(pid);
    tcp.iter()
        .filter(|s| !s.listening && s.local.port() == port)
        .count()
}

/// The far ends of the process's outgoing connections right now.
fn sample(pid: u32) -> Vec<SocketAddr> {
    let (tcp, udp) = sockets(pid);
    let listening: Vec<u16> = tcp
        .iter()
        .filter(|s| s.listening)
        .map(|s| s.local.port())
        .collect();
    let connected = |s: &&Socket| !s.listening && !s.remote.ip().is_unspecified();
    tcp.iter()
        .filter(connected)
        // Accepted by one of its own listeners: a client of the daemon.
        .filter(|s| !listening.contains(&s.local.port()))
        .chain(udp.iter().filter(connected))
        .map(|s| s.remote)
        .collect()
}

/// The process's TCP and UDP sockets (IPv4 and IPv6).
fn sockets(pid: u32) -> (Vec<Socket>, Vec<Socket>) {
    let proc = Path::new("/proc").join(pid.to_string());
    let inodes: BTreeSet<u64> = std::fs::read_dir(proc.join("fd"))
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| {
                    let target = std::fs::read_link(fd.path()).ok()?;
                    let text = target.to_str()?;
                    text.strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    let table = |name: &str| -> Vec<Socket> {
        let text = std::fs::read_to_string(proc.join("net").join(name)).unwrap_or_default();
        text.lines()
            .skip(1)
            .filter_map(parse_line)
            .filter(|(inode, _)| inodes.contains(inode))
            .map(|(_, s)| s)
            .collect()
    };
    let tcp = [table("tcp"), table("tcp6")].concat();
    let udp = [table("udp"), table("udp6")].concat();
    (tcp, udp)
}

/// `sl local rem st ... inode`: the inode and the socket.
fn parse_line(line: &str) -> Option<(u64, Socket)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let local = parse_addr(f.get(1)?)?;
    let remote = parse_addr(f.get(2)?)?;
    let listening = *f.get(3)? == "0A";
    let inode = f.get(9)?.parse().ok()?;
    Some((
        inode,
        Socket {
            local,
            remote,
            listening,
        },
    ))
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): each 32-bit
/// word of the address is printed as the host reads the network-order
/// bytes, so its native-endian bytes are the address's.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let bytes: Vec<u8> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<Vec<u32>>>()?
        .into_iter()
        .flat_map(u32::to_ne_bytes)
        .collect();
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            let v6 = Ipv6Addr::from(octets);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[test]
fn proc_addresses_parse() {
    let want: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let word = |b: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(b));
    let v4 = word([127, 0, 0, 1]);
    assert_eq!(parse_addr(&format!("{v4}:1F90")), Some(want));
    // ::ffff:127.0.0.1, as a dual-stack socket shows it.
    let v6 = [[0; 4], [0; 4], [0, 0, 0xff, 0xff], [127, 0, 0, 1]]
        .map(word)
        .concat();
    assert_eq!(parse_addr(&format!("{v6}:1F90")), Some(want));
    assert_eq!(parse_addr("zz:1F90"), None);
}
