//! Real CXone tenants (issue 16): access-key tokens, endpoint discovery,
//! and policies that name teams, each against the simulator, most on the
//! real binary.

mod auth;
mod directory;
mod discovery;
mod simulator;
mod teams;

use crate::common::daemon::Rig;

/// Configures `rig`'s daemons the way a tenant with only an access key
/// is: `cxone.auth = "access-key"`, the access key, and no OAuth client.
pub fn access_key_only(rig: &mut Rig) {
    let c = rig.sim.config().clone();
    for (key, value) in [
        ("RECSCHED_CXONE__AUTH", "access-key"),
        ("RECSCHED_CXONE__CLIENT_ID", ""),
        ("RECSCHED_CXONE__CLIENT_SECRET", ""),
        ("RECSCHED_CXONE__TOKEN_URL", ""),
        ("RECSCHED_CXONE__ACCESS_KEY_ID", c.access_key_id.as_str()),
        (
            "RECSCHED_CXONE__ACCESS_KEY_SECRET",
            c.access_key_secret.as_str(),
        ),
    ] {
        rig.set(key, value);
    }
}

/// As [`access_key_only`], and with no API base: the daemon discovers it
/// from `cxone.issuer` (the simulator).
pub fn issuer_only(rig: &mut Rig) {
    access_key_only(rig);
    let issuer = rig.sim.issuer().to_owned();
    rig.set("RECSCHED_CXONE__API_BASE", "");
    rig.set("RECSCHED_CXONE__ISSUER", &issuer);
}

/// How many requests the simulator received on `path`.
pub fn requests_to(rig: &Rig, path: &str) -> usize {
    rig.sim.requests().iter().filter(|r| r.path == path).count()
}
