//! [`EmbeddedIpfs`]: a rust-ipfs node running inside the cluster process.
//!
//! rust-ipfs provides the block store, pin store, bitswap and UnixFS; this module adds what the
//! cluster needs on top: a stable identity persisted in the repo, pins that report progress and
//! can be cancelled without leaving a pin behind, Kubo-default CIDs, and a garbage collector that
//! cannot delete the blocks of a pin that is still being fetched.
//!
//! Pin lookups ([`IpfsConnector::pin_ls_cid`], [`IpfsConnector::pin_ls_cids`]) are answered from
//! the cluster's own pin index ([`crate::pin_index`]) rather than rust-ipfs's one-file-per-pin
//! store, which is too slow to list a million pins; that module documents how the index is kept
//! consistent with the store, and rebuilt after an unclean stop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use cid::{Cid, Version};
use futures::stream::{self, BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt, TryStreamExt};
use rust_ipfs::builder::DefaultIpfsBuilder;
use rust_ipfs::dag::ResolveError;
use rust_ipfs::p2p::{AddressBookConfig, IdentifyConfiguration};
use rust_ipfs::path::PathRoot;
use rust_ipfs::repo::PinStore as _;
use rust_ipfs::unixfs::TraversalFailed;
use rust_ipfs::{
    AddPeerOpt, Block, DialOpts, Ipfs, IpfsPath, Keypair, Multiaddr, PeerCondition, PeerId,
    PinKind, Protocol,
};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::pin_index::{IndexWriter, PinIndex, PinIndexError, PinIndexStart};
use crate::{
    IpfsConnector, IpfsError, IpfsId, IpfsPinStatus, MULTIHASH_IDENTITY, PinMode, RepoStat,
};

/// File in the repo folder holding the node's private key (base64 of the libp2p protobuf
/// encoding, like Kubo's `Identity.PrivKey`). rust-ipfs does not persist a key by itself.
pub const IDENTITY_FILE: &str = "ipfs-identity";
/// Lock file rust-ipfs creates in an on-disk repo.
const REPO_LOCK_FILE: &str = "repo_lock";

/// Kubo's default `Datastore.StorageMax` (10 GB).
const DEFAULT_STORAGE_MAX: u64 = 10_000_000_000;
/// How many blocks of one DAG are wanted from the network at the same time.
const FETCH_CONCURRENCY: usize = 32;
/// Lifetime of one bitswap want; a pin re-wants after it expires, so this only bounds how long a
/// want stays registered, not how long a pin may take.
const WANT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause before re-wanting a block after a failed attempt, so a failing backend is not spun on.
const WANT_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Budget for one-shot network reads (`block_get`, `resolve`, `cat` of remote content).
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Budget for establishing a connection in `swarm_connect`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `start` waits for listeners to come up, and for a previous node to release the repo.
const STARTUP_WAIT: Duration = Duration::from_secs(10);
/// Pin-index lookups up to this many CIDs run on the calling task; larger batches go to a blocking
/// thread, since an on-disk index may have to read from disk.
const INLINE_INDEX_LOOKUPS: usize = 16;

/// How to run the embedded node.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// Repo folder (flatfs block store, pin store, lock file, identity). `None` keeps everything
    /// in memory, which suits tests and throw-away nodes.
    pub repo_path: Option<PathBuf>,
    /// TCP multiaddrs to listen on. Production uses `/ip4/0.0.0.0/tcp/4001` (the default); tests
    /// use `/ip4/127.0.0.1/tcp/0`. Empty means dial-only.
    pub listen_addrs: Vec<Multiaddr>,
    /// Peers dialled at start-up, each ending in `/p2p/<peer id>`. No public bootstrap list is
    /// ever used: these machines may have no internet access.
    pub bootstrap: Vec<Multiaddr>,
    /// Explicit identity. When `None`, an on-disk repo loads (or creates and saves) the key in
    /// [`IDENTITY_FILE`] so the peer id survives restarts; an in-memory node gets a fresh key.
    /// An explicit key is used as given and not written anywhere.
    pub keypair: Option<Keypair>,
    /// Reported as [`RepoStat::storage_max`]; defaults to Kubo's 10 GB.
    pub storage_max: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            repo_path: None,
            listen_addrs: vec![
                Multiaddr::empty()
                    .with(Protocol::Ip4([0, 0, 0, 0].into()))
                    .with(Protocol::Tcp(4001)),
            ],
            bootstrap: Vec::new(),
            keypair: None,
            storage_max: DEFAULT_STORAGE_MAX,
        }
    }
}

impl EmbeddedConfig {
    /// An in-memory node listening on an ephemeral loopback port, what tests want.
    pub fn loopback() -> Self {
        EmbeddedConfig {
            listen_addrs: vec![
                Multiaddr::empty()
                    .with(Protocol::Ip4([127, 0, 0, 1].into()))
                    .with(Protocol::Tcp(0)),
            ],
            ..EmbeddedConfig::default()
        }
    }

    /// Same configuration with an on-disk repo at `path`.
    pub fn with_repo(mut self, path: impl Into<PathBuf>) -> Self {
        self.repo_path = Some(path.into());
        self
    }
}

/// Starts an embedded node behind the backend-neutral trait.
///
/// Being concrete and non-generic, this keeps rust-ipfs's monomorphised code compiled once, in
/// this crate, instead of in every crate that starts a node.
pub async fn start_embedded(cfg: EmbeddedConfig) -> Result<Arc<dyn IpfsConnector>, IpfsError> {
    let node = EmbeddedIpfs::start(cfg).await?;
    Ok(Arc::new(node))
}

/// An IPFS node running in-process on rust-ipfs.
///
/// Stop it with [`EmbeddedIpfs::stop`] (or [`IpfsConnector::shutdown`]) to release the repo lock
/// deterministically. Dropping it also stops the node, but the lock is then released in the
/// background; [`EmbeddedIpfs::start`] waits a few seconds for it, so a quick restart still works.
pub struct EmbeddedIpfs {
    /// `None` once stopped. Operations clone the handle out, so a stop does not wait for them.
    node: RwLock<Option<Ipfs>>,
    peer_id: PeerId,
    repo_path: Option<PathBuf>,
    /// Our GC takes it exclusively; pins take it shared only for short, local steps (never while
    /// waiting on the network), so a slow pin cannot stall garbage collection.
    gc_lock: tokio::sync::RwLock<()>,
    /// Multihashes of blocks gathered by pins still in progress, which GC must keep.
    in_flight: Mutex<InFlight>,
    /// Root pins mirrored from rust-ipfs's pin store, so lookups never read pin files.
    index: Arc<PinIndex>,
    /// References recorded by depth-limited pins. Removing a recursive pin from the memory pin
    /// store needs exactly the references it was recorded with, which walking the local blocks
    /// would overshoot for a depth-limited one (the on-disk store keeps its own and ignores
    /// them, so losing this map on restart is harmless).
    limited_refs: Mutex<HashMap<Cid, PinRefs>>,
}

#[derive(Default)]
struct InFlight {
    next_token: u64,
    sets: HashMap<u64, HashSet<Vec<u8>>>,
}

/// One pin's entry in [`EmbeddedIpfs::in_flight`]; dropping it (including by cancellation)
/// withdraws the protection.
struct Registration<'a> {
    owner: &'a Mutex<InFlight>,
    token: u64,
}

impl Registration<'_> {
    fn protect(&self, cid: &Cid) {
        let mut guard = self.owner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = guard.sets.get_mut(&self.token) {
            set.insert(cid.hash().to_bytes());
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut guard = self.owner.lock().unwrap_or_else(|p| p.into_inner());
        guard.sets.remove(&self.token);
    }
}

impl EmbeddedIpfs {
    /// The on-disk block store's folder; `None` for an in-memory repo.
    fn blockstore_dir(&self) -> Option<PathBuf> {
        self.repo_path.as_ref().map(|p| p.join(crate::flatfs::BLOCKSTORE_DIR))
    }

    /// Stores a batch of blocks (checking each against its CID first when `verify`), all on one
    /// blocking thread: hashing and disk writes would otherwise stall the runtime. An on-disk
    /// repo gets the batch through [`crate::flatfs::write_blocks`], which syncs the batch as a
    /// whole instead of block by block.
    ///
    /// Blocks written that way do not pass through rust-ipfs's put path, so its new-block
    /// notifications (bitswap peers waiting for the block, local fetches of it in progress) are
    /// not sent; such waiters find the block on their next look at the store. Adds, the
    /// caller, store fresh content nobody waits for.
    async fn store_blocks(&self, blocks: Vec<(Cid, Bytes)>, verify: bool) -> Result<(), IpfsError> {
        let ipfs = self.node()?;
        let _gc = self.gc_lock.read().await;
        let blockstore = self.blockstore_dir();
        let count = blocks.len();
        let started = std::time::Instant::now();
        let blocks = tokio::task::spawn_blocking(move || {
            if verify {
                for (cid, data) in &blocks {
                    crate::verify_block(cid, data)?;
                }
            }
            match blockstore {
                Some(dir) => crate::flatfs::write_blocks(&dir, &blocks)
                    .map(|()| None)
                    .map_err(|e| IpfsError::Backend(format!("storing blocks: {e}"))),
                None => Ok(Some(blocks)),
            }
        })
        .await
        .map_err(|e| IpfsError::Backend(format!("block store task failed: {e}")))??;
        if let Some(blocks) = blocks {
            let blocks = blocks.into_iter().map(|(cid, data)| Block::new_unchecked(cid, data)).collect();
            ipfs.repo().put_blocks(blocks).await.map_err(IpfsError::backend)?;
        }
        debug!(blocks = count, elapsed = ?started.elapsed(), "blocks stored");
        Ok(())
    }

    /// Starts the node: loads or creates its identity, opens the repo, binds the listeners and
    /// dials the bootstrap peers in the background.
    pub async fn start(cfg: EmbeddedConfig) -> Result<EmbeddedIpfs, IpfsError> {
        let EmbeddedConfig {
            repo_path,
            listen_addrs,
            bootstrap,
            keypair,
            storage_max,
        } = cfg;

        if let Some(path) = &repo_path {
            std::fs::create_dir_all(path).map_err(|e| {
                IpfsError::Backend(format!("cannot create repo folder {}: {e}", path.display()))
            })?;
            wait_for_repo_unlock(path, STARTUP_WAIT).await?;
        }

        let keypair = match (keypair, &repo_path) {
            (Some(keypair), _) => keypair,
            (None, Some(path)) => load_or_create_identity(path)?,
            (None, None) => Keypair::generate_ed25519(),
        };
        let peer_id = keypair.public().to_peer_id();

        let identify = IdentifyConfiguration {
            agent_version: format!("ipfs-cluster-embedded/{}", env!("CARGO_PKG_VERSION")),
            ..IdentifyConfiguration::default()
        };
        let mut builder = DefaultIpfsBuilder::with_keypair(&keypair)
            .map_err(|e| IpfsError::InvalidInput(format!("unusable keypair: {e}")))?
            .with_bitswap()
            .with_identify(identify)
            .with_ping(Default::default())
            // Kubo keeps connections open through its connection manager; without this libp2p
            // closes a connection after 10 s without streams, and peers would vanish between pins.
            .set_addrbook_configuration(AddressBookConfig {
                store_on_connection: true,
                keep_connection_alive: true,
            })
            .enable_tcp()
            .set_listening_addrs(listen_addrs.clone());
        if let Some(path) = &repo_path {
            builder = builder.set_path(path);
        }

        let ipfs = builder.start().await.map_err(|e| {
            IpfsError::Backend(format!("cannot start the embedded ipfs node: {e:#}"))
        })?;
        ipfs.repo()
            .set_max_storage_size(usize::try_from(storage_max).unwrap_or(usize::MAX));

        // rust-ipfs only logs listener failures; a node that cannot bind (port taken) is useless
        // to its peers, so surface it here.
        if !listen_addrs.is_empty() {
            let listening = wait_for_listeners(&ipfs, STARTUP_WAIT).await;
            if listening.is_empty() {
                ipfs.exit_daemon().await;
                return Err(IpfsError::Backend(format!(
                    "the embedded ipfs node could not listen on any of {listen_addrs:?}"
                )));
            }
            info!(%peer_id, addrs = ?listening, repo = ?repo_path, "embedded ipfs node started");
        } else {
            info!(%peer_id, repo = ?repo_path, "embedded ipfs node started without listeners");
        }

        let index = match &repo_path {
            Some(path) => match PinIndex::open(path, &ipfs, STARTUP_WAIT).await {
                Ok(index) => index,
                Err(e) => {
                    ipfs.exit_daemon().await;
                    return Err(e.into());
                }
            },
            None => PinIndex::memory(),
        };

        for addr in bootstrap {
            let ipfs = ipfs.clone();
            tokio::spawn(
                async move {
                    match connect_multiaddr(&ipfs, addr.clone()).await {
                        Ok(()) => debug!(%addr, "connected to bootstrap peer"),
                        Err(e) => warn!(%addr, error = %e, "cannot connect to bootstrap peer"),
                    }
                }
                .in_current_span(),
            );
        }

        Ok(EmbeddedIpfs {
            node: RwLock::new(Some(ipfs)),
            peer_id,
            repo_path,
            gc_lock: tokio::sync::RwLock::new(()),
            in_flight: Mutex::new(InFlight::default()),
            index: Arc::new(index),
            limited_refs: Mutex::new(HashMap::new()),
        })
    }

    /// How the pin index came up at start: trusted after a clean stop, rebuilt from the pin store,
    /// or in memory. Exposed so operators' tests can check the crash-recovery path ran.
    pub fn pin_index_start(&self) -> PinIndexStart {
        self.index.start()
    }

    /// The node's IPFS peer id (stable across restarts for on-disk repos).
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The underlying rust-ipfs handle, for callers that need something the trait does not offer.
    ///
    /// Pins written or removed through it bypass the pin index, so pin lookups do not see them
    /// until the index is next rebuilt (a start after an unclean stop).
    pub fn ipfs(&self) -> Result<Ipfs, IpfsError> {
        self.node()
    }

    /// Stops the node and waits (a bounded time) until the repo lock is released, so a new node
    /// can open the same repo right away. The pin index is persisted and marked clean first, so
    /// the next start can trust it instead of rebuilding. Idempotent.
    pub async fn stop(&self) {
        let taken = self.node.write().unwrap_or_else(|p| p.into_inner()).take();
        let Some(ipfs) = taken else {
            return;
        };
        // waits for a pin change in progress, and refuses later ones, before the marker is written
        self.index.close().await;
        ipfs.exit_daemon().await;
        if let Some(path) = &self.repo_path
            && let Err(e) = wait_for_repo_unlock(path, STARTUP_WAIT).await
        {
            warn!(repo = %path.display(), error = %e, "repo still locked after stopping the node");
        }
        info!(peer_id = %self.peer_id, "embedded ipfs node stopped");
    }

    fn node(&self) -> Result<Ipfs, IpfsError> {
        self.node
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(IpfsError::Closed)
    }

    fn register(&self) -> Registration<'_> {
        let mut guard = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let token = guard.next_token;
        guard.next_token = guard.next_token.wrapping_add(1);
        guard.sets.insert(token, HashSet::new());
        Registration {
            owner: &self.in_flight,
            token,
        }
    }

    /// The authoritative status of one CID, read from rust-ipfs's pin store (pin files on disk).
    /// Pin and unpin decide with it; lookups use [`Self::statuses`].
    async fn status_of(&self, ipfs: &Ipfs, cid: &Cid) -> Result<IpfsPinStatus, IpfsError> {
        store_status(ipfs, cid).await
    }

    /// Statuses of `cids`, in order. Roots come from the pin index (one batched read); only the
    /// CIDs it does not know as roots are checked against rust-ipfs's in-memory reverse index of
    /// indirect pins. Pin files are read only while the index is untrusted.
    async fn statuses(&self, ipfs: &Ipfs, cids: &[Cid]) -> Result<Vec<IpfsPinStatus>, IpfsError> {
        if cids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(roots) = self.index_roots(cids).await? else {
            let mut statuses = Vec::with_capacity(cids.len());
            for cid in cids {
                statuses.push(self.status_of(ipfs, cid).await?);
            }
            return Ok(statuses);
        };
        let mut statuses = Vec::with_capacity(cids.len());
        let mut not_roots = Vec::new();
        for (i, root) in roots.into_iter().enumerate() {
            statuses.push(match root {
                Some(PinMode::Recursive) => IpfsPinStatus::Recursive,
                Some(PinMode::Direct) => IpfsPinStatus::Direct,
                None => {
                    not_roots.push(i);
                    IpfsPinStatus::Unpinned
                }
            });
        }
        if !not_roots.is_empty() {
            let candidates: Vec<Cid> = not_roots.iter().map(|&i| cids[i]).collect();
            let flags = indirect_flags(ipfs, candidates).await;
            for (i, indirect) in not_roots.into_iter().zip(flags) {
                if indirect {
                    statuses[i] = IpfsPinStatus::Indirect;
                }
            }
        }
        Ok(statuses)
    }

    /// Root modes from the pin index, or `None` when the index is not (or no longer) trusted and
    /// the caller must read the pin store instead.
    async fn index_roots(&self, cids: &[Cid]) -> Result<Option<Vec<Option<PinMode>>>, IpfsError> {
        if !self.index.is_trusted() {
            return Ok(None);
        }
        let looked_up = if cids.len() <= INLINE_INDEX_LOOKUPS {
            self.index.roots(cids)
        } else {
            let index = Arc::clone(&self.index);
            let owned = cids.to_vec();
            tokio::task::spawn_blocking(move || index.roots(&owned))
                .await
                .unwrap_or_else(|e| Err(PinIndexError::Task(e.to_string())))
        };
        match looked_up {
            Ok(roots) => Ok(Some(roots)),
            Err(PinIndexError::Closed) => Err(IpfsError::Closed),
            Err(e) => {
                self.index.distrust(&e);
                Ok(None)
            }
        }
    }

    /// Returns the block if it is local, as far as a DAG walk needs it. Identity-hash blocks are
    /// always "local": their content is the CID itself (rust-ipfs's store cannot hold them, its
    /// hash table lacks identity).
    ///
    /// An on-disk repo's blocks are read straight from their files, unchecked, and leaves only
    /// as far as needed to know they have no links ([`crate::flatfs::read_for_walk`]):
    /// rust-ipfs's own read hashes every block again, which made pinning a just-added GiB cost a
    /// second of CPU. Blocks were checked when they were stored (or built by our importer), and
    /// Kubo does not re-hash on read by default either.
    async fn local_block(&self, ipfs: &Ipfs, cid: &Cid) -> Result<Option<WalkBlock>, IpfsError> {
        if let Some(block) = identity_block(cid) {
            return Ok(Some(WalkBlock::Block(block)));
        }
        if let Some(blockstore) = self.blockstore_dir() {
            let key = *cid;
            let walked = tokio::task::spawn_blocking(move || crate::flatfs::read_for_walk(&blockstore, &key))
                .await
                .map_err(|e| IpfsError::Backend(format!("block read task failed: {e}")))?
                .map_err(|e| IpfsError::Backend(format!("reading block {cid}: {e}")))?;
            return Ok(match walked {
                crate::flatfs::Walked::Absent => None,
                crate::flatfs::Walked::NoLinks => Some(WalkBlock::NoLinks),
                crate::flatfs::Walked::Bytes(d) => Some(WalkBlock::Block(Block::new_unchecked(*cid, Bytes::from(d)))),
            });
        }
        let block = ipfs.repo().get_block_now(cid).await.map_err(IpfsError::backend)?;
        Ok(block.map(WalkBlock::Block))
    }

    /// Every CID reachable from `root` among local blocks (root excluded): the reference set a
    /// recursive pin was recorded with, which the pin store needs back to remove it.
    async fn local_refs(&self, ipfs: &Ipfs, root: Cid) -> Result<Vec<Cid>, IpfsError> {
        let mut seen: HashSet<Cid> = HashSet::from([root]);
        let mut queue: VecDeque<Cid> = VecDeque::from([root]);
        let mut refs = Vec::new();
        while let Some(cid) = queue.pop_front() {
            let Some(block) = self.local_block(ipfs, &cid).await? else {
                continue;
            };
            for link in block.links()? {
                if seen.insert(link) {
                    refs.push(link);
                    queue.push_back(link);
                }
            }
        }
        Ok(refs)
    }

    /// Gets one block for a pin, from the store or the network, and protects it from GC until the
    /// pin is recorded. Never gives up on its own: an unavailable block is re-wanted until the
    /// caller drops the future.
    async fn fetch_for_pin(
        &self,
        ipfs: &Ipfs,
        cid: Cid,
        registration: &Registration<'_>,
    ) -> Result<WalkBlock, IpfsError> {
        let mut attempt: u64 = 0;
        loop {
            {
                let _gc = self.gc_lock.read().await;
                if let Some(block) = self.local_block(ipfs, &cid).await? {
                    registration.protect(&cid);
                    return Ok(block);
                }
            }
            attempt += 1;
            match ipfs.get_block(cid).timeout(WANT_ATTEMPT_TIMEOUT).await {
                Ok(block) => {
                    // bitswap stored it, but a GC may have run since; we hold the data, so put it
                    // back rather than fetching again.
                    let _gc = self.gc_lock.read().await;
                    if !ipfs
                        .repo()
                        .contains(&cid)
                        .await
                        .map_err(IpfsError::backend)?
                    {
                        ipfs.put_block(&block).await.map_err(IpfsError::backend)?;
                    }
                    registration.protect(&cid);
                    return Ok(WalkBlock::Block(block));
                }
                Err(e) => {
                    if !ipfs.repo().is_online() {
                        return Err(IpfsError::Closed);
                    }
                    debug!(%cid, attempt, error = %e, "block not fetched yet, wanting it again");
                    tokio::time::sleep(WANT_RETRY_BACKOFF).await;
                }
            }
        }
    }

    /// Pins `cid` with the blocks `reach` covers: fetches them, then records the pin (the
    /// references of a recursive or depth-limited pin are exactly the blocks fetched).
    async fn pin_reaching(
        &self,
        cid: Cid,
        reach: Reach,
        progress: mpsc::Sender<u64>,
    ) -> Result<(), IpfsError> {
        let ipfs = self.node()?;
        let satisfied = |status: IpfsPinStatus| match reach {
            Reach::Root => matches!(status, IpfsPinStatus::Direct | IpfsPinStatus::Recursive),
            Reach::Depth(_) | Reach::All => status == IpfsPinStatus::Recursive,
        };
        async {
            let before = self.status_of(&ipfs, &cid).await?;
            if satisfied(before) {
                debug!(%before, "already pinned");
                return Ok(());
            }

            let registration = self.register();
            let refs = match reach {
                Reach::Root => {
                    self.fetch_for_pin(&ipfs, cid, &registration).await?;
                    let _ = progress.try_send(1);
                    None
                }
                Reach::Depth(depth) => Some(Arc::new(
                    self.fetch_dag(&ipfs, cid, Some(depth), &registration, &progress).await?,
                )),
                Reach::All => Some(Arc::new(
                    self.fetch_dag(&ipfs, cid, None, &registration, &progress).await?,
                )),
            };
            let blocks = refs.as_ref().map_or(1, |r| r.len() + 1);
            let limited = match (reach, &refs) {
                (Reach::Depth(_), Some(refs)) => Some(Arc::clone(refs)),
                _ => None,
            };

            let _gc = self.gc_lock.read().await;
            let mut commit = PinCommit::spawn(&ipfs, &self.index, cid, refs, before);
            match commit.wait().await {
                Ok(()) => {
                    if let Some(refs) = limited {
                        self.limited_refs.lock().unwrap_or_else(|p| p.into_inner()).insert(cid, refs);
                    }
                }
                // a concurrent pin of the same cid may have recorded it first
                Err(e) => {
                    if !satisfied(self.status_of(&ipfs, &cid).await?) {
                        return Err(e);
                    }
                }
            }
            drop(registration);
            info!(blocks, "pinned");
            Ok(())
        }
        .instrument(info_span!("ipfs_pin", %cid, reach = %reach))
        .await
    }

    /// Fetches every block reachable from `root` (breadth-first, several wants in flight), or
    /// only those at most `max_depth` links below it, reporting the running count on
    /// `progress`. Returns the CIDs below the root, which become the pin's indirect references.
    async fn fetch_dag(
        &self,
        ipfs: &Ipfs,
        root: Cid,
        max_depth: Option<u32>,
        registration: &Registration<'_>,
        progress: &mpsc::Sender<u64>,
    ) -> Result<Vec<Cid>, IpfsError> {
        let mut seen: HashSet<Cid> = HashSet::from([root]);
        let mut queue: VecDeque<(Cid, u32)> = VecDeque::from([(root, 0)]);
        let mut in_progress = FuturesUnordered::new();
        let mut refs = Vec::new();
        let mut fetched: u64 = 0;
        loop {
            while in_progress.len() < FETCH_CONCURRENCY {
                let Some((next, depth)) = queue.pop_front() else {
                    break;
                };
                in_progress.push(
                    self.fetch_for_pin(ipfs, next, registration)
                        .map(move |r| r.map(|block| (block, depth))),
                );
            }
            let Some(result) = in_progress.next().await else {
                break;
            };
            let (block, depth) = result?;
            fetched += 1;
            // breadth-first, so a block is first met at its least depth
            if max_depth.is_some_and(|max| depth >= max) {
                let _ = progress.try_send(fetched);
                continue;
            }
            for link in block.links()? {
                if seen.insert(link) {
                    refs.push(link);
                    queue.push_back((link, depth + 1));
                }
            }
            // cumulative counts: a full channel only loses intermediate values
            let _ = progress.try_send(fetched);
        }
        Ok(refs)
    }
}

impl Drop for EmbeddedIpfs {
    fn drop(&mut self) {
        // no clean marker: the next start rebuilds the pin index from the pin store
        self.index.abandon();
        let taken = self.node.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(ipfs) = taken {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(ipfs.exit_daemon());
                }
                // without a runtime the swarm task is gone already; releasing the handle suffices
                Err(_) => drop(ipfs),
            }
        }
    }
}

/// A block as a DAG walk gets it.
enum WalkBlock {
    /// Its bytes.
    Block(Block),
    /// Known to have no links, its bytes left unread.
    NoLinks,
}

impl WalkBlock {
    fn links(&self) -> Result<Vec<Cid>, IpfsError> {
        match self {
            WalkBlock::Block(block) => block_links(block),
            WalkBlock::NoLinks => Ok(Vec::new()),
        }
    }
}

/// References of a recursive pin, shared by the commit task and a possible rollback.
type PinRefs = Arc<Vec<Cid>>;

/// Which blocks a pin covers.
#[derive(Clone, Copy, Debug)]
enum Reach {
    /// The root block only (a direct pin).
    Root,
    /// The root and the blocks at most this many links below it (a shard's pin).
    Depth(u32),
    /// The whole DAG (a recursive pin).
    All,
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reach::Root => f.write_str("direct"),
            Reach::Depth(d) => write!(f, "depth-{d}"),
            Reach::All => f.write_str("recursive"),
        }
    }
}

fn refs_stream(refs: &PinRefs) -> BoxStream<'static, Result<Cid, rust_ipfs::refs::IpldRefsError>> {
    let refs = Arc::clone(refs);
    stream::iter((0..refs.len()).map(move |i| Ok(refs[i]))).boxed()
}

/// Why a pin-store change was not made.
#[derive(Debug, thiserror::Error)]
enum PinWriteError {
    /// The node is stopping: nothing was changed.
    #[error("the ipfs node is stopping")]
    Closed,
    /// rust-ipfs's pin store refused or failed the change.
    #[error("{0:#}")]
    Store(rust_ipfs::Error),
}

impl PinWriteError {
    fn into_ipfs(self, what: &str) -> IpfsError {
        match self {
            PinWriteError::Closed => IpfsError::Closed,
            PinWriteError::Store(e) => IpfsError::Backend(format!("{what}: {e:#}")),
        }
    }
}

/// The authoritative status of `cid` from rust-ipfs's pin store (reads pin files on disk).
async fn store_status(ipfs: &Ipfs, cid: &Cid) -> Result<IpfsPinStatus, IpfsError> {
    if !ipfs.is_pinned(cid).await.map_err(IpfsError::backend)? {
        return Ok(IpfsPinStatus::Unpinned);
    }
    match ipfs.query_pins(vec![*cid], None).await {
        Ok(found) => Ok(found
            .into_iter()
            .next()
            .map(|(_, kind)| match kind {
                PinKind::Direct => IpfsPinStatus::Direct,
                PinKind::Recursive(_) | PinKind::RecursiveIntention => IpfsPinStatus::Recursive,
                PinKind::IndirectFrom(_) => IpfsPinStatus::Indirect,
            })
            .unwrap_or(IpfsPinStatus::Unpinned)),
        // rust-ipfs reports "not pinned" as an error; tell it apart from a real failure by
        // asking again (an unpin may have raced us).
        Err(e) => {
            if ipfs.is_pinned(cid).await.map_err(IpfsError::backend)? {
                Err(IpfsError::backend(e))
            } else {
                Ok(IpfsPinStatus::Unpinned)
            }
        }
    }
}

/// Which of `cids` a recursive pin reaches, from rust-ipfs's in-memory reverse index: asked for
/// indirect pins only, the flatfs store reads no pin file. Such a query fails as a whole when any
/// CID is not indirectly pinned, so a failed batch is retried one CID at a time; with that
/// requirement "not pinned" is the only way a single query fails, so failure means no. Each miss
/// costs rust-ipfs an `anyhow` error, which captures a backtrace when `RUST_BACKTRACE` or
/// `RUST_LIB_BACKTRACE` is set: unpinned CIDs are several times slower to answer then.
async fn indirect_flags(ipfs: &Ipfs, cids: Vec<Cid>) -> Vec<bool> {
    let count = cids.len();
    let indirect = Some(rust_ipfs::PinMode::Indirect);
    if ipfs.query_pins(cids.clone(), indirect).await.is_ok() {
        return vec![true; count];
    }
    if count == 1 {
        return vec![false];
    }
    let mut flags = Vec::with_capacity(count);
    for cid in cids {
        flags.push(ipfs.query_pins(vec![cid], indirect).await.is_ok());
    }
    flags
}

/// The index entry a store status amounts to.
fn root_mode(status: IpfsPinStatus) -> Option<PinMode> {
    match status {
        IpfsPinStatus::Recursive => Some(PinMode::Recursive),
        IpfsPinStatus::Direct => Some(PinMode::Direct),
        IpfsPinStatus::Indirect | IpfsPinStatus::Unpinned => None,
    }
}

/// After a failed store change the store may or may not have changed: re-read it into the index.
async fn resync(ipfs: &Ipfs, writer: &IndexWriter<'_>, cid: &Cid) {
    match store_status(ipfs, cid).await {
        Ok(status) => writer.set(cid, root_mode(status)),
        Err(e) => writer.distrust(&PinIndexError::StoreRead(format!(
            "cannot re-read the pin of {cid} after a failed change: {e}"
        ))),
    }
}

/// Writes a pin into rust-ipfs's pin store, and then into the pin index, under the index's writer
/// lock. The store is used directly, with the references our own walk collected, because
/// `Ipfs::insert_pin` re-reads every block through a store that cannot load identity-hash blocks.
async fn record_pin(
    ipfs: &Ipfs,
    index: &PinIndex,
    cid: &Cid,
    refs: Option<&PinRefs>,
) -> Result<(), PinWriteError> {
    let writer = index.writer().await.ok_or(PinWriteError::Closed)?;
    let store = ipfs.repo().data_store();
    let (written, mode) = match refs {
        Some(refs) => (
            store.insert_recursive_pin(cid, refs_stream(refs)).await,
            PinMode::Recursive,
        ),
        // both stores refuse a direct pin over a recursive one, so success means "direct"
        None => (store.insert_direct_pin(cid).await, PinMode::Direct),
    };
    match written {
        Ok(()) => {
            writer.set(cid, Some(mode));
            Ok(())
        }
        Err(e) => {
            resync(ipfs, &writer, cid).await;
            Err(PinWriteError::Store(e))
        }
    }
}

/// Inverse of [`record_pin`]; the memory pin store needs the same references back. Removing a
/// recursive pin removes a direct one too, so either way the CID is no longer a root.
async fn erase_pin(
    ipfs: &Ipfs,
    index: &PinIndex,
    cid: &Cid,
    refs: Option<&PinRefs>,
) -> Result<(), PinWriteError> {
    let writer = index.writer().await.ok_or(PinWriteError::Closed)?;
    let store = ipfs.repo().data_store();
    let erased = match refs {
        Some(refs) => store.remove_recursive_pin(cid, refs_stream(refs)).await,
        None => store.remove_direct_pin(cid).await,
    };
    match erased {
        Ok(()) => {
            writer.set(cid, None);
            Ok(())
        }
        Err(e) => {
            resync(ipfs, &writer, cid).await;
            Err(PinWriteError::Store(e))
        }
    }
}

/// Records a pin in a task of its own, so cancellation cannot interrupt a half-written pin; if the
/// caller goes away before the outcome is known, the pin is rolled back once it lands.
struct PinCommit {
    handle: Option<tokio::task::JoinHandle<Result<(), PinWriteError>>>,
    ipfs: Ipfs,
    index: Arc<PinIndex>,
    cid: Cid,
    /// `Some` for a recursive pin.
    refs: Option<PinRefs>,
    before: IpfsPinStatus,
}

impl PinCommit {
    fn spawn(
        ipfs: &Ipfs,
        index: &Arc<PinIndex>,
        cid: Cid,
        refs: Option<PinRefs>,
        before: IpfsPinStatus,
    ) -> Self {
        let task_ipfs = ipfs.clone();
        let task_index = Arc::clone(index);
        let task_refs = refs.clone();
        let handle = tokio::spawn(async move {
            record_pin(&task_ipfs, &task_index, &cid, task_refs.as_ref()).await
        });
        PinCommit {
            handle: Some(handle),
            ipfs: ipfs.clone(),
            index: Arc::clone(index),
            cid,
            refs,
            before,
        }
    }

    async fn wait(&mut self) -> Result<(), IpfsError> {
        let Some(handle) = self.handle.as_mut() else {
            return Err(IpfsError::Backend("pin commit already awaited".into()));
        };
        let joined = handle.await;
        self.handle = None;
        match joined {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into_ipfs("cannot record pin")),
            Err(e) => Err(IpfsError::Backend(format!("pin commit task failed: {e}"))),
        }
    }
}

impl Drop for PinCommit {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        let (ipfs, index, cid, refs, before) = (
            self.ipfs.clone(),
            Arc::clone(&self.index),
            self.cid,
            self.refs.take(),
            self.before,
        );
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if !matches!(handle.await, Ok(Ok(()))) {
                return;
            }
            debug!(%cid, "pin cancelled while being recorded, rolling it back");
            if let Err(e) = erase_pin(&ipfs, &index, &cid, refs.as_ref()).await {
                warn!(%cid, error = %e, "cannot roll back cancelled pin");
                return;
            }
            // removing a recursive pin also drops a direct one that existed before
            if refs.is_some()
                && before == IpfsPinStatus::Direct
                && let Err(e) = record_pin(&ipfs, &index, &cid, None).await
            {
                warn!(%cid, error = %e, "cannot restore direct pin after rollback");
            }
        });
    }
}

#[async_trait]
impl IpfsConnector for EmbeddedIpfs {
    async fn id(&self) -> Result<IpfsId, IpfsError> {
        let ipfs = self.node()?;
        let info = ipfs.identity(None).await.map_err(IpfsError::backend)?;
        let mut addresses: Vec<String> = info.listen_addrs.iter().map(|a| a.to_string()).collect();
        addresses.sort();
        Ok(IpfsId {
            id: info.peer_id.to_string(),
            addresses,
        })
    }

    async fn pin(
        &self,
        cid: &Cid,
        mode: PinMode,
        progress: mpsc::Sender<u64>,
    ) -> Result<(), IpfsError> {
        let reach = match mode {
            PinMode::Recursive => Reach::All,
            PinMode::Direct => Reach::Root,
        };
        self.pin_reaching(*cid, reach, progress).await
    }

    async fn pin_depth(
        &self,
        cid: &Cid,
        depth: u32,
        progress: mpsc::Sender<u64>,
    ) -> Result<(), IpfsError> {
        self.pin_reaching(*cid, Reach::Depth(depth.max(1)), progress).await
    }

    /// Once the removal has started it runs to the end in a task of its own, even if the caller
    /// goes away, so the pin store and the pin index cannot be left disagreeing.
    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError> {
        let ipfs = self.node()?;
        let status = self.status_of(&ipfs, cid).await?;
        let refs = match status {
            IpfsPinStatus::Recursive => {
                let limited = self.limited_refs.lock().unwrap_or_else(|p| p.into_inner()).remove(cid);
                match limited {
                    Some(refs) => Some(refs),
                    None => Some(Arc::new(self.local_refs(&ipfs, *cid).await?)),
                }
            }
            IpfsPinStatus::Direct => None,
            IpfsPinStatus::Indirect | IpfsPinStatus::Unpinned => {
                debug!(%cid, %status, "nothing to unpin");
                return Ok(());
            }
        };
        let removal = {
            let (ipfs, index, cid) = (ipfs.clone(), Arc::clone(&self.index), *cid);
            tokio::spawn(async move { erase_pin(&ipfs, &index, &cid, refs.as_ref()).await })
        };
        let removed = removal
            .await
            .map_err(|e| IpfsError::Backend(format!("unpin task failed: {e}")))?;
        match removed {
            Ok(()) => {
                info!(%cid, %status, "unpinned");
                Ok(())
            }
            Err(PinWriteError::Closed) => Err(IpfsError::Closed),
            Err(e) => match self.status_of(&ipfs, cid).await? {
                // a concurrent unpin won the race; the outcome is the one asked for
                IpfsPinStatus::Unpinned | IpfsPinStatus::Indirect => Ok(()),
                _ => Err(IpfsError::Backend(format!("cannot unpin {cid}: {e}"))),
            },
        }
    }

    async fn pin_ls_cid(&self, cid: &Cid) -> Result<IpfsPinStatus, IpfsError> {
        let ipfs = self.node()?;
        self.statuses(&ipfs, std::slice::from_ref(cid))
            .await?
            .pop()
            .ok_or_else(|| IpfsError::Backend(format!("no status for {cid}")))
    }

    /// Answered from the pin index: one snapshot read per CID, and a lookup in rust-ipfs's
    /// in-memory reverse index for CIDs that are not roots; no pin file is read.
    async fn pin_ls_cids(&self, cids: &[Cid]) -> Result<Vec<IpfsPinStatus>, IpfsError> {
        let ipfs = self.node()?;
        self.statuses(&ipfs, cids).await
    }

    fn pin_ls(
        &self,
        recursive: bool,
        direct: bool,
    ) -> BoxStream<'static, Result<(Cid, IpfsPinStatus), IpfsError>> {
        let ipfs = match self.node() {
            Ok(ipfs) => ipfs,
            Err(e) => return stream::once(async move { Err(e) }).boxed(),
        };
        let mut kinds = Vec::new();
        if recursive {
            kinds.push(rust_ipfs::PinMode::Recursive);
        }
        if direct {
            kinds.push(rust_ipfs::PinMode::Direct);
        }
        stream::iter(kinds)
            .then(move |kind| {
                let ipfs = ipfs.clone();
                async move { ipfs.list_pins(Some(kind)).await }
            })
            .flatten()
            .map(|item| {
                let (cid, kind) = item.map_err(IpfsError::backend)?;
                let status = match kind {
                    rust_ipfs::PinMode::Recursive => IpfsPinStatus::Recursive,
                    rust_ipfs::PinMode::Direct => IpfsPinStatus::Direct,
                    rust_ipfs::PinMode::Indirect => IpfsPinStatus::Indirect,
                };
                Ok((cid, status))
            })
            .boxed()
    }

    async fn repo_stat(&self) -> Result<RepoStat, IpfsError> {
        let ipfs = self.node()?;
        let repo = ipfs.repo();
        let size = repo.get_total_size().await.map_err(IpfsError::backend)?;
        Ok(RepoStat {
            repo_size: size as u64,
            storage_max: repo.max_storage_size() as u64,
        })
    }

    /// rust-ipfs's own `Ipfs::gc` is not used: it takes a lock that every in-progress network
    /// fetch holds (so it would stall behind a slow pin and block the node meanwhile), and it
    /// would delete blocks of pins still being fetched. This one keeps every block a pin
    /// (recursive, direct, indirect) or an in-progress pin protects, comparing by multihash.
    async fn repo_gc(&self) -> Result<Vec<Cid>, IpfsError> {
        let ipfs = self.node()?;
        let _gc = self.gc_lock.write().await;

        let mut keep: HashSet<Vec<u8>> = ipfs
            .list_pins(None)
            .await
            .map_ok(|(cid, _)| cid.hash().to_bytes())
            .try_collect()
            .await
            .map_err(IpfsError::backend)?;
        {
            let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            for set in in_flight.sets.values() {
                keep.extend(set.iter().cloned());
            }
        }

        let blocks: Vec<Cid> = ipfs.repo().list_blocks().await.collect().await;
        let mut removed = Vec::new();
        for cid in blocks {
            if keep.contains(&cid.hash().to_bytes()) {
                continue;
            }
            match ipfs.repo().remove_block(cid, false).await {
                Ok(gone) => removed.extend(gone),
                Err(e) => debug!(%cid, error = %e, "gc kept block"),
            }
        }
        info!(removed = removed.len(), "garbage collection finished");
        Ok(removed)
    }

    async fn block_put(&self, data: Bytes, codec: u64) -> Result<Cid, IpfsError> {
        let ipfs = self.node()?;
        let cid = crate::block_cid(&data, codec)?;
        let block = Block::new_unchecked(cid, data);
        let _gc = self.gc_lock.read().await;
        ipfs.put_block(&block).await.map_err(IpfsError::backend)?;
        debug!(%cid, "block stored");
        Ok(cid)
    }

    async fn put_blocks(&self, blocks: Vec<(Cid, Bytes)>) -> Result<(), IpfsError> {
        self.store_blocks(blocks, true).await
    }

    async fn put_own_blocks(&self, blocks: Vec<(Cid, Bytes)>) -> Result<(), IpfsError> {
        self.store_blocks(blocks, false).await
    }

    async fn block_get(&self, cid: &Cid) -> Result<Bytes, IpfsError> {
        if let Some(block) = identity_block(cid) {
            return Ok(block.into_inner().1);
        }
        let ipfs = self.node()?;
        let fetch = ipfs
            .get_block(cid)
            .timeout(FETCH_TIMEOUT + Duration::from_secs(5));
        match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
            Ok(Ok(block)) => Ok(block.into_inner().1),
            Ok(Err(e)) if !ipfs.repo().is_online() => {
                debug!(%cid, error = %e, "block get interrupted by shutdown");
                Err(IpfsError::Closed)
            }
            Ok(Err(e)) => Err(IpfsError::NotFound(format!("block {cid}: {e:#}"))),
            Err(_) => Err(IpfsError::Timeout),
        }
    }

    async fn swarm_connect(&self, addr: &str) -> Result<(), IpfsError> {
        let ipfs = self.node()?;
        let addr: Multiaddr = addr
            .trim()
            .parse()
            .map_err(|e| IpfsError::InvalidInput(format!("bad multiaddr {addr:?}: {e}")))?;
        connect_multiaddr(&ipfs, addr).await
    }

    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError> {
        let ipfs = self.node()?;
        let peers = ipfs.connected().await.map_err(IpfsError::backend)?;
        Ok(peers.into_iter().map(|p| p.to_string()).collect())
    }

    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError> {
        let ipfs = self.node()?;
        let trimmed = path.trim();
        if trimmed.starts_with("/ipns/") {
            return Err(IpfsError::Unsupported(
                "ipns resolution is not available in the embedded node".into(),
            ));
        }
        let parsed: IpfsPath = trimmed
            .parse()
            .map_err(|e| IpfsError::InvalidInput(format!("bad ipfs path {path:?}: {e}")))?;
        let root = match parsed.root() {
            PathRoot::Ipld(cid) => *cid,
            _ => {
                return Err(IpfsError::Unsupported(format!(
                    "only /ipfs/ paths can be resolved, not {path:?}"
                )));
            }
        };
        if parsed.iter().next().is_none() {
            return Ok(root);
        }

        let dag = ipfs.dag();
        let walk = dag.resolve(parsed, true, &[], false);
        let (node, _) = match tokio::time::timeout(FETCH_TIMEOUT, walk).await {
            Err(_) => return Err(IpfsError::Timeout),
            Ok(Ok(resolved)) => resolved,
            Ok(Err(e)) => return Err(map_resolve_error(path, e)),
        };
        match node {
            rust_ipfs::dag::ResolvedNode::Block(block) => Ok(*block.cid()),
            rust_ipfs::dag::ResolvedNode::Link(_, destination) => Ok(destination),
            rust_ipfs::dag::ResolvedNode::DagPbData(..) => Err(IpfsError::NotFound(format!(
                "{path} names the data of a dag-pb node, not a link"
            ))),
            rust_ipfs::dag::ResolvedNode::Projection(cid, _) => Err(IpfsError::Unsupported(
                format!("{path} ends inside the document {cid}, not at a block"),
            )),
        }
    }

    async fn add_bytes(&self, data: Bytes) -> Result<Cid, IpfsError> {
        let ipfs = self.node()?;
        let len = data.len();
        let _gc = self.gc_lock.read().await;
        let path = ipfs
            .add_unixfs(data)
            .cid_version(Version::V0)
            .pin(false)
            .await
            .map_err(|e| IpfsError::Backend(format!("cannot add data: {e:#}")))?;
        let cid = path
            .root()
            .cid()
            .copied()
            .ok_or_else(|| IpfsError::Backend("add returned a path without a cid".into()))?;
        debug!(%cid, bytes = len, "added");
        Ok(cid)
    }

    async fn cat(&self, cid: &Cid) -> Result<Bytes, IpfsError> {
        let ipfs = self.node()?;
        match ipfs.cat_unixfs(*cid).await {
            Ok(bytes) => Ok(bytes),
            Err(e) => Err(map_traversal_error(cid, e)),
        }
    }

    async fn shutdown(&self) -> Result<(), IpfsError> {
        self.stop().await;
        Ok(())
    }
}

/// Dials `addr` (which must end in `/p2p/<peer id>`) and remembers the peer so the connection is
/// kept open, like Kubo's `swarm connect`.
async fn connect_multiaddr(ipfs: &Ipfs, addr: Multiaddr) -> Result<(), IpfsError> {
    let mut transport = addr.clone();
    let peer = match transport.pop() {
        Some(Protocol::P2p(peer)) => peer,
        _ => {
            return Err(IpfsError::InvalidInput(format!(
                "multiaddr {addr} must end with /p2p/<peer id>"
            )));
        }
    };
    if transport.is_empty() {
        return Err(IpfsError::InvalidInput(format!(
            "multiaddr {addr} has no transport part"
        )));
    }
    if peer == ipfs.keypair().public().to_peer_id() {
        return Err(IpfsError::InvalidInput(format!(
            "{addr} is this node's own address"
        )));
    }
    if ipfs.is_connected(peer).await.map_err(IpfsError::backend)? {
        return Ok(());
    }
    ipfs.add_peer(
        AddPeerOpt::with_peer_id(peer)
            .add_address(transport.clone())
            .keepalive(),
    )
    .await
    .map_err(IpfsError::backend)?;
    let dial = ipfs.connect(
        DialOpts::peer_id(peer)
            .addresses(vec![transport])
            .condition(PeerCondition::Always)
            .build(),
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
        Ok(Ok(_)) => {
            debug!(%addr, "connected");
            Ok(())
        }
        Ok(Err(e)) => Err(IpfsError::Backend(format!(
            "cannot connect to {addr}: {e:#}"
        ))),
        Err(_) => Err(IpfsError::Timeout),
    }
}

/// The block an identity CID stands for, or `None` for real hashes.
fn identity_block(cid: &Cid) -> Option<Block> {
    (cid.hash().code() == MULTIHASH_IDENTITY)
        .then(|| Block::new_unchecked(*cid, cid.hash().digest().to_vec()))
}

/// The CIDs a block links to; blocks of codecs rust-ipfs cannot decode cannot be walked.
fn block_links(block: &Block) -> Result<Vec<Cid>, IpfsError> {
    let mut links = Vec::new();
    match block.references(&mut links) {
        Ok(()) => Ok(links),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            Err(IpfsError::Unsupported(format!(
                "cannot walk block {} with codec 0x{:x}",
                block.cid(),
                block.cid().codec()
            )))
        }
        Err(e) => Err(IpfsError::Backend(format!(
            "malformed block {}: {e}",
            block.cid()
        ))),
    }
}

fn map_resolve_error(path: &str, err: ResolveError) -> IpfsError {
    match err {
        ResolveError::Loading(cid, e) => {
            IpfsError::NotFound(format!("{path}: block {cid} could not be loaded: {e:#}"))
        }
        ResolveError::NotFound(..)
        | ResolveError::NoLinks(..)
        | ResolveError::ListIndexOutOfRange { .. } => IpfsError::NotFound(format!("{path}: {err}")),
        ResolveError::UnsupportedDocument(..) | ResolveError::IpnsResolutionFailed(..) => {
            IpfsError::Unsupported(format!("{path}: {err}"))
        }
        other => IpfsError::InvalidInput(format!("{path}: {other}")),
    }
}

fn map_traversal_error(cid: &Cid, err: TraversalFailed) -> IpfsError {
    match err {
        TraversalFailed::Timeout { .. } => IpfsError::Timeout,
        TraversalFailed::Loading(block, e) => {
            IpfsError::NotFound(format!("{cid}: block {block} could not be loaded: {e:#}"))
        }
        TraversalFailed::Resolving(e) => map_resolve_error(&cid.to_string(), e),
        TraversalFailed::Path(e) => IpfsError::InvalidInput(format!("{cid} is not a file: {e}")),
        TraversalFailed::Walking(block, e) => {
            IpfsError::InvalidInput(format!("{cid} is not a unixfs file (at {block}): {e}"))
        }
        other => IpfsError::Backend(format!("cannot read {cid}: {other}")),
    }
}

/// Waits until the node reports at least one listening address, or `max` elapses.
async fn wait_for_listeners(ipfs: &Ipfs, max: Duration) -> Vec<Multiaddr> {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        if let Ok(addrs) = ipfs.listening_addresses().await
            && !addrs.is_empty()
        {
            return addrs;
        }
        if tokio::time::Instant::now() >= deadline {
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no node (in this or another process) holds the repo lock, or `max` elapses.
async fn wait_for_repo_unlock(repo: &Path, max: Duration) -> Result<(), IpfsError> {
    let lock_path = repo.join(REPO_LOCK_FILE);
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lock_path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(IpfsError::Backend(format!(
                    "cannot open repo lock {}: {e}",
                    lock_path.display()
                )));
            }
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                return Ok(());
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(IpfsError::Backend(format!(
                    "cannot check repo lock {}: {e}",
                    lock_path.display()
                )));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(IpfsError::Backend(format!(
                "repo {} is locked by another ipfs node",
                repo.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Loads the node key from [`IDENTITY_FILE`], creating it on first start.
fn load_or_create_identity(repo: &Path) -> Result<Keypair, IpfsError> {
    let path = repo.join(IDENTITY_FILE);
    let engine = base64::engine::general_purpose::STANDARD;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let raw = engine.decode(text.trim()).map_err(|e| {
                IpfsError::Backend(format!("corrupt identity file {}: {e}", path.display()))
            })?;
            Keypair::from_protobuf_encoding(&raw).map_err(|e| {
                IpfsError::Backend(format!("corrupt identity file {}: {e}", path.display()))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let raw = keypair
                .to_protobuf_encoding()
                .map_err(|e| IpfsError::Backend(format!("cannot encode identity: {e}")))?;
            write_private_file(&path, format!("{}\n", engine.encode(raw)).as_bytes())
                .map_err(|e| IpfsError::Backend(format!("cannot write {}: {e}", path.display())))?;
            info!(peer_id = %keypair.public().to_peer_id(), file = %path.display(), "created ipfs identity");
            Ok(keypair)
        }
        Err(e) => Err(IpfsError::Backend(format!(
            "cannot read identity file {}: {e}",
            path.display()
        ))),
    }
}

/// Writes a secret atomically (temp file + rename), readable by the owner only.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
