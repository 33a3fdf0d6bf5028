//! The command line: global flags, the command tree and the Go-style argument spellings.

use std::collections::HashSet;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// The version this tool reports; it matches the cluster release it speaks to.
pub const VERSION: &str = "1.1.6";

const DESCRIPTION: &str = "\
ipfs-cluster-ctl is a tool to manage IPFS Cluster nodes.

Use \"ipfs-cluster-ctl help\" to list all available commands and
\"ipfs-cluster-ctl help <command>\" to get usage information for a
specific one.

ipfs-cluster-ctl uses the IPFS Cluster API to perform requests and
display responses in a user-readable format. The location of the IPFS
Cluster server is assumed to be /ip4/127.0.0.1/tcp/9094, but can be
configured with the --host option. If several multiaddresses are given
(comma-separated), requests go to the first one and fail over to the
others when it cannot be reached.

Exit codes: 0 success, 1 bad arguments or transport error, 2 the cluster
answered with an error, 62 a time limit was exceeded, 125 canceled.";

/// `ipfs-cluster-ctl`: global flags and the command to run.
#[derive(Debug, Parser)]
#[command(
    name = "ipfs-cluster-ctl",
    about = "CLI for IPFS Cluster",
    long_about = DESCRIPTION,
    disable_version_flag = true,
    disable_help_subcommand = true,
    subcommand_value_name = "COMMAND",
)]
pub struct Cli {
    /// API endpoint multiaddresses (comma-separated)
    #[arg(short = 'l', long, value_name = "MULTIADDR", default_value = cluster_client::DEFAULT_HOST)]
    pub host: String,

    /// Cluster secret (32 byte pnet-key, hex) as needed. Only when using the libp2p endpoint
    #[arg(long, value_name = "HEX", default_value = "", hide_default_value = true)]
    pub secret: String,

    /// Use https to connect to the API
    #[arg(short = 's', long)]
    pub https: bool,

    /// Do not verify server TLS certificate. Only valid with --https flag
    #[arg(long)]
    pub no_check_certificate: bool,

    /// Output format encoding
    #[arg(long = "encoding", visible_alias = "enc", value_name = "ENC", default_value = "text",
          value_parser = ["text", "json"])]
    pub encoding: String,

    /// Number of seconds to wait before timing out a request (0: no limit)
    #[arg(short = 't', long, value_name = "SECONDS", default_value_t = 0)]
    pub timeout: u64,

    /// Set debug log level
    #[arg(short = 'd', long)]
    pub debug: bool,

    /// <username>[:<password>] BasicAuth credentials for a server that requires authorization.
    /// Implies --https, which you can disable with --force-http
    #[arg(verbatim_doc_comment, long, value_name = "USER[:PASS]", env = "CLUSTER_CREDENTIALS", hide_env_values = true)]
    pub basic_auth: Option<String>,

    /// Force HTTP. Only valid when using BasicAuth
    #[arg(short = 'f', long)]
    pub force_http: bool,

    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,

    /// The command to run
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Retrieve peer information
    #[command(long_about = "Retrieve peer information.\n\n\
        Displays information about the peer that the tool is contacting\n\
        (usually running on localhost).")]
    Id,

    /// List and manage IPFS Cluster peers
    #[command(subcommand, arg_required_else_help = true)]
    Peers(PeersCmd),

    /// Add a file or directory to ipfs and pin it in the cluster
    #[command(long_about = ADD_ABOUT, arg_required_else_help = true)]
    Add(AddArgs),

    /// Pin and unpin and list items in IPFS Cluster
    #[command(subcommand, arg_required_else_help = true)]
    Pin(PinCmd),

    /// Retrieve the status of tracked items
    #[command(long_about = STATUS_ABOUT)]
    Status(StatusArgs),

    /// Recover tracked items in error state
    #[command(long_about = "Recover tracked items in error state.\n\n\
        Asks cluster peers to retry the IPFS pin or unpin operations of items in\n\
        an error state, and prints the status of the item when done. Without a\n\
        CID every item is recovered, which can take a long time. With --local,\n\
        only the contacted peer recovers.")]
    Recover(RecoverArgs),

    /// Retrieve cluster version
    #[command(long_about = "Retrieve cluster version.\n\n\
        Prints the IPFS Cluster version of the contacted peer, which can be\n\
        compared with the CLI version (shown by -v).")]
    Version,

    /// Cluster monitoring information
    #[command(subcommand, arg_required_else_help = true)]
    Health(HealthCmd),

    /// Manage IPFS daemon
    #[command(subcommand, arg_required_else_help = true)]
    Ipfs(IpfsCmd),

    /// List all commands
    #[command(hide = true)]
    Commands,

    /// Shows a list of commands or help for one command
    #[command(visible_alias = "h")]
    Help {
        /// The command to show help for
        command: Vec<String>,
    },
}

const ADD_ABOUT: &str = "\
Add a file or directory to ipfs and pin it in the cluster.

Imports the given paths into IPFS through the cluster (the cluster peer
chunks them and sends the blocks to the IPFS daemons of the allocated
peers while they upload) and pins the result. Output is like \"ipfs add\":
one line per file and directory, the root last. Several paths are wrapped
in a directory. Use -r for directories.

--format car imports one CAR file as it is instead (its root is pinned).
--shard splits the DAG into shards of --shard-size bytes, each pinned on
different peers; \"pin rm\" of the root removes every shard.

While uploading, a progress bar (bytes, rate, time left) is shown on stderr
when stdout is a terminal.";

const STATUS_ABOUT: &str = "\
Retrieve the status of tracked items.

Retrieves the status of the CIDs tracked by IPFS Cluster, including which
member is pinning them and any errors. If one or several CIDs are given,
only their status is fetched.

With --local, only the contacted cluster peer is asked; by default every
peer is. With --filter, only items where at least one peer is in one of
the given statuses (a comma separated list) are listed. Valid statuses:
  - cluster_error
  - error
  - pin_error
  - pin_queued
  - pinned
  - pinning
  - queued
  - remote
  - sharded
  - unexpectedly_unpinned
  - unpin_error
  - unpin_queued
  - unpinned
  - unpinning";

/// `peers` subcommands.
#[derive(Debug, Subcommand)]
pub enum PeersCmd {
    /// List the nodes participating in the IPFS Cluster
    Ls,
    /// Remove a peer from the Cluster
    #[command(long_about = "Remove a peer from the Cluster.\n\n\
        If the peer is online, it shuts down. All other cluster peers should be\n\
        online for the operation to succeed, otherwise some may keep an outdated\n\
        list of cluster peers.")]
    Rm {
        /// The peer to remove
        #[arg(value_name = "PEER ID")]
        peer: String,
    },
}

/// `pin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PinCmd {
    /// Pin an item in the cluster
    #[command(long_about = "Pin an item in the cluster.\n\n\
        Tells IPFS Cluster to start managing a CID or IPFS path. Depending on the\n\
        allocation, IPFS pin requests follow on some or all peers. Once the request\n\
        succeeds the status of the item is printed.\n\n\
        Replication factors: -1 means \"pin everywhere\" and 0 the cluster default;\n\
        positive values say how many peers should pin the content. --allocations\n\
        lists peer IDs to prefer when allocating (factors are still respected).")]
    Add(PinAddArgs),
    /// Unpin an item from the cluster
    #[command(long_about = "Unpin an item from the cluster.\n\n\
        Tells IPFS Cluster to stop managing a CID or IPFS path, which triggers\n\
        unpinning on the IPFS nodes holding it, then prints its status.")]
    Rm(PinRmArgs),
    /// Pin a new item based on an existing one
    #[command(long_about = "Pin a new item based on an existing one.\n\n\
        Adds a new pin taking every option (name included) and the allocations of\n\
        an existing one; peers use IPFS \"pin update\", which is efficient when both\n\
        DAGs are similar. The existing pin is not removed: use \"pin rm\" for that.")]
    Update(PinUpdateArgs),
    /// List items in the cluster pinset
    #[command(long_about = "List items in the cluster pinset.\n\n\
        Lists the pins of the shared state and their allocations (use \"status\"\n\
        for their IPFS status). --filter applies when listing all pins:\n\
          - all (default)\n\
          - pin (normal pins, recursive or direct)\n\
          - meta-pin (sharded pins)\n\
          - clusterdag-pin (sharding-dag root pins)\n\
          - shard-pin (individual shard pins)")]
    Ls(PinLsArgs),
}

/// Flags shared by the commands that wait for a status after pinning or unpinning.
#[derive(Debug, Args, Clone)]
pub struct WaitArgs {
    /// Prevents fetching pin status afterwards (faster, quieter)
    #[arg(long = "no-status", visible_alias = "ns")]
    pub no_status: bool,
    /// Wait for the item to reach the target status on enough peers before returning
    #[arg(short = 'w', long)]
    pub wait: bool,
    /// How many peers must reach the status with --wait
    /// (default: the minimum replication factor for pins, all peers for unpins)
    #[arg(verbatim_doc_comment, long = "wait-limit", visible_alias = "wl", value_name = "N", default_value_t = 0)]
    pub wait_limit: usize,
    /// How long to --wait (e.g. 30s, 2m). Default: forever
    #[arg(long = "wait-timeout", visible_alias = "wt", value_name = "DURATION")]
    pub wait_timeout: Option<String>,
}

/// `pin add` arguments.
#[derive(Debug, Args)]
pub struct PinAddArgs {
    /// The CID or IPFS path to pin
    #[arg(value_name = "CID|PATH")]
    pub target: String,
    /// Sets a custom replication factor (overrides --rmax and --rmin)
    #[arg(short = 'r', long, value_name = "N", default_value_t = 0, allow_negative_numbers = true)]
    pub replication: i32,
    /// Sets the minimum replication factor for this pin
    #[arg(long = "replication-min", visible_alias = "rmin", value_name = "N", default_value_t = 0,
          allow_negative_numbers = true)]
    pub replication_min: i32,
    /// Sets the maximum replication factor for this pin
    #[arg(long = "replication-max", visible_alias = "rmax", value_name = "N", default_value_t = 0,
          allow_negative_numbers = true)]
    pub replication_max: i32,
    /// Optional comma-separated list of peer IDs
    #[arg(long, visible_alias = "allocs", value_name = "PEERS")]
    pub allocations: Option<String>,
    /// Sets a name for this pin
    #[arg(short = 'n', long, default_value = "", hide_default_value = true)]
    pub name: String,
    /// Select a way to pin: recursive or direct
    #[arg(long, default_value = "recursive", value_parser = ["recursive", "direct"])]
    pub mode: String,
    /// Duration after which the pin should be unpinned automatically (e.g. 24h)
    #[arg(long = "expire-in", value_name = "DURATION")]
    pub expire_in: Option<String>,
    /// Pin metadata: key=value. Can be added multiple times
    #[arg(long, value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `add` arguments.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Files or directories to add
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<std::path::PathBuf>,
    /// Add directory paths recursively
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Write only hashes to output (one per line)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write only the final hash to output
    #[arg(short = 'Q', long)]
    pub quieter: bool,
    /// Buffer output: the cluster answers once everything is added (a JSON array with --enc json)
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Add to the local peer's IPFS only and make it one of the allocations
    #[arg(long)]
    pub local: bool,
    /// Sets a name for this pin
    #[arg(short = 'n', long, default_value = "", hide_default_value = true)]
    pub name: String,
    /// Sets the minimum replication factor for pinning this file
    #[arg(long = "replication-min", visible_alias = "rmin", value_name = "N", default_value_t = 0,
          allow_negative_numbers = true)]
    pub replication_min: i32,
    /// Sets the maximum replication factor for pinning this file
    #[arg(long = "replication-max", visible_alias = "rmax", value_name = "N", default_value_t = 0,
          allow_negative_numbers = true)]
    pub replication_max: i32,
    /// Duration after which the pin should be unpinned automatically (e.g. 24h)
    #[arg(long = "expire-in", value_name = "DURATION")]
    pub expire_in: Option<String>,
    /// Pin metadata: key=value. Can be added multiple times
    #[arg(long, value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// Optional comma-separated list of peer IDs
    #[arg(long, visible_alias = "allocs", value_name = "PEERS")]
    pub allocations: Option<String>,
    /// Do not pin after adding
    #[arg(long = "no-pin")]
    pub no_pin: bool,
    /// Wait for all nodes to report a status of pinned before returning
    #[arg(long)]
    pub wait: bool,
    /// How long to --wait (e.g. 30s, 2m). Default: forever
    #[arg(long = "wait-timeout", visible_alias = "wt", value_name = "DURATION")]
    pub wait_timeout: Option<String>,
    /// Wrap a with a directory object
    #[arg(short = 'w', long = "wrap-with-directory")]
    pub wrap_with_directory: bool,
    /// unixfs (import files) or car (import one CAR file as it is)
    #[arg(long, default_value = "unixfs", value_parser = ["unixfs", "car"])]
    pub format: String,
    /// Dag layout to use for dag generation: balanced or trickle
    #[arg(long, default_value = "balanced", value_parser = ["balanced", "trickle"])]
    pub layout: String,
    /// Include files that are hidden. Only takes effect on recursive add
    #[arg(short = 'H', long)]
    pub hidden: bool,
    /// Chunking algorithm: size-[bytes], rabin-[min]-[avg]-[max] or buzhash
    #[arg(short = 's', long, default_value = "size-262144")]
    pub chunker: String,
    /// Use raw blocks for leaves (experimental)
    #[arg(long = "raw-leaves")]
    pub raw_leaves: bool,
    /// CID version. Non default implies raw-leaves
    #[arg(long = "cid-version", value_name = "N", default_value_t = 0)]
    pub cid_version: u32,
    /// Hash function to use. Implies cid-version=1 if not sha2-256
    #[arg(long, default_value = "sha2-256")]
    pub hash: String,
    /// Add the URL using filestore. Implies raw-leaves (not supported by this cluster)
    #[arg(long)]
    pub nocopy: bool,
    /// Split the DAG into shards pinned on different peers
    #[arg(long)]
    pub shard: bool,
    /// Bytes per shard with --shard (e.g. 104857600, 100MiB)
    #[arg(long = "shard-size", value_name = "SIZE", default_value = "100MiB")]
    pub shard_size: String,
}

/// `pin rm` arguments.
#[derive(Debug, Args)]
pub struct PinRmArgs {
    /// The CID or IPFS path to unpin
    #[arg(value_name = "CID|PATH")]
    pub target: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `pin update` arguments.
#[derive(Debug, Args)]
pub struct PinUpdateArgs {
    /// The pin whose options and allocations are reused
    #[arg(value_name = "EXISTING-CID")]
    pub from: String,
    /// The CID or IPFS path to pin
    #[arg(value_name = "NEW-CID|PATH")]
    pub to: String,
    /// Sets a name for this updated pin
    #[arg(short = 'n', long, default_value = "", hide_default_value = true)]
    pub name: String,
    /// Duration after which the pin should be unpinned automatically after updating
    #[arg(long = "expire-in", value_name = "DURATION")]
    pub expire_in: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `pin ls` arguments.
#[derive(Debug, Args)]
pub struct PinLsArgs {
    /// Show only this pin
    #[arg(value_name = "CID")]
    pub cid: Option<String>,
    /// Comma separated list of pin types. See help above
    #[arg(long, default_value = "all")]
    pub filter: String,
}

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The CIDs to show (all when none)
    #[arg(value_name = "CID")]
    pub cids: Vec<String>,
    /// Run operation only on the contacted peer
    #[arg(long)]
    pub local: bool,
    /// Comma-separated list of filters
    #[arg(long, default_value = "", hide_default_value = true)]
    pub filter: String,
}

/// `recover` arguments.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The CID to recover (all items in error when none)
    #[arg(value_name = "CID")]
    pub cid: Option<String>,
    /// Run operation only on the contacted peer
    #[arg(long)]
    pub local: bool,
}

/// `health` subcommands.
#[derive(Debug, Subcommand)]
pub enum HealthCmd {
    /// List latest metrics logged by this peer
    #[command(long_about = "List latest metrics logged by this peer.\n\n\
        Displays the latest valid metrics of the given type logged by this peer\n\
        for all current cluster peers. Without argument, lists the metric names.\n\
        Usual metrics are freespace and ping (they depend on the informers).")]
    Metrics {
        /// The metric to show
        #[arg(value_name = "METRIC NAME")]
        name: Option<String>,
    },
    /// List the latest expired metric alerts
    #[command(long_about = "List the latest expired metric alerts.\n\n\
        An alert is triggered when a peer's metric expires without a new one\n\
        arriving. Ping alerts may trigger repinning if configured.")]
    Alerts,
    /// Create a graph displaying connectivity of cluster peers
    #[command(long_about = "Create a graph displaying connectivity of cluster peers.\n\n\
        Writes a Graphviz DOT document of the connections between cluster peers\n\
        (C0, C1, ...) and their IPFS daemons (I0, I1, ...; Cn -> In links a peer to\n\
        its own daemon) to stdout or to a file. Render it with, for example,\n\
        \"dot -Tpng graph.dot -o graph.png\".")]
    Graph {
        /// Write the graph to this file instead of stdout
        #[arg(short = 'f', long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
        /// Also show IPFS peers that belong to no cluster peer
        #[arg(long)]
        all_ipfs_peers: bool,
    },
}

/// `ipfs` subcommands.
#[derive(Debug, Subcommand)]
pub enum IpfsCmd {
    /// Run garbage collection on IPFS repos of cluster peers
    #[command(long_about = "Run garbage collection on IPFS repos of cluster peers.\n\n\
        Asks every cluster peer (only the contacted one with --local) to run\n\
        \"repo gc\" on its IPFS daemon.")]
    Gc {
        /// Run operation only on the contacted peer
        #[arg(long)]
        local: bool,
    },
}

/// Rewrites Go-style single-dash long flags (`-rmin 2`, `-enc=json`) into the double-dash
/// form clap expects. Only names that are long flags or aliases somewhere in the tree are
/// touched, and nothing after a `--` separator.
pub fn normalize_args(args: Vec<String>) -> Vec<String> {
    let longs = long_flag_names();
    let mut out = Vec::with_capacity(args.len());
    let mut rest = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || rest {
            out.push(a);
            continue;
        }
        if a == "--" {
            rest = true;
            out.push(a);
            continue;
        }
        let is_single_dash = a.starts_with('-') && !a.starts_with("--") && a.len() > 2;
        let name = if is_single_dash { a[1..].split('=').next().unwrap_or("") } else { "" };
        if name.len() > 1 && longs.contains(name) {
            out.push(format!("-{a}"));
        } else {
            out.push(a);
        }
    }
    out
}

fn long_flag_names() -> HashSet<String> {
    fn walk(cmd: &clap::Command, set: &mut HashSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(l) = arg.get_long() {
                set.insert(l.to_string());
            }
            for a in arg.get_all_aliases().unwrap_or_default() {
                set.insert(a.to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, set);
        }
    }
    let mut set = HashSet::new();
    walk(&Cli::command(), &mut set);
    set.insert("help".into());
    set.insert("version".into());
    set
}

/// The command tree, one `ipfs-cluster-ctl <path>` line per command (hidden ones included),
/// parents before children, as the original's hidden `commands` prints it.
pub fn command_tree() -> String {
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut String) {
        for sub in cmd.get_subcommands() {
            let path = format!("{prefix} {}", sub.get_name());
            out.push_str(&path);
            out.push('\n');
            walk(sub, &path, out);
        }
    }
    let mut out = String::new();
    walk(&Cli::command(), "ipfs-cluster-ctl", &mut out);
    out
}

/// The long help of the command at `path` (the whole tool when empty), or `None` for an
/// unknown command.
pub fn help_for(path: &[String]) -> Option<String> {
    let mut root = Cli::command();
    root.build();
    let mut cmd = &mut root;
    for name in path {
        cmd = cmd.find_subcommand_mut(name)?;
    }
    Some(cmd.render_long_help().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn go_style_flags() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalize_args(args(&["ctl", "-enc=json", "pin", "add", "-rmin", "-1", "-r", "2", "-wt", "2s", "x"])),
            args(&["ctl", "--enc=json", "pin", "add", "--rmin", "-1", "-r", "2", "--wt", "2s", "x"])
        );
        assert_eq!(normalize_args(args(&["ctl", "--", "-rmin"])), args(&["ctl", "--", "-rmin"]));
    }

    #[test]
    fn tree_lists_everything() {
        let t = command_tree();
        for line in ["ipfs-cluster-ctl id\n", "ipfs-cluster-ctl pin add\n", "ipfs-cluster-ctl commands\n", "ipfs-cluster-ctl help\n"] {
            assert!(t.contains(line), "{t}");
        }
        assert!(t.contains("ipfs-cluster-ctl health graph\n"), "{t}");
        assert!(!t.contains("bandwidth"), "absent until /health/bandwidth exists");
        assert!(t.contains("ipfs-cluster-ctl add\n"), "{t}");
    }
}
