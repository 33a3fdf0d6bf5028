//! Running a parsed command against the cluster and printing what comes back.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use cluster_client::{default_pin_limit, validate_peer_id, Client, ItemStream, PinPath, WaitParams};
use cluster_types::query::parse_metadata_args;
use cluster_types::{parse_cid, parse_go_duration, Cid, Pin, PinMode, PinOptions, Timestamp, TrackerStatus};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cli::{AddArgs, Cmd, HealthCmd, IpfsCmd, PeersCmd, PinAddArgs, PinCmd, PinUpdateArgs, WaitArgs};
use crate::format;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The original's human-readable lines.
    Text,
    /// Each object pretty-printed as JSON, streams one object after another.
    Json,
}

/// What every command needs: the API client and the output encoding.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// The output encoding.
    pub enc: Encoding,
}

/// Writes to stdout. A closed pipe (`ipfs-cluster-ctl status | head`) ends the process
/// quietly with the status a SIGPIPE death would give, as the Go tool does.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => Err(anyhow::Error::new(e).context("writing output")),
    }
}

impl Ctx {
    fn show<T: Serialize>(&self, obj: &T, text: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
        match self.enc {
            Encoding::Text => out(&text(obj)),
            Encoding::Json => out(&format::json(obj)),
        }
    }

    async fn show_stream<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        mut items: ItemStream<T>,
        text: impl Fn(&T) -> String,
    ) -> anyhow::Result<()> {
        while let Some(item) = items.next().await {
            let item = item?;
            self.show(&item, &text)?;
        }
        Ok(())
    }

    fn show_list<T: Serialize>(&self, items: &[T], text: impl Fn(&T) -> String) -> anyhow::Result<()> {
        match self.enc {
            Encoding::Text => out(&items.iter().map(text).collect::<String>()),
            Encoding::Json => out(&format::json(items)),
        }
    }
}

/// Runs one command. Errors carry a [`cluster_client::ClientError`] when they come from the
/// API (the caller maps it to an exit code); anything else is an argument error.
pub async fn execute(cmd: Cmd, ctx: &Ctx) -> anyhow::Result<()> {
    let client = &ctx.client;
    match cmd {
        Cmd::Id => ctx.show(&client.id().await?, format::id),
        Cmd::Peers(PeersCmd::Ls) => ctx.show_stream(client.peers().await?, format::id).await,
        Cmd::Peers(PeersCmd::Rm { peer }) => {
            validate_peer_id(&peer).context("parsing peer ID")?;
            client.peer_rm(&peer).await?;
            Ok(())
        }
        Cmd::Add(args) => add(ctx, args).await,
        Cmd::Pin(PinCmd::Add(args)) => pin_add(ctx, args).await,
        Cmd::Pin(PinCmd::Rm(args)) => {
            let wait = WaitSpec::parse(&args.wait)?;
            let path = PinPath::parse(&args.target)?;
            let pin = client.unpin(&path.to_string()).await?;
            after_pin(ctx, pin, TrackerStatus::Unpinned, &wait).await
        }
        Cmd::Pin(PinCmd::Update(args)) => pin_update(ctx, args).await,
        Cmd::Pin(PinCmd::Ls(args)) => match args.cid {
            Some(c) => {
                let cid = cid_arg(&c)?;
                ctx.show(&client.allocation(&cid).await?, format::pin)
            }
            None => ctx.show_stream(client.allocations(&args.filter).await?, format::pin).await,
        },
        Cmd::Status(args) => {
            let cids = args.cids.iter().map(|c| cid_arg(c)).collect::<anyhow::Result<Vec<Cid>>>()?;
            match cids.as_slice() {
                [one] => ctx.show(&client.status(one, args.local).await?, format::global_pin_info),
                [] => {
                    let items = client.status_all(&args.filter, args.local).await?;
                    ctx.show_stream(items, format::global_pin_info).await
                }
                many => ctx.show_stream(client.status_cids(many, args.local).await?, format::global_pin_info).await,
            }
        }
        Cmd::Recover(args) => match args.cid {
            Some(c) => {
                let cid = cid_arg(&c)?;
                ctx.show(&client.recover(&cid, args.local).await?, format::global_pin_info)
            }
            None => ctx.show_stream(client.recover_all(args.local).await?, format::global_pin_info).await,
        },
        Cmd::Version => ctx.show(&client.version().await?, format::version),
        Cmd::Health(HealthCmd::Metrics { name: None }) => {
            ctx.show_list(&client.metric_names().await?, |n| format!("{n}\n"))
        }
        Cmd::Health(HealthCmd::Metrics { name: Some(name) }) => {
            let now = Utc::now();
            ctx.show_list(&client.metrics(&name).await?, |m| format::metric(m, now))
        }
        Cmd::Health(HealthCmd::Alerts) => {
            let now = Utc::now();
            ctx.show_list(&client.alerts().await?, |a| format::alert(a, now))
        }
        Cmd::Health(HealthCmd::Graph { file, all_ipfs_peers }) => {
            let doc = crate::graph::dot(&client.connect_graph().await?, all_ipfs_peers);
            match file {
                Some(path) => std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display())),
                None => {
                    std::io::stdout().write_all(doc.as_bytes())?;
                    Ok(())
                }
            }
        }
        Cmd::Ipfs(IpfsCmd::Gc { local }) => ctx.show(&client.repo_gc(local).await?, format::repo_gc),
        // Answered without a client by the caller.
        Cmd::Commands | Cmd::Help { .. } => Ok(()),
    }
}

fn cid_arg(s: &str) -> anyhow::Result<Cid> {
    parse_cid(s).map_err(|e| anyhow::anyhow!(e.message)).context("parsing cid")
}

/// `--expire-in` as an absolute expiry.
fn expire_at(expire_in: Option<&str>) -> anyhow::Result<Timestamp> {
    let Some(text) = expire_in.filter(|s| !s.is_empty()) else {
        return Ok(Timestamp::zero());
    };
    let d = parse_go_duration(text).context("parsing expire-in")?;
    let d = chrono::Duration::from_std(d).context("parsing expire-in")?;
    let at = Utc::now().checked_add_signed(d).context("parsing expire-in: duration too large")?;
    Ok(Timestamp(Some(at)))
}

async fn pin_add(ctx: &Ctx, a: PinAddArgs) -> anyhow::Result<()> {
    let wait = WaitSpec::parse(&a.wait)?;
    let path = PinPath::parse(&a.target)?;
    let (rmin, rmax) = if a.replication != 0 { (a.replication, a.replication) } else { (a.replication_min, a.replication_max) };
    let mut user_allocations = Vec::new();
    if let Some(list) = a.allocations.as_deref().filter(|s| !s.is_empty()) {
        for p in list.split(',').map(str::trim) {
            validate_peer_id(p).context("decoding allocations")?;
            user_allocations.push(p.to_string());
        }
    }
    let mode: PinMode = a.mode.parse().map_err(|e: cluster_types::ApiError| anyhow::anyhow!(e.message))?;
    let options = PinOptions {
        replication_factor_min: rmin,
        replication_factor_max: rmax,
        name: a.name,
        mode,
        user_allocations,
        expire_at: expire_at(a.expire_in.as_deref())?,
        metadata: parse_metadata_args(&a.metadata).map_err(|e| anyhow::anyhow!(e.message)).context("parsing metadata")?,
        ..PinOptions::default()
    };
    let pin = ctx.client.pin(&path.to_string(), &options).await?;
    after_pin(ctx, pin, TrackerStatus::Pinned, &wait).await
}

/// Parses a byte size: a plain number of bytes or one with a unit (`100MiB`, `50MB`, `1GiB`).
fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().with_context(|| format!("invalid size '{text}'"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1 << 30,
        other => anyhow::bail!("invalid size '{text}': unknown unit '{other}'"),
    };
    n.checked_mul(mult).with_context(|| format!("size '{text}' is too large"))
}

async fn add(ctx: &Ctx, a: AddArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let mut user_allocations = Vec::new();
    if let Some(list) = a.allocations.as_deref().filter(|s| !s.is_empty()) {
        for p in list.split(',').map(str::trim) {
            validate_peer_id(p).context("decoding allocations")?;
            user_allocations.push(p.to_string());
        }
    }
    let wait_timeout = match a.wait_timeout.as_deref().filter(|s| !s.is_empty()) {
        Some(t) => Some(parse_go_duration(t).context("parsing wait-timeout")?),
        None => None,
    };
    let format = match a.format.as_str() {
        "car" => cluster_types::AddFormat::Car,
        _ => cluster_types::AddFormat::Unixfs,
    };
    let mut params = cluster_types::AddParams {
        pin: PinOptions {
            replication_factor_min: a.replication_min,
            replication_factor_max: a.replication_max,
            name: a.name,
            user_allocations,
            expire_at: expire_at(a.expire_in.as_deref())?,
            metadata: parse_metadata_args(&a.metadata).map_err(|e| anyhow::anyhow!(e.message)).context("parsing metadata")?,
            shard_size: if a.shard { parse_size(&a.shard_size).context("parsing shard-size")? } else { 0 },
            ..PinOptions::default()
        },
        local: a.local,
        recursive: a.recursive,
        hidden: a.hidden,
        // Several paths are always wrapped, as the original does.
        wrap_with_directory: a.wrap_with_directory || a.paths.len() > 1,
        shard: a.shard,
        stream_channels: !a.no_stream,
        format,
        no_pin: a.no_pin,
        layout: a.layout,
        chunker: a.chunker,
        raw_leaves: a.raw_leaves.then_some(true),
        progress: false,
        cid_version: (a.cid_version != 0).then_some(a.cid_version),
        hash: a.hash,
        nocopy: a.nocopy,
    };
    if params.shard && params.pin.name.is_empty() {
        // As the original's ctl: sharded adds get a name so their shard pins can be told apart.
        params.pin.name = format!("sharded-{:08x}", rand_suffix());
    }
    if format == cluster_types::AddFormat::Car && (a.paths.len() != 1 || a.paths[0].is_dir()) {
        anyhow::bail!("--format car takes exactly one CAR file");
    }
    let entries = cluster_client::collect_entries(&a.paths, a.recursive, a.hidden)?;
    let total: u64 = entries.iter().map(cluster_client::AddEntry::size).sum();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bar = std::io::stdout().is_terminal().then(|| crate::progress::Progress::start(sent.clone(), total));
    let result = async {
        let mut items = ctx.client.add(entries, &params, sent.clone()).await?;
        let mut last: Option<(cluster_types::AddedOutput, Cid)> = None;
        let mut all = Vec::new();
        while let Some(item) = items.next().await {
            let item = item?;
            // Progress lines (no CID) only come when asked for; this command draws its own bar.
            let Some(cid) = item.cid else { continue };
            if !a.quieter && ctx.enc == Encoding::Text {
                let line = if a.quiet { format!("{cid}\n") } else { format!("added {cid} {}\n", item.name) };
                out(&line)?;
            } else if ctx.enc == Encoding::Json && !a.quieter {
                if a.no_stream {
                    all.push(item.clone());
                } else {
                    out(&format::json(&item))?;
                }
            }
            last = Some((item, cid));
        }
        if ctx.enc == Encoding::Json && a.no_stream && !a.quieter {
            out(&format::json(&all))?;
        }
        anyhow::Ok(last)
    }
    .await;
    if let Some(bar) = bar {
        bar.finish().await;
    }
    let Some((last, root)) = result? else { anyhow::bail!("the cluster reported nothing added") };
    if a.quieter {
        match ctx.enc {
            Encoding::Text => out(&format!("{root}\n"))?,
            Encoding::Json => out(&format::json(&last))?,
        }
    }
    if a.wait && !a.no_pin {
        let pin = ctx.client.allocation(&root).await?;
        let params = WaitParams { limit: default_pin_limit(&pin), timeout: wait_timeout, ..WaitParams::new(root, TrackerStatus::Pinned) };
        let status = ctx.client.wait_for(&params).await.context("waiting for pin status")?;
        if !a.quiet && !a.quieter {
            ctx.show(&status, format::global_pin_info)?;
        }
    }
    Ok(())
}

fn rand_suffix() -> u32 {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    n ^ std::process::id().rotate_left(16)
}

async fn pin_update(ctx: &Ctx, a: PinUpdateArgs) -> anyhow::Result<()> {
    let wait = WaitSpec::parse(&a.wait)?;
    let from = parse_cid(&a.from).map_err(|e| anyhow::anyhow!(e.message)).context("parsing from Cid")?;
    let path = PinPath::parse(&a.to)?;
    let options = PinOptions {
        pin_update: Some(from),
        name: a.name,
        expire_at: expire_at(a.expire_in.as_deref())?,
        ..PinOptions::default()
    };
    let pin = ctx.client.pin(&path.to_string(), &options).await?;
    after_pin(ctx, pin, TrackerStatus::Pinned, &wait).await
}

/// The `--wait`-related flags, validated before the request is sent.
struct WaitSpec {
    no_status: bool,
    wait: bool,
    limit: usize,
    timeout: Option<Duration>,
}

impl WaitSpec {
    fn parse(w: &WaitArgs) -> anyhow::Result<Self> {
        let timeout = match w.wait_timeout.as_deref().filter(|s| !s.is_empty()) {
            Some(t) => Some(parse_go_duration(t).context("parsing wait-timeout")?),
            None => None,
        };
        Ok(WaitSpec { no_status: w.no_status, wait: w.wait, limit: w.wait_limit, timeout })
    }
}

/// After a pin, unpin or update: optionally wait for the target status, then print the
/// status (after a second, giving the peers time to start) or, with --no-status, the pin.
async fn after_pin(ctx: &Ctx, pin: Pin, target: TrackerStatus, w: &WaitSpec) -> anyhow::Result<()> {
    let mut status = None;
    if w.wait {
        let limit = match (w.limit, target) {
            (0, TrackerStatus::Pinned) => default_pin_limit(&pin),
            (0, _) => 0,
            (n, _) => n,
        };
        let params = WaitParams { limit, timeout: w.timeout, ..WaitParams::new(pin.cid, target) };
        status = Some(ctx.client.wait_for(&params).await.context("waiting for pin status")?);
    }
    if w.no_status {
        return ctx.show(&pin, format::pin);
    }
    let status = match status {
        Some(s) => s,
        None => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            ctx.client.status(&pin.cid, false).await?
        }
    };
    ctx.show(&status, format::global_pin_info)
}
