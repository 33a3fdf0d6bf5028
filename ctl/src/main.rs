//! ipfs-cluster-ctl: the command-line client of the IPFS Cluster REST API.
//!
//! A drop-in replacement for the Go tool: same commands, flags, text output and exit codes
//! (0 success, 1 argument or transport error, 2 the cluster answered with an error object,
//! 62 a time limit was exceeded, 125 canceled). Errors are reported on one stderr line.

mod cli;
mod format;
mod graph;
mod humanize;
mod progress;
mod run;

use std::time::Duration;

use clap::error::ErrorKind;
use clap::Parser;
use cluster_client::{Client, ClientConfig, ClientError};

use crate::cli::{Cli, Cmd, VERSION};
use crate::run::{out, Ctx, Encoding};

/// Exit code when an argument is wrong or the cluster cannot be reached.
const EXIT_ERROR: i32 = 1;
/// Exit code when the cluster answered with an error object.
const EXIT_API_ERROR: i32 = 2;
/// Exit code when a time limit (`--timeout`, `--wait-timeout`) was exceeded (ETIME).
const EXIT_TIMEOUT: i32 = 62;
/// Exit code when the user interrupted the command (ECANCELED).
const EXIT_CANCELED: i32 = 125;

fn main() {
    let args = cli::normalize_args(std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => std::process::exit(usage_error(e)),
    };
    std::process::exit(run_cli(cli));
}

/// Prints help/version requests normally and usage errors on one line; returns the exit code.
fn usage_error(e: clap::Error) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Like the original, a command group without subcommand shows its help.
            let _ = out(&e.render().to_string());
            0
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("error: invalid arguments");
            eprintln!("{} (see 'ipfs-cluster-ctl --help')", first.trim_end());
            EXIT_ERROR
        }
    }
}

fn run_cli(mut cli: Cli) -> i32 {
    if cli.version {
        return exit_on_output(out(&format!("ipfs-cluster-ctl version {VERSION}\n")));
    }
    let command = match cli.command.take() {
        None => return exit_on_output(out(&cli::help_for(&[]).unwrap_or_default())),
        Some(Cmd::Commands) => return exit_on_output(out(&cli::command_tree())),
        Some(Cmd::Help { command }) => {
            return match cli::help_for(&command) {
                Some(h) => exit_on_output(out(&h)),
                None => {
                    eprintln!("error: no help topic for '{}'", command.join(" "));
                    EXIT_ERROR
                }
            };
        }
        Some(c) => c,
    };
    let enc = if cli.encoding == "json" { Encoding::Json } else { Encoding::Text };
    let config = match client_config(&cli) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            return EXIT_ERROR;
        }
    };
    let client = match Client::new(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: creating API client: {e}");
            return EXIT_ERROR;
        }
    };
    if cli.debug {
        eprintln!("DEBUG cluster-ctl: API endpoints: {}", client.endpoints().join(", "));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    let ctx = Ctx { client, enc };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run::execute(command, &ctx) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match result {
        Some(Ok(())) => 0,
        Some(Err(e)) => report(&e, enc),
        None => {
            eprintln!("error: canceled");
            EXIT_CANCELED
        }
    }
}

/// The client configuration from the global flags.
fn client_config(cli: &Cli) -> Result<ClientConfig, String> {
    if !cli.secret.is_empty() && !is_hex(&cli.secret) {
        return Err(format!("parsing secret: '{}' is not a hex-encoded key", cli.secret));
    }
    let basic_auth = cli.basic_auth.as_deref().filter(|s| !s.is_empty()).map(|creds| match creds.split_once(':') {
        Some((user, pass)) => (user.to_string(), pass.to_string()),
        None => (creds.to_string(), String::new()),
    });
    let has_user = basic_auth.as_ref().is_some_and(|(u, _)| !u.is_empty());
    // As in the original, credentials switch to HTTPS unless plain HTTP is forced.
    let https = cli.https || (has_user && !cli.force_http);
    Ok(ClientConfig {
        host: cli.host.clone(),
        https,
        timeout: (cli.timeout > 0).then(|| Duration::from_secs(cli.timeout)),
        basic_auth,
        no_check_certificate: cli.no_check_certificate,
    })
}

fn is_hex(s: &str) -> bool {
    s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn exit_on_output(r: anyhow::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_ERROR
        }
    }
}

/// Prints a failed command's error and picks the exit code. With `--enc json`, API error
/// objects are also printed on stdout, as the original does.
fn report(err: &anyhow::Error, enc: Encoding) -> i32 {
    let client_error = err.chain().find_map(|e| e.downcast_ref::<ClientError>());
    if let (Some(ClientError::Api(api)), Encoding::Json) = (client_error, enc) {
        let _ = out(&format::json(api));
    }
    eprintln!("error: {}", format!("{err:#}").replace('\n', " "));
    match client_error {
        Some(ClientError::Api(_)) => EXIT_API_ERROR,
        Some(ClientError::Timeout(_)) => EXIT_TIMEOUT,
        _ => EXIT_ERROR,
    }
}
