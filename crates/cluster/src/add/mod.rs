//! The add pipeline (§11): an upload's parts go through the UnixFS importer (or the CAR
//! reader) and its blocks stream to every allocated peer's IPFS while it is read; the root is
//! pinned at the end.
//!
//! Three stages joined by bounded channels, so memory stays at a few chunks whatever the
//! upload's size:
//! * the caller's task reads the body and parses it into [`PartEvent`]s;
//! * one blocking thread runs the importer (hashing is CPU work) and emits blocks and output
//!   entries in DAG order;
//! * the distributor allocates on the first block and sends batches of blocks to each
//!   destination (the local IPFS directly, other peers through the cluster RPC), each with
//!   its own bounded queue; a destination that fails is dropped, and the add fails only when
//!   every destination failed (the original's rule: success if at least one destination
//!   accepted all blocks).
//!
//! Dropping the output stream cancels everything: the stages notice their closed channels and
//! stop; blocks already stored stay unpinned and go with the next GC, as in the original.

pub mod car;
pub mod multipart;
pub mod shard;
mod sharding;

use std::sync::Arc;

use bytes::Bytes;
use cluster_ipfs::IpfsConnector;
use cluster_net::rpc::{MAX_BLOCK_PUT_BYTES, WireBlock};
use cluster_net::{PeerId, RpcRequest, RpcResponse};
use cluster_types::{AddFormat, AddParams, AddedOutput, ApiError, Cid, ErrorCode, Pin, PinOptions};
use cluster_unixfs::{AddOptions, AddedEntry, Block, BlockSink, Chunker, HashFunction, Importer, Layout, UnixfsError};
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::monitor::MonitorMsg;
pub use multipart::{MultipartError, MultipartParser, PartEvent, PartHeader, PartKind, boundary_of};

/// Part events waiting for the importer (at each of two hand-offs). File data comes in the
/// pieces the HTTP server read (up to a few hundred KiB each).
const EVENT_QUEUE: usize = 8;
/// Blocks waiting for the distributor.
const BLOCK_QUEUE: usize = 16;
/// Batches waiting per destination (each up to `MAX_BLOCK_PUT_BYTES`).
const DEST_QUEUE: usize = 2;
/// Batches being stored at once per destination.
const DEST_IN_FLIGHT: usize = 4;
/// Batches being stored at once in the local IPFS: storing is bound by the disk's sync
/// latency, which more batches in flight hide (16 MiB at most).
const LOCAL_IN_FLIGHT: usize = 16;
/// Most bytes of a symlink target.
const MAX_SYMLINK_TARGET: usize = 4096;

/// Checks the UnixFS options of `params` and turns them into the importer's.
pub fn unixfs_options(params: &AddParams) -> Result<AddOptions, ApiError> {
    let bad = |e: UnixfsError| ApiError::bad_request(e.to_string());
    if params.nocopy {
        return Err(ApiError::bad_request("nocopy (filestore) adds are not supported"));
    }
    let chunker: Chunker = params.chunker.parse().map_err(bad)?;
    let hash: HashFunction = params.hash.parse().map_err(bad)?;
    let layout: Layout = params.layout.parse().map_err(bad)?;
    let cid_version = params.cid_version.map(|v| if v == 0 { cid::Version::V0 } else { cid::Version::V1 });
    let options = AddOptions {
        chunker,
        layout,
        raw_leaves: params.raw_leaves,
        cid_version,
        hash,
        wrap_with_directory: params.wrap_with_directory,
        hidden: params.hidden,
    };
    // Surfaces rule conflicts (CIDv0 with another hash) before any byte is read.
    options.effective_raw_leaves().map_err(bad)?;
    Importer::new(&options).map_err(bad)?;
    Ok(options)
}

/// What the importer thread hands the distributor, in DAG order.
enum Item {
    Block(Block),
    Entry(AddedEntry),
    /// `progress=true`: bytes of the named file read so far.
    Progress(String, u64),
}

/// With `progress=true`, a file's progress is reported each time this many more bytes of it
/// were read, and once at its end (as the original does).
const PROGRESS_STEP: u64 = 256 << 10;

/// Sends the importer's blocks to the distributor, waiting when it is behind.
struct ChannelSink(mpsc::Sender<Item>);

impl BlockSink for ChannelSink {
    fn put_block(&mut self, block: Block) -> Result<(), UnixfsError> {
        self.0.blocking_send(Item::Block(block)).map_err(|_| UnixfsError::sink(Cancelled))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("add cancelled")]
struct Cancelled;

impl Cluster {
    /// `POST /add` with a multipart body: checks the parameters and the content type, then
    /// streams the upload through [`Cluster::add`].
    pub fn add_multipart<S>(&self, content_type: &str, body: S, params: AddParams) -> Result<BoxStream<'static, Result<AddedOutput, ApiError>>, ApiError>
    where
        S: Stream<Item = Result<Bytes, ApiError>> + Send + 'static,
    {
        let boundary = boundary_of(content_type).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let parts = parse_parts(boundary, body);
        self.add(parts, params)
    }

    /// Adds the entries of `parts` with `params` (§11): imports them, stores the blocks on the
    /// allocated peers and pins the root (unless `no_pin`). Bad parameters fail at once; every
    /// later problem ends the returned stream with an error. Output lines come as entries are
    /// complete, the root last.
    pub fn add<S>(&self, parts: S, params: AddParams) -> Result<BoxStream<'static, Result<AddedOutput, ApiError>>, ApiError>
    where
        S: Stream<Item = Result<PartEvent, ApiError>> + Send + 'static,
    {
        let options = unixfs_options(&params)?;
        let mut check = Pin::with_options(placeholder_cid(), params.pin.clone());
        self.fill_defaults(&mut check);
        check.validate()?;
        if params.shard && params.no_pin {
            return Err(ApiError::bad_request("a sharded add pins its shards as it goes: shard and no-pin cannot be combined"));
        }
        let (out_tx, out_rx) = mpsc::channel(64);
        let cluster = self.clone();
        tokio::spawn(async move {
            let err_tx = out_tx.clone();
            let committed = sharding::Committed::default();
            if let Err(e) = cluster.run_add(Box::pin(parts), params, options, out_tx, &committed).await {
                committed.roll_back(&cluster).await;
                tracing::info!(error = %e, "add failed");
                let _ = err_tx.send(Err(e)).await;
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(out_rx).boxed())
    }

    async fn run_add(
        &self,
        mut parts: BoxStream<'static, Result<PartEvent, ApiError>>,
        params: AddParams,
        options: AddOptions,
        out: mpsc::Sender<Result<AddedOutput, ApiError>>,
        committed: &sharding::Committed,
    ) -> Result<(), ApiError> {
        let started = std::time::Instant::now();
        let (ev_tx, ev_rx) = mpsc::channel::<PartEvent>(EVENT_QUEUE);
        let (item_tx, item_rx) = mpsc::channel::<Item>(BLOCK_QUEUE);
        let importer: JoinHandle<Result<Option<car::CarRoot>, ApiError>> = if params.format == AddFormat::Car {
            let wrap = params.wrap_with_directory;
            tokio::task::spawn_blocking(move || car::import_car(ev_rx, item_tx, wrap).map(Some))
        } else {
            let progress = params.progress;
            tokio::task::spawn_blocking(move || import(options, progress, ev_rx, item_tx).map(|_| None))
        };
        let distributor = {
            let (cluster, params, out, committed) = (self.clone(), params.clone(), out.clone(), committed.clone());
            tokio::spawn(async move { cluster.distribute(item_rx, &params, &out, committed).await })
        };
        // Feed the importer until the body ends, the importer stops, or the client leaves.
        let feed = async {
            while let Some(ev) = parts.next().await {
                let ev = ev?;
                if ev_tx.send(ev).await.is_err() {
                    break; // the importer stopped; its own result says why
                }
            }
            Ok::<(), ApiError>(())
        };
        let fed = tokio::select! {
            r = feed => r,
            () = out.closed() => Err(ApiError::new(ErrorCode::Internal, "client went away")),
        };
        drop(ev_tx);
        drop(parts);
        if let Err(e) = fed {
            // Stop the other stages before reporting.
            distributor.abort();
            let _ = importer.await;
            let _ = distributor.await;
            return Err(e);
        }
        let imported = importer.await.map_err(|e| ApiError::internal(format!("importer task failed: {e}")))?;
        let outcome = distributor.await.map_err(|e| ApiError::internal(format!("distributor task failed: {e}")))?;
        let car_root = imported?;
        let done = outcome?;
        let root = car_root.as_ref().map(|r| r.cid).or(done.last_entry).ok_or_else(|| ApiError::bad_request("nothing was added"))?;
        if let Some(root_out) = done.car_output(car_root) {
            let _ = out.send(Ok(root_out)).await;
        }
        if params.no_pin {
            tracing::info!(%root, elapsed = ?started.elapsed(), "added without pinning");
            return Ok(());
        }
        if params.shard {
            self.pin_sharded(root, &params.pin, &done.shards, committed).await?;
            tracing::info!(%root, shards = done.shards.len(), bytes = done.bytes, elapsed = ?started.elapsed(), "added sharded");
            return Ok(());
        }
        let pin = self.pin_allocated(root, params.pin.clone(), done.allocations).await?;
        tracing::info!(root = %pin.cid, allocations = ?pin.allocations, bytes = done.bytes, elapsed = ?started.elapsed(), "added and pinned");
        Ok(())
    }

    /// Fills the cluster's default replication factors into `pin`.
    fn fill_defaults(&self, pin: &mut Pin) {
        let s = &self.inner.settings;
        if pin.options.replication_factor_min == 0 {
            pin.options.replication_factor_min = s.replication_factor_min;
        }
        if pin.options.replication_factor_max == 0 {
            pin.options.replication_factor_max = s.replication_factor_max;
        }
    }

    /// Chooses the peers whose IPFS receives the blocks (`Cluster.BlockAllocate`): the usual
    /// allocation; for pin-everywhere, every peer with a valid ping; with `local`, this peer
    /// always among them.
    /// Peers in `avoid` are not chosen (the other shards of a sharded add).
    pub(crate) async fn block_allocate(
        &self,
        opts: &PinOptions,
        local: bool,
        avoid: &[String],
    ) -> Result<(Vec<String>, Vec<String>), ApiError> {
        let mut pin = Pin::with_options(placeholder_cid(), opts.clone());
        self.fill_defaults(&mut pin);
        let me = self.inner.settings.peer_id.clone();
        let mut allocations = self.allocate_excluding(&pin, &[], avoid).await?;
        if local && !allocations.is_empty() && !allocations.contains(&me) {
            let last = allocations.len() - 1;
            allocations[last] = me.clone();
        }
        let destinations = if local {
            vec![me]
        } else if allocations.is_empty() {
            self.peers_with_valid_ping().await?
        } else {
            allocations.clone()
        };
        Ok((allocations, destinations))
    }

    async fn peers_with_valid_ping(&self) -> Result<Vec<String>, ApiError> {
        let latest = self
            .inner
            .monitor
            .ask_timeout(|reply| MonitorMsg::Latest { name: "ping".into(), reply }, std::time::Duration::from_secs(30))
            .await
            .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the monitor is not available, try again"))?;
        let mut peers: Vec<String> = latest.into_iter().filter(|m| m.valid).map(|m| m.peer).collect();
        let me = &self.inner.settings.peer_id;
        if !peers.contains(me) {
            peers.push(me.clone());
        }
        Ok(peers)
    }

    /// Pins `cid` with allocations chosen earlier (the add's): validated and committed like
    /// any pin, allocated afresh only when none were given and the pin is not everywhere.
    pub(crate) async fn pin_allocated(&self, cid: Cid, opts: PinOptions, allocations: Vec<String>) -> Result<Pin, ApiError> {
        let mut pin = Pin::with_options(cid, opts);
        self.fill_defaults(&mut pin);
        pin.max_depth = pin.options.mode.max_depth();
        pin.validate()?;
        pin.timestamp = cluster_types::Timestamp::now();
        pin.allocations = if allocations.is_empty() && !pin.is_pin_everywhere() {
            self.allocate(&pin, &[]).await?
        } else {
            allocations
        };
        self.commit_pin(pin).await
    }

    /// The distributor: receives blocks and entries in DAG order, sends blocks to the
    /// destinations (one set, or one per shard), forwards entries as output lines.
    async fn distribute(
        &self,
        mut items: mpsc::Receiver<Item>,
        params: &AddParams,
        out: &mpsc::Sender<Result<AddedOutput, ApiError>>,
        committed: sharding::Committed,
    ) -> Result<Distributed, ApiError> {
        let mut done = Distributed::default();
        let mut sender: Option<Fanout> = None;
        let mut sharder = params.shard.then(|| sharding::Sharder::new(self, &params.pin, params.local, committed));
        // The latest entry waits for the next one (or the end), so the root's line comes last,
        // after the line of the shard that closes with the end of the blocks.
        let mut held: Option<AddedOutput> = None;
        let send = |line: AddedOutput| async move {
            out.send(Ok(line)).await.map_err(|_| ApiError::new(ErrorCode::Internal, "client went away"))
        };
        while let Some(item) = items.recv().await {
            match item {
                Item::Block(block) => {
                    done.bytes += block.data.len() as u64;
                    if let Some(sharder) = sharder.as_mut() {
                        if let Some(line) = sharder.push(block).await? {
                            send(line).await?;
                        }
                        continue;
                    }
                    if sender.is_none() {
                        let (allocations, destinations) = self.block_allocate(&params.pin, params.local, &[]).await?;
                        tracing::debug!(?allocations, ?destinations, "add allocated");
                        done.allocations = allocations;
                        sender = Some(Fanout::open(self, destinations));
                    }
                    if let Some(s) = sender.as_mut() {
                        s.push(block).await?;
                    }
                }
                Item::Progress(name, bytes) => {
                    // Not the root (a file is still being read): the held line can go first.
                    if let Some(previous) = held.take() {
                        send(previous).await?;
                    }
                    send(AddedOutput { name, cid: None, bytes, size: 0, allocations: Vec::new() }).await?;
                }
                Item::Entry(entry) => {
                    done.last_entry = Some(entry.cid);
                    done.entries += 1;
                    let line = AddedOutput {
                        name: entry.name,
                        cid: Some(entry.cid),
                        bytes: entry.bytes,
                        size: entry.size,
                        allocations: done.allocations.clone(),
                    };
                    if let Some(previous) = held.replace(line) {
                        send(previous).await?;
                    }
                }
            }
        }
        if let Some(s) = sender {
            s.finish().await?;
        }
        if let Some(sharder) = sharder {
            let (shards, last) = sharder.finish().await?;
            done.shards = shards;
            if let Some(line) = last {
                send(line).await?;
            }
        }
        if let Some(line) = held {
            send(line).await?;
        }
        Ok(done)
    }
}

/// What the distributor learned.
#[derive(Default)]
struct Distributed {
    allocations: Vec<String>,
    last_entry: Option<Cid>,
    entries: u64,
    bytes: u64,
    /// Roots of the shards of a sharded add, in order.
    shards: Vec<Cid>,
}

impl Distributed {
    /// A CAR import reports its root once, under the CAR's file name, with the block bytes
    /// stored and the root's UnixFS file size.
    fn car_output(&self, car_root: Option<car::CarRoot>) -> Option<AddedOutput> {
        let root = car_root?;
        Some(AddedOutput { name: root.name, cid: Some(root.cid), bytes: self.bytes, size: root.size, allocations: self.allocations.clone() })
    }
}

/// The identity CID of the empty block: stands in where a pin needs a CID before the root
/// is known (allocation, validation).
fn placeholder_cid() -> Cid {
    Cid::new_v1(0x55, cid::multihash::Multihash::<64>::wrap(0, &[]).unwrap_or_default())
}

/// Parses a multipart body into part events.
fn parse_parts<S>(boundary: String, body: S) -> BoxStream<'static, Result<PartEvent, ApiError>>
where
    S: Stream<Item = Result<Bytes, ApiError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<PartEvent, ApiError>>(EVENT_QUEUE);
    tokio::spawn(async move {
        let mut body = Box::pin(body);
        let mut parser = MultipartParser::new(&boundary);
        let bad = |e: MultipartError| ApiError::bad_request(e.to_string());
        loop {
            loop {
                match parser.next_event() {
                    Ok(Some(ev)) => {
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(bad(e))).await;
                        return;
                    }
                }
            }
            if parser.is_done() {
                return;
            }
            match body.next().await {
                Some(Ok(chunk)) => parser.push(chunk),
                Some(Err(e)) => {
                    let _ = tx.send(Err(ApiError::bad_request(format!("reading the upload failed: {}", e.message)))).await;
                    return;
                }
                None => {
                    if let Err(e) = parser.finish() {
                        let _ = tx.send(Err(bad(e))).await;
                    }
                    return;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}

/// The importer thread: part events in, blocks and entries (and progress with `progress`) out.
fn import(options: AddOptions, progress: bool, mut events: mpsc::Receiver<PartEvent>, items: mpsc::Sender<Item>) -> Result<(), ApiError> {
    let bad = |e: UnixfsError| match e {
        UnixfsError::Sink(_) => ApiError::new(ErrorCode::Internal, "add cancelled"),
        e => ApiError::bad_request(e.to_string()),
    };
    let mut importer = Importer::new(&options).map_err(bad)?;
    let mut sink = ChannelSink(items.clone());
    enum Current {
        None,
        File(cluster_unixfs::FileWriter),
        Symlink(String, Vec<u8>),
        Dir,
    }
    let mut current = Current::None;
    let mut unnamed = 0u32;
    // Bytes of the current file at its last progress report.
    let mut reported = 0u64;
    let report = |w: &cluster_unixfs::FileWriter, reported: &mut u64| -> Result<(), ApiError> {
        *reported = w.bytes_written();
        items.blocking_send(Item::Progress(w.path(), *reported)).map_err(|_| ApiError::new(ErrorCode::Internal, "add cancelled"))
    };
    let forward = |importer: &mut Importer| -> Result<(), ApiError> {
        for e in importer.take_entries() {
            items.blocking_send(Item::Entry(e)).map_err(|_| ApiError::new(ErrorCode::Internal, "add cancelled"))?;
        }
        Ok(())
    };
    while let Some(ev) = events.blocking_recv() {
        match ev {
            PartEvent::Begin(h) => {
                let path = if h.path.is_empty() {
                    // The original's clients always name parts; a bare form upload gets a
                    // name so it still imports (Kubo does the same with the CID as name).
                    unnamed += 1;
                    if unnamed > 1 { format!("file-{unnamed}") } else { String::new() }
                } else {
                    h.path.trim_start_matches('/').to_string()
                };
                current = match h.kind {
                    PartKind::Directory => {
                        importer.add_dir(&path, &mut sink).map_err(bad)?;
                        Current::Dir
                    }
                    PartKind::Symlink => Current::Symlink(path, Vec::new()),
                    PartKind::File => {
                        let path = if path.is_empty() { "file".to_string() } else { path };
                        reported = 0;
                        Current::File(importer.begin_file(&path, &mut sink).map_err(bad)?)
                    }
                };
            }
            PartEvent::Data(data) => match &mut current {
                Current::File(w) if progress => {
                    // Written in pieces that end on the steps, so each step gets its line
                    // whatever the size of the upload's pieces.
                    let mut rest = &data[..];
                    while !rest.is_empty() {
                        let room = usize::try_from(reported + PROGRESS_STEP - w.bytes_written()).unwrap_or(usize::MAX);
                        let (now, later) = rest.split_at(room.min(rest.len()));
                        w.write(now, &mut sink).map_err(bad)?;
                        rest = later;
                        if w.bytes_written() - reported >= PROGRESS_STEP {
                            report(w, &mut reported)?;
                        }
                    }
                }
                Current::File(w) => w.write(&data, &mut sink).map_err(bad)?,
                Current::Symlink(_, target) => {
                    if target.len() + data.len() > MAX_SYMLINK_TARGET {
                        return Err(ApiError::bad_request("symlink target too long"));
                    }
                    target.extend_from_slice(&data);
                }
                Current::Dir | Current::None => {}
            },
            PartEvent::End => {
                match std::mem::replace(&mut current, Current::None) {
                    Current::File(w) => {
                        if progress && (w.bytes_written() > reported || reported == 0) {
                            report(&w, &mut reported)?;
                        }
                        importer.finish_file(w, &mut sink).map_err(bad)?;
                    }
                    Current::Symlink(path, target) => {
                        let target = String::from_utf8(target).map_err(|_| ApiError::bad_request("symlink target is not utf-8"))?;
                        importer.add_symlink(&path, &target, &mut sink).map_err(bad)?;
                    }
                    Current::Dir | Current::None => {}
                }
                forward(&mut importer)?;
            }
        }
    }
    if !matches!(current, Current::None) {
        return Err(ApiError::bad_request("the upload ended in the middle of a part"));
    }
    let result = importer.finish(&mut sink).map_err(|e| match e {
        UnixfsError::NothingAdded => ApiError::bad_request("the upload holds no file: send at least one multipart part"),
        e => bad(e),
    })?;
    for e in result.entries {
        items.blocking_send(Item::Entry(e)).map_err(|_| ApiError::new(ErrorCode::Internal, "add cancelled"))?;
    }
    Ok(())
}

/// Sends blocks to a set of destinations, each through its own bounded queue.
struct Fanout {
    dests: Vec<Dest>,
    batch: Vec<(Cid, Bytes)>,
    batch_bytes: usize,
    failures: Vec<String>,
}

struct Dest {
    peer: String,
    tx: Option<mpsc::Sender<Arc<Vec<(Cid, Bytes)>>>>,
    task: JoinHandle<Result<(), String>>,
}

impl Fanout {
    fn open(cluster: &Cluster, peers: Vec<String>) -> Fanout {
        let dests = peers
            .into_iter()
            .map(|peer| {
                let (tx, mut rx) = mpsc::channel::<Arc<Vec<(Cid, Bytes)>>>(DEST_QUEUE);
                let target = Target::of(cluster, &peer);
                let in_flight = if matches!(target, Target::Local(_)) { LOCAL_IN_FLIGHT } else { DEST_IN_FLIGHT };
                let task = tokio::spawn(async move {
                    // A few batches in flight hide the per-call latency of the RPC.
                    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
                        .map(Ok)
                        .try_for_each_concurrent(in_flight, |batch| {
                            let target = target.clone();
                            async move { target.put(&batch).await }
                        })
                        .await
                });
                Dest { peer, tx: Some(tx), task }
            })
            .collect();
        Fanout { dests, batch: Vec::new(), batch_bytes: 0, failures: Vec::new() }
    }

    async fn push(&mut self, block: Block) -> Result<(), ApiError> {
        self.batch_bytes += block.data.len();
        self.batch.push((block.cid, block.data));
        if self.batch_bytes >= MAX_BLOCK_PUT_BYTES / 2 {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = Arc::new(std::mem::take(&mut self.batch));
        self.batch_bytes = 0;
        for d in &mut self.dests {
            let Some(tx) = &d.tx else { continue };
            if tx.send(Arc::clone(&batch)).await.is_err() {
                // The destination's task ended: it failed. Collect why and drop it.
                d.tx = None;
                let why = match (&mut d.task).await {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => "stopped".to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(peer = %d.peer, error = %why, "add destination failed, continuing with the others");
                self.failures.push(format!("{}: {why}", d.peer));
            }
        }
        if self.dests.iter().all(|d| d.tx.is_none()) {
            return Err(self.all_failed());
        }
        Ok(())
    }

    fn all_failed(&self) -> ApiError {
        ApiError::new(ErrorCode::Unavailable, format!("no destination accepted the blocks: {}", self.failures.join("; ")))
    }

    /// Flushes and waits until every destination stored everything; fails when none did.
    async fn finish(mut self) -> Result<(), ApiError> {
        self.flush().await?;
        let mut ok = 0;
        for d in &mut self.dests {
            let Some(tx) = d.tx.take() else { continue };
            drop(tx);
            match (&mut d.task).await {
                Ok(Ok(())) => ok += 1,
                Ok(Err(e)) => self.failures.push(format!("{}: {e}", d.peer)),
                Err(e) => self.failures.push(format!("{}: {e}", d.peer)),
            }
        }
        if ok == 0 { Err(self.all_failed()) } else { Ok(()) }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for d in &self.dests {
            d.task.abort();
        }
    }
}

/// Where one destination's blocks go.
#[derive(Clone)]
enum Target {
    Local(Arc<dyn IpfsConnector>),
    Remote { net: cluster_net::Net, peer: Option<PeerId>, timeout: std::time::Duration },
}

impl Target {
    fn of(cluster: &Cluster, peer: &str) -> Target {
        let inner = &cluster.inner;
        if peer == inner.settings.peer_id {
            Target::Local(Arc::clone(&inner.ipfs))
        } else {
            Target::Remote { net: inner.net.clone(), peer: peer.parse().ok(), timeout: inner.settings.ipfs_timeouts.request }
        }
    }

    async fn put(&self, batch: &[(Cid, Bytes)]) -> Result<(), String> {
        let t0 = std::time::Instant::now();
        let r = self.put_inner(batch).await;
        tracing::debug!(blocks = batch.len(), elapsed = ?t0.elapsed(), local = matches!(self, Target::Local(_)), "add batch stored");
        r
    }

    async fn put_inner(&self, batch: &[(Cid, Bytes)]) -> Result<(), String> {
        match self {
            // Our own importer built and hashed these blocks: no second hashing pass.
            Target::Local(ipfs) => ipfs.put_own_blocks(batch.to_vec()).await.map_err(|e| e.to_string()),
            Target::Remote { net, peer, timeout } => {
                let peer = peer.ok_or("not a valid peer id")?;
                let blocks = batch.iter().map(|(c, d)| WireBlock { cid: c.to_string(), data: d.to_vec() }).collect();
                match net.call(peer, RpcRequest::BlockPut { blocks }, Some(*timeout)).await {
                    Ok(RpcResponse::Done) => Ok(()),
                    Ok(RpcResponse::Error(e)) => Err(e.message.to_string()),
                    Ok(other) => Err(format!("unexpected answer {other:?}")),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}
