//! ipfs-cluster-service: the IPFS Cluster peer daemon (init, daemon, state, version).

mod api_actor;
mod api_impl;
mod daemon;
mod http_apis;
mod state_cmd;
mod proxy_actor;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use cluster_config::{ConsensusKind, InitOptions};

/// IPFS Cluster peer daemon.
#[derive(Parser, Debug)]
#[command(name = "ipfs-cluster-service", version = cluster_types::VERSION, about = "IPFS Cluster peer daemon")]
struct Cli {
    /// Path to the configuration and data folder.
    #[arg(long, short = 'c', global = true, env = "IPFS_CLUSTER_PATH")]
    config: Option<PathBuf>,
    /// Forcefully proceed with some actions (e.g. overwriting configuration).
    #[arg(long, short = 'f', global = true)]
    force: bool,
    /// Enable full debug logging.
    #[arg(long, short = 'd', global = true)]
    debug: bool,
    /// Log level (e.g. `info`, `debug`, or `info,cluster:debug`).
    #[arg(long, short = 'l', global = true, env = "IPFS_CLUSTER_LOG_LEVEL", default_value = "info")]
    loglevel: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ConsensusArg {
    Crdt,
    Raft,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Creates a configuration and identity in the config folder.
    ///
    /// The peer runs an embedded IPFS node unless CLUSTER_IPFSHTTP_NODEMULTIADDRESS names a
    /// Kubo RPC API (e.g. /ip4/127.0.0.1/tcp/5001): then the ipfshttp connector and the IPFS
    /// proxy (api.ipfsproxy) are configured for it.
    Init {
        /// Consensus component to configure.
        #[arg(long, value_enum, default_value = "crdt")]
        consensus: ConsensusArg,
        /// Datastore backend (only fjall is available).
        #[arg(long, default_value = "fjall")]
        datastore: String,
        /// Comma-separated multiaddrs (with /p2p/) of peers to add to the peerstore and trust.
        #[arg(long, value_delimiter = ',')]
        peers: Vec<String>,
        /// Pick random free ports for every listener.
        #[arg(long)]
        randomports: bool,
        /// Prompt for a cluster secret instead of generating one (or read CLUSTER_SECRET).
        #[arg(long, short = 's')]
        custom_secret: bool,
    },
    /// Runs the peer.
    Daemon {
        /// Join a cluster through these peers (comma-separated `/…/p2p/<id>` multiaddresses).
        #[arg(long, short = 'j', value_delimiter = ',', hide = true)]
        bootstrap: Vec<String>,
        /// Adds `POST /health/actors/{name}/kill` to the REST API, for chaos testing.
        #[arg(long)]
        enable_chaos: bool,
        /// Kept for compatibility: metrics are configured in service.json.
        #[arg(long, hide = true)]
        stats: bool,
        /// Kept for compatibility: tracing is configured in service.json.
        #[arg(long, hide = true)]
        tracing: bool,
        /// Kept for compatibility (no-op).
        #[arg(long, short = 'u', hide = true)]
        upgrade: bool,
    },
    /// Exports, imports or removes the pinset of this (stopped) peer.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Prints the version.
    Version,
}

#[derive(Subcommand, Debug)]
enum StateCommand {
    /// Writes the pinset as one JSON pin per line.
    Export {
        /// Output file (default: stdout).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Replaces the pinset with the pins of a file written by `state export` (default: stdin).
    Import {
        /// Input file.
        file: Option<PathBuf>,
        /// Overrides the minimum replication factor of every pin.
        #[arg(long = "replication-min", alias = "rmin", allow_negative_numbers = true)]
        rmin: Option<i32>,
        /// Overrides the maximum replication factor of every pin.
        #[arg(long = "replication-max", alias = "rmax", allow_negative_numbers = true)]
        rmax: Option<i32>,
        /// Overrides the allocations of every pin (comma-separated peer ids).
        #[arg(long = "allocations", alias = "allocs", value_delimiter = ',')]
        allocations: Option<Vec<String>>,
    },
    /// Removes the pinset (raft: moves the data folder aside).
    Cleanup,
}

/// The env override of `ipfs_connector.ipfshttp.node_multiaddress`; at `init` it selects the
/// Kubo connector instead of the embedded node.
const IPFSHTTP_NODE_ENV: &str = "CLUSTER_IPFSHTTP_NODEMULTIADDRESS";

fn env_map() -> HashMap<String, String> {
    std::env::vars().collect()
}

fn init_logging(cli: &Cli) {
    // The original's facility syntax `name:level` maps onto tracing targets `name=level`.
    let spec = if cli.debug { "debug".to_string() } else { cli.loglevel.replace(':', "=") };
    let filter = tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// Keeps glibc's allocator from handing the buffers of an add back to the kernel between
/// blocks. Blocks (up to 1 MiB, and batches of them) are allocated on one thread and freed on
/// another; with glibc's defaults such sizes are mmapped or trimmed away on free, and every
/// new block then page-faults its memory back in, zeroed: about a quarter of the system time
/// of a large add. Allocations under 4 MiB come from the heap instead, and up to 64 MiB free
/// at its top stays.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists. A refused setting (return 0) leaves the default, which is only slower.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = env_map();
    let dir = cli.config.clone().unwrap_or_else(|| cluster_config::default_config_dir(&env));
    match &cli.command {
        Command::Version => {
            println!("{}", cluster_types::VERSION);
            ExitCode::SUCCESS
        }
        Command::Init { consensus, datastore, peers, randomports, custom_secret } => {
            if datastore != "fjall" {
                eprintln!("error: datastore '{datastore}' is not supported: this implementation stores state in fjall");
                return ExitCode::FAILURE;
            }
            let secret = if *custom_secret {
                match read_secret(&env) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                None
            };
            let opts = InitOptions {
                consensus: match consensus {
                    ConsensusArg::Crdt => ConsensusKind::Crdt,
                    ConsensusArg::Raft => ConsensusKind::Raft,
                },
                peers: peers.clone(),
                random_ports: *randomports,
                force: cli.force,
                secret,
                // As with the original (whose init applies env overrides before writing),
                // naming a Kubo node in the environment configures the ipfshttp connector.
                ipfs_node_multiaddress: env.get(IPFSHTTP_NODE_ENV).filter(|v| !v.trim().is_empty()).cloned(),
            };
            match cluster_config::init_folder(&dir, &opts) {
                Ok(_) => {
                    println!("configuration written to {}", dir.join("service.json").display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::State { command } => {
            let result = match command {
                StateCommand::Export { file } => state_cmd::export(&dir, &env, file.as_deref()).map(|n| eprintln!("exported {n} pins")),
                StateCommand::Import { file, rmin, rmax, allocations } => {
                    let overrides = state_cmd::ImportOverrides { rmin: *rmin, rmax: *rmax, allocations: allocations.clone() };
                    state_cmd::import(&dir, &env, file.as_deref(), cli.force, overrides).map(|n| eprintln!("imported {n} pins"))
                }
                StateCommand::Cleanup => state_cmd::cleanup(&dir, &env, cli.force).map(|()| eprintln!("state removed")),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Daemon { bootstrap, enable_chaos, .. } => {
            tune_allocator();
            init_logging(&cli);
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(daemon::run(dir, env, *enable_chaos, bootstrap.clone())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn read_secret(env: &HashMap<String, String>) -> anyhow::Result<String> {
    if let Some(s) = env.get("CLUSTER_SECRET") {
        return Ok(s.trim().to_string());
    }
    eprint!("enter cluster secret (32-byte hex string): ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim().to_string())
}
