//! Who this process is among the instances sharing one database: an id
//! made at start from the host name, the process id and a random part
//! (`db-2-41873-9f3a2c`), written as `owner` on the rows it claims or
//! takes over.
//!
//! Host and pid tell an operator where a row's owner ran; the random part
//! keeps ids apart when a pid is reused (a restart in a container is often
//! pid 1 again), so a restarted process never mistakes its predecessor's
//! rows for its own and waits for their lease like any other instance.

use std::fmt;

use rand::Rng;

/// This process's id among the instances on one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceId(String);

impl InstanceId {
    /// `host-pid-random`, made once at start.
    pub fn generate() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        let random: u32 = rand::rng().random_range(0..0x100_0000);
        Self(format!("{host}-{}-{random:06x}", std::process::id()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_process_and_differ_between_starts() {
        let a = InstanceId::generate();
        let b = InstanceId::generate();
        assert_ne!(a, b);
        assert!(
            a.as_str().contains(&format!("-{}-", std::process::id())),
            "{a}"
        );
    }
}
