//! Which URLs the client may talk to: `https://` anywhere, plain `http://`
//! only to this machine.
//!
//! Every request carries a secret (the bearer token, or the client and
//! access-key secrets at the token endpoint), so a URL that would send one
//! unencrypted over a network is a configuration error, found when the
//! client is built rather than at the first window. Loopback stays allowed
//! for the simulator (`recsched demo`, `recsched simulate`, the tests) and
//! for a local TLS-terminating proxy.

use super::error::CxoneError;
use std::net::IpAddr;

/// `url`, checked: `https`, or `http` to a loopback host (`localhost`,
/// `127.0.0.0/8`, `::1`). `key` names the setting to fix.
pub fn checked(key: &str, url: reqwest::Url) -> Result<reqwest::Url, CxoneError> {
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(CxoneError::Config(format!(
            "{key} `{url}` uses plain http to a host that is not this machine; the bearer token \
             and secrets would cross the network unencrypted: use https:// (plain http is only \
             allowed to localhost, 127.0.0.1 or ::1)"
        ))),
        other => Err(CxoneError::Config(format!(
            "{key} `{url}` has scheme `{other}`: use https://"
        ))),
    }
}

/// Whether `url`'s host is this machine.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // IPv6 hosts come bracketed (`[::1]`).
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str) -> Result<reqwest::Url, CxoneError> {
        checked("cxone.api_base", reqwest::Url::parse(raw).unwrap())
    }

    #[test]
    fn https_is_allowed_anywhere() {
        assert!(check("https://api-c32.nice-incontact.com/x").is_ok());
        assert!(check("https://127.0.0.1:8443").is_ok());
    }

    #[test]
    fn plain_http_is_allowed_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:4000/auth/token",
            "http://127.3.4.5",
            "http://localhost:80",
            "http://LOCALHOST",
            "http://[::1]:9000/",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.example.com",
            "http://10.0.0.1",
            "http://[::2]",
            "http://localhost.example.com",
            "http://127.0.0.1.example.com",
            "http://0.0.0.0",
        ] {
            let e = check(bad).unwrap_err().to_string();
            assert!(e.contains("cxone.api_base"), "{e}");
            assert!(e.contains("use https://"), "{e}");
            assert!(e.contains("unencrypted"), "{e}");
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        let e = check("ftp://127.0.0.1/x").unwrap_err().to_string();
        assert!(e.contains("scheme `ftp`"), "{e}");
    }
}
