//! `recsched simulate`: run the vendor-API simulator on its own, for dry
//! runs, demos and benchmarks.
//!
//! The flags map one to one onto [`SimConfig`]; the fault knobs can also
//! be changed while it runs with `PUT /_sim/config`. The credentials are
//! fake: they only have to match what the daemon is configured with.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::simulator::{self, Faults, SimConfig};

/// Run a stand-in for the CXone recording API (fake credentials, fault injection).
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on. The simulator has no real security: keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:8099")]
    pub listen: SocketAddr,

    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub token_ttl: u64,

    /// Seed of the fault sequence; the same seed gives the same faults.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Fraction (0.0-1.0) of starts and stops answered 425 without effect.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub rate_425: f64,

    /// Fraction of starts and stops answered 500 without effect.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub rate_500: f64,

    /// Fraction of starts and stops answered 504 without effect.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub rate_504: f64,

    /// Fraction of starts and stops carried out and then answered 504 anyway.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub rate_504_after_start: f64,

    /// Fraction of successful starts answered 202 instead of 200.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub rate_202: f64,

    /// Send this `Retry-After` (seconds) with every injected 425.
    #[arg(long, value_name = "SECS")]
    pub retry_after: Option<u64>,

    /// Fraction of 2xx answers whose contactId is a JSON string of digits.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub contact_id_as_string_rate: f64,

    /// Fraction of 2xx answers whose body is not JSON (the call still takes effect).
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub malformed_body_rate: f64,

    /// Fixed latency added to every start and stop, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,

    /// Uniformly random extra latency, up to this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_jitter_ms: u64,

    /// Fraction of starts and stops that meet a latency spike.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub spike_rate: f64,

    /// Extra latency of a spike, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub spike_ms: u64,

    /// Work on at most this many starts and stops at once; the rest wait.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrency: Option<u64>,

    /// OAuth client id expected in the token request's Basic authorization.
    #[arg(long, env = "RECSCHED_SIM_CLIENT_ID", default_value = "sim-client")]
    pub client_id: String,

    /// OAuth client secret expected with the client id (the default is fake and public).
    #[arg(
        long,
        env = "RECSCHED_SIM_CLIENT_SECRET",
        hide_env_values = true,
        default_value = "sim-client-secret"
    )]
    pub client_secret: String,

    /// Access key id expected as the password grant's username.
    #[arg(long, env = "RECSCHED_SIM_ACCESS_KEY_ID", default_value = "sim-key")]
    pub access_key_id: String,

    /// Access key secret expected as the password grant's password (the default is fake and public).
    #[arg(
        long,
        env = "RECSCHED_SIM_ACCESS_KEY_SECRET",
        hide_env_values = true,
        default_value = "sim-key-secret"
    )]
    pub access_key_secret: String,

    /// The tenant id carried in every access token's `tenantId` claim (what
    /// discovery reads) and expected by /.well-known/cxone-configuration.
    #[arg(long, default_value = "11111111-2222-4333-8444-555555555555")]
    pub tenant_id: String,

    /// Seed a directory team for the user search: TEAM=USER,USER,...
    /// (repeat for more teams). Change it while running with
    /// PUT or DELETE /_sim/teams/TEAM/USER.
    #[arg(long = "team", value_name = "TEAM=USERS", value_parser = team)]
    pub teams: Vec<(String, Vec<String>)>,
}

/// `TEAM=USER,USER`.
fn team(raw: &str) -> Result<(String, Vec<String>), String> {
    let (team, users) = raw
        .split_once('=')
        .ok_or_else(|| format!("`{raw}` is not TEAM=USER,USER"))?;
    if team.trim().is_empty() {
        return Err(format!("`{raw}` names no team"));
    }
    let users = users
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((team.trim().to_owned(), users))
}

/// A probability: a number from 0.0 to 1.0.
fn rate(raw: &str) -> Result<f64, String> {
    let value: f64 = raw
        .parse()
        .map_err(|_| format!("`{raw}` is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not between 0.0 and 1.0"))
    }
}

impl SimulateArgs {
    /// The simulator configuration these flags describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            access_key_id: self.access_key_id.clone(),
            access_key_secret: self.access_key_secret.clone(),
            token_ttl_secs: self.token_ttl,
            tenant_id: self.tenant_id.clone(),
            teams: self.teams.iter().cloned().collect(),
            faults: Faults {
                rate_425: self.rate_425,
                rate_500: self.rate_500,
                rate_504: self.rate_504,
                rate_504_after_start: self.rate_504_after_start,
                rate_202: self.rate_202,
                retry_after_secs: self.retry_after,
                contact_id_as_string_rate: self.contact_id_as_string_rate,
                malformed_body_rate: self.malformed_body_rate,
                latency_ms: self.latency_ms,
                latency_jitter_ms: self.latency_jitter_ms,
                spike_rate: self.spike_rate,
                spike_ms: self.spike_ms,
                max_concurrency: self
                    .max_concurrency
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                seed: self.seed,
                ..Faults::default()
            },
        }
    }
}

/// Binds `--listen`, prints where the simulator is and which ids it
/// expects (never the secrets), and serves until `shutdown` completes.
pub async fn run(
    args: SimulateArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = args.config();
    config
        .faults
        .validate()
        .context("checking the simulator's fault flags")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the simulator to {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let url = format!("http://{addr}");
    println!(
        "simulator listening on {url} (token URL {url}/auth/token; client id `{}`, access key id `{}`)",
        config.client_id, config.access_key_id
    );
    tracing::info!(
        %url,
        client_id = %config.client_id,
        access_key_id = %config.access_key_id,
        faults = ?config.faults,
        "simulator started"
    );
    simulator::serve(listener, config, shutdown)
        .await
        .with_context(|| format!("serving the simulator on {url}"))?;
    tracing::info!(%url, "simulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(argv: &[&str]) -> Result<SimulateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("simulate").chain(argv.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn teams_and_the_tenant_are_seeded_from_flags() {
        let args = parse(&[
            "--team",
            "back-office=a, b,c",
            "--team",
            "night=d",
            "--tenant-id",
            "t-9",
        ])
        .unwrap();
        let config = args.config();
        assert_eq!(config.teams["back-office"], ["a", "b", "c"]);
        assert_eq!(config.teams["night"], ["d"]);
        assert_eq!(config.tenant_id, "t-9");
        assert!(parse(&["--team", "no-equals"]).is_err());
        assert!(parse(&["--team", "=a"]).is_err());
    }

    #[test]
    fn the_flags_are_well_formed_and_documented() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        for arg in cmd.get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }

    #[test]
    fn no_flags_give_the_default_config() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:8099".parse().unwrap());
        assert_eq!(args.config(), SimConfig::default());
    }

    #[test]
    fn fault_flags_reach_the_config() {
        let args = parse(&[
            "--rate-425",
            "0.25",
            "--rate-504-after-start",
            "1",
            "--retry-after",
            "7",
            "--latency-ms",
            "20",
            "--latency-jitter-ms",
            "5",
            "--max-concurrency",
            "3",
            "--seed",
            "42",
            "--token-ttl",
            "60",
        ])
        .unwrap();
        let c = args.config();
        assert_eq!(c.faults.rate_425, 0.25);
        assert_eq!(c.faults.rate_504_after_start, 1.0);
        assert_eq!(c.faults.retry_after_secs, Some(7));
        assert_eq!(c.faults.latency_ms, 20);
        assert_eq!(c.faults.latency_jitter_ms, 5);
        assert_eq!(c.faults.max_concurrency, Some(3));
        assert_eq!(c.faults.seed, 42);
        assert_eq!(c.token_ttl_secs, 60);
        assert_eq!(c.faults.validate(), Ok(()));
    }

    #[test]
    fn a_rate_outside_zero_to_one_or_zero_workers_is_refused() {
        assert!(parse(&["--rate-500", "1.5"]).is_err());
        assert!(parse(&["--rate-500", "lots"]).is_err());
        assert!(parse(&["--max-concurrency", "0"]).is_err());
    }

    #[tokio::test]
    async fn run_serves_until_shutdown() {
        let mut args = parse(&[]).unwrap();
        args.listen = "127.0.0.1:0".parse().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stop.send(()).unwrap();
        run(args, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    }
}
