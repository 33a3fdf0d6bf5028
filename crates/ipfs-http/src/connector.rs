//! [`KuboConnector`]: [`IpfsConnector`] over Kubo's RPC API.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use cluster_config::IpfsHttpConfig;
use cluster_ipfs::{
    CODEC_DAG_CBOR, CODEC_DAG_PB, CODEC_RAW, IpfsConnector, IpfsError, IpfsId, IpfsPinStatus,
    PinMode, RepoStat, block_cid,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::address::NodeAddress;
use crate::rpc::{JsonStream, Multipart, Rpc, RpcError};

/// `pin/ls` is asked about at most this many CIDs per request, keeping URLs of sane length.
const PIN_LS_BATCH: usize = 100;
/// Retries of a batched `pin/ls` without the unpinned CID the node named, before asking about
/// each CID on its own.
const NOT_PINNED_ROUNDS: usize = 4;
/// Concurrent single-CID `pin/ls` requests when a batch has to be split up.
const PIN_LS_CONCURRENCY: usize = 8;

/// Timeouts and switches of the connector; the `ipfshttp` config section minus what only the
/// cluster core uses (`connect_swarms_delay`, `informer_trigger_interval`).
///
/// A zero duration means "no limit" for that kind of call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KuboSettings {
    /// Kubo RPC API address: `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>` or `/unix/<path>`.
    pub node_multiaddress: String,
    /// Budget of every call that is not a pin, an unpin or a GC.
    pub request_timeout: Duration,
    /// A pin fails when the count of fetched blocks has not grown for this long.
    pub pin_timeout: Duration,
    /// Budget of an unpin.
    pub unpin_timeout: Duration,
    /// Budget of a repo GC.
    pub repogc_timeout: Duration,
    /// Refuse every unpin.
    pub unpin_disable: bool,
}

impl From<&IpfsHttpConfig> for KuboSettings {
    fn from(cfg: &IpfsHttpConfig) -> KuboSettings {
        KuboSettings {
            node_multiaddress: cfg.node_multiaddress.clone(),
            request_timeout: cfg.ipfs_request_timeout,
            pin_timeout: cfg.pin_timeout,
            unpin_timeout: cfg.unpin_timeout,
            repogc_timeout: cfg.repogc_timeout,
            unpin_disable: cfg.unpin_disable,
        }
    }
}

impl KuboSettings {
    /// The defaults of the `ipfshttp` section (those of the Go original) for `node_multiaddress`.
    pub fn new(node_multiaddress: impl Into<String>) -> KuboSettings {
        let mut settings = KuboSettings::from(&IpfsHttpConfig::default());
        settings.node_multiaddress = node_multiaddress.into();
        settings
    }
}

/// How the node wants `block/put` told the codec: Kubo takes `cid-codec`, js-ipfs ignores it and
/// only honours the older `format`. Learned from the first raw put, whose CID tells which.
const CODEC_PARAM_UNKNOWN: u8 = 0;
const CODEC_PARAM_CID_CODEC: u8 = 1;
const CODEC_PARAM_FORMAT: u8 = 2;

/// Connects the cluster to an external Kubo daemon (or anything serving the same RPC API, such
/// as js-ipfs) through `POST /api/v0/...`.
///
/// Cheap to clone; clones share the HTTP connection pool and the failure back-off. Creating one
/// does not contact the node.
#[derive(Clone, Debug)]
pub struct KuboConnector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rpc: Rpc,
    settings: KuboSettings,
    closed: AtomicBool,
    codec_param: AtomicU8,
    /// Cleared when the node answered 404 to `pin/update`, so later updates go straight to `pin/add`.
    pin_update_supported: AtomicBool,
}

/// `Some(now + d)` unless `d` is zero, which means no limit.
fn deadline_after(d: Duration) -> Option<Instant> {
    (!d.is_zero()).then(|| Instant::now() + d)
}

async fn within<T>(
    deadline: Option<Instant>,
    fut: impl std::future::Future<Output = Result<T, RpcError>>,
) -> Result<T, RpcError> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, fut)
            .await
            .unwrap_or(Err(RpcError::Timeout)),
        None => fut.await,
    }
}

impl KuboConnector {
    /// Builds a connector for the node at `settings.node_multiaddress`.
    pub fn new(settings: KuboSettings) -> Result<KuboConnector, IpfsError> {
        let address = NodeAddress::parse(&settings.node_multiaddress)?;
        let rpc = Rpc::new(address)?;
        info!(node = %rpc.address(), "kubo connector ready");
        Ok(KuboConnector {
            inner: Arc::new(Inner {
                rpc,
                settings,
                closed: AtomicBool::new(false),
                codec_param: AtomicU8::new(CODEC_PARAM_UNKNOWN),
                pin_update_supported: AtomicBool::new(true),
            }),
        })
    }

    /// Builds a connector from the `ipfs_connector.ipfshttp` config section.
    pub fn from_config(cfg: &IpfsHttpConfig) -> Result<KuboConnector, IpfsError> {
        KuboConnector::new(KuboSettings::from(cfg))
    }

    /// The settings in force.
    pub fn settings(&self) -> &KuboSettings {
        &self.inner.settings
    }

    /// Where the node's API is reached.
    pub fn node_address(&self) -> &NodeAddress {
        self.inner.rpc.address()
    }

    /// True while requests are being throttled because the node kept failing.
    pub fn is_throttled(&self) -> bool {
        self.inner.rpc.backoff.is_throttling()
    }

    /// Requests that failed in a row without any answer from the node.
    pub fn consecutive_failures(&self) -> u32 {
        self.inner.rpc.backoff.consecutive_failures()
    }

    /// Stores several blocks with the same codec in one `block/put` request (Kubo stores every
    /// file of a multipart body) and returns their CIDs in input order. Blocks the node did not
    /// confirm (js-ipfs stores only one file per request) are put one at a time.
    pub async fn block_put_many(
        &self,
        blocks: &[Bytes],
        codec: u64,
    ) -> Result<Vec<Cid>, IpfsError> {
        self.inner.check_open()?;
        let expected = blocks
            .iter()
            .map(|b| block_cid(b, codec))
            .collect::<Result<Vec<_>, _>>()?;
        if blocks.len() <= 1 {
            for block in blocks {
                self.block_put(block.clone(), codec).await?;
            }
            return Ok(expected);
        }
        let name = codec_name(codec)?;
        let param = match self.inner.codec_param.load(Ordering::Acquire) {
            CODEC_PARAM_FORMAT => "format",
            _ => "cid-codec",
        };
        let confirmed = self
            .inner
            .block_put_request(blocks, param, name)
            .await
            .map_err(|e| e.into_ipfs("block/put"))?;
        let mut missing = 0;
        for (block, cid) in blocks.iter().zip(&expected) {
            if !confirmed.iter().any(|c| same_block(c, cid)) {
                missing += 1;
                self.block_put(block.clone(), codec).await?;
            }
        }
        debug!(blocks = blocks.len(), missing, "multi-block put done");
        Ok(expected)
    }
}

impl Inner {
    fn check_open(&self) -> Result<(), IpfsError> {
        if self.closed.load(Ordering::Acquire) {
            Err(IpfsError::Closed)
        } else {
            Ok(())
        }
    }

    fn request_deadline(&self) -> Option<Instant> {
        deadline_after(self.settings.request_timeout)
    }

    async fn json(&self, command: &str, query: &[(&str, String)]) -> Result<Value, IpfsError> {
        self.check_open()?;
        self.rpc
            .json(command, query, self.request_deadline())
            .await
            .map_err(|e| e.into_ipfs(command))
    }

    async fn bytes(&self, command: &str, query: &[(&str, String)]) -> Result<Bytes, IpfsError> {
        self.check_open()?;
        self.rpc
            .bytes(command, query, self.request_deadline())
            .await
            .map_err(|e| e.into_ipfs(command))
    }

    /// One `pin/ls` for `cids`, of pins of type `kind` (`all` includes indirect ones, which
    /// costs Kubo a walk of every recursive pin for each CID not pinned otherwise). Unpinned CIDs
    /// make the node fail the whole request.
    async fn pin_ls_request(
        &self,
        cids: &[Cid],
        kind: &str,
    ) -> Result<Vec<IpfsPinStatus>, RpcError> {
        let mut query: Vec<(&str, String)> = cids.iter().map(|c| ("arg", c.to_string())).collect();
        query.push(("type", kind.into()));
        let answer = self
            .rpc
            .json("pin/ls", &query, self.request_deadline())
            .await?;
        let keys = answer
            .get("Keys")
            .and_then(Value::as_object)
            .ok_or_else(|| RpcError::Decode(format!("pin/ls answer without Keys: {answer}")))?;
        // the node may print CIDs in another base or version than asked: match by multihash
        let mut by_hash = HashMap::with_capacity(keys.len());
        for (key, entry) in keys {
            let cid = parse_cid(key).map_err(RpcError::Decode)?;
            let kind = entry
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let status = parse_pin_type(kind)
                .ok_or_else(|| RpcError::Decode(format!("unknown pin type {kind:?} for {key}")))?;
            by_hash.insert(cid.hash().to_bytes(), status);
        }
        Ok(cids
            .iter()
            .map(|c| {
                by_hash
                    .get(&c.hash().to_bytes())
                    .copied()
                    .unwrap_or(IpfsPinStatus::Unpinned)
            })
            .collect())
    }

    async fn pin_ls_one(&self, cid: &Cid) -> Result<IpfsPinStatus, IpfsError> {
        self.check_open()?;
        match self.pin_ls_request(std::slice::from_ref(cid), "all").await {
            Ok(statuses) => Ok(statuses[0]),
            Err(e) if is_not_pinned(&e) => Ok(IpfsPinStatus::Unpinned),
            Err(e) => Err(e.into_ipfs("pin/ls")),
        }
    }

    /// Whether `cid` has a pin of exactly this kind; cheap, unlike [`Inner::pin_ls_one`], because
    /// no indirect pins are looked for.
    async fn has_pin(&self, cid: &Cid, mode: PinMode) -> Result<bool, IpfsError> {
        self.check_open()?;
        let (kind, wanted) = match mode {
            PinMode::Recursive => ("recursive", IpfsPinStatus::Recursive),
            PinMode::Direct => ("direct", IpfsPinStatus::Direct),
        };
        match self.pin_ls_request(std::slice::from_ref(cid), kind).await {
            Ok(statuses) => Ok(statuses[0] == wanted),
            Err(e) if is_not_pinned(&e) => Ok(false),
            Err(e) => Err(e.into_ipfs("pin/ls")),
        }
    }

    /// Statuses of up to [`PIN_LS_BATCH`] CIDs, in as few requests as the node allows.
    ///
    /// Kubo and js-ipfs fail a multi-CID `pin/ls` at the first unpinned CID, naming it; that one
    /// is known then, so the rest is asked again. When that keeps happening, the remaining CIDs
    /// are asked about one by one, several at a time.
    async fn pin_ls_chunk(&self, chunk: &[Cid]) -> Result<Vec<IpfsPinStatus>, IpfsError> {
        let mut statuses = vec![IpfsPinStatus::Unpinned; chunk.len()];
        let mut asking: Vec<usize> = (0..chunk.len()).collect();
        for _ in 0..=NOT_PINNED_ROUNDS {
            if asking.is_empty() {
                return Ok(statuses);
            }
            let cids: Vec<Cid> = asking.iter().map(|&i| chunk[i]).collect();
            match self.pin_ls_request(&cids, "all").await {
                Ok(found) => {
                    for (&i, status) in asking.iter().zip(found) {
                        statuses[i] = status;
                    }
                    return Ok(statuses);
                }
                Err(e) if is_not_pinned(&e) => {
                    let Some(named) = e.node_message().and_then(quoted_cid) else {
                        break;
                    };
                    let before = asking.len();
                    asking.retain(|&i| chunk[i] != named);
                    if asking.len() == before {
                        break;
                    }
                }
                Err(e) => return Err(e.into_ipfs("pin/ls")),
            }
        }
        // futures built up front: a mapping closure in the stream trips async-trait's Send
        // inference over the borrowed CIDs
        let lookups: Vec<_> = asking.iter().map(|&i| self.pin_ls_one(&chunk[i])).collect();
        let singles: Vec<Result<IpfsPinStatus, IpfsError>> = futures::stream::iter(lookups)
            .buffered(PIN_LS_CONCURRENCY)
            .collect()
            .await;
        for (&i, status) in asking.iter().zip(singles) {
            statuses[i] = status?;
        }
        Ok(statuses)
    }

    /// Sends `block/put` with `blocks` and returns the CIDs the node reports.
    async fn block_put_request(
        &self,
        blocks: &[Bytes],
        codec_param: &str,
        codec: &str,
    ) -> Result<Vec<Cid>, RpcError> {
        self.block_put_hashed(blocks, codec_param, codec, "sha2-256").await
    }

    /// `block/put` of several blocks with one codec and hash function; returns the CIDs the
    /// node answered.
    async fn block_put_hashed(
        &self,
        blocks: &[Bytes],
        codec_param: &str,
        codec: &str,
        mhtype: &str,
    ) -> Result<Vec<Cid>, RpcError> {
        let query = [
            (codec_param, codec.to_string()),
            ("mhtype", mhtype.to_string()),
            ("mhlen", "-1".to_string()),
            ("pin", "false".to_string()),
            ("allow-big-block", "true".to_string()),
        ];
        let deadline = self.request_deadline();
        let body = Multipart::new(blocks);
        let response = self
            .rpc
            .send("block/put", &query, Some(body), deadline, true)
            .await?;
        let mut answers = JsonStream::new(response);
        let mut cids = Vec::new();
        while let Some(value) = answers.next_within(deadline).await {
            let value = value?;
            let key = value.get("Key").and_then(Value::as_str).ok_or_else(|| {
                RpcError::Decode(format!("block/put answer without Key: {value}"))
            })?;
            cids.push(parse_cid(key).map_err(RpcError::Decode)?);
        }
        Ok(cids)
    }

    /// Streams `pin/add` (or `pin/update`) answers, enforcing the no-progress watchdog.
    async fn run_pin(
        &self,
        command: &str,
        query: &[(&str, String)],
        progress: &mpsc::Sender<u64>,
    ) -> Result<(), IpfsError> {
        let pin_timeout = self.settings.pin_timeout;
        let stalled = || {
            warn!(
                command,
                ?pin_timeout,
                "pin made no progress in time, cancelling it"
            );
            IpfsError::Timeout
        };
        let mut deadline = deadline_after(pin_timeout);
        let response = match self.rpc.send(command, query, None, deadline, false).await {
            Ok(response) => response,
            Err(RpcError::Timeout) => return Err(stalled()),
            Err(e) => return Err(e.into_ipfs(command)),
        };
        let mut answers = JsonStream::new(response);
        let mut fetched = 0u64;
        let mut confirmed = false;
        while let Some(value) = answers.next_within(deadline).await {
            let value = match value {
                Ok(value) => value,
                Err(RpcError::Timeout) => return Err(stalled()),
                Err(e) => return Err(e.into_ipfs(command)),
            };
            if let Some(count) = value.get("Progress").and_then(as_u64)
                && count > fetched
            {
                fetched = count;
                deadline = deadline_after(pin_timeout);
                // the caller only needs the latest value; a full channel may skip some
                let _ = progress.try_send(fetched);
            }
            if value.get("Pins").is_some() {
                confirmed = true;
            }
        }
        if !confirmed {
            return Err(IpfsError::Backend(format!(
                "{command}: the node ended its answer without confirming the pin"
            )));
        }
        // a finished pin holds at least its root, even when the node reported no progress
        if fetched == 0 {
            let _ = progress.try_send(1);
        }
        Ok(())
    }
}

#[async_trait]
impl IpfsConnector for KuboConnector {
    async fn id(&self) -> Result<IpfsId, IpfsError> {
        let answer = self.inner.json("id", &[]).await?;
        let id = answer
            .get("ID")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| IpfsError::Backend(format!("id: answer without ID: {answer}")))?
            .to_string();
        let suffix = format!("/p2p/{id}");
        let addresses = answer
            .get("Addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|addr| {
                if addr.ends_with(&suffix) {
                    addr.to_string()
                } else {
                    format!("{addr}{suffix}")
                }
            })
            .collect();
        Ok(IpfsId { id, addresses })
    }

    async fn pin(
        &self,
        cid: &Cid,
        mode: PinMode,
        progress: mpsc::Sender<u64>,
    ) -> Result<(), IpfsError> {
        let inner = &self.inner;
        let span = info_span!("kubo_pin", %cid, %mode);
        async {
            inner.check_open()?;
            // re-pinning what is pinned costs the node a walk of the whole DAG
            if inner.has_pin(cid, mode).await? {
                debug!("already pinned");
                return Ok(());
            }
            let query = [
                ("arg", cid.to_string()),
                ("recursive", (mode == PinMode::Recursive).to_string()),
                ("progress", "true".to_string()),
            ];
            match inner.run_pin("pin/add", &query, &progress).await {
                Ok(()) => info!("pinned"),
                // Kubo and js-ipfs refuse to add a direct pin under a recursive one, which
                // already protects the block: the desired state holds
                Err(IpfsError::InvalidInput(m) | IpfsError::Backend(m))
                    if mode == PinMode::Direct && m.contains("already pinned recursively") =>
                {
                    debug!("already pinned recursively");
                }
                Err(e) => return Err(e),
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn pin_update(
        &self,
        from: &Cid,
        to: &Cid,
        progress: mpsc::Sender<u64>,
    ) -> Result<(), IpfsError> {
        let inner = &self.inner;
        inner.check_open()?;
        let span = info_span!("kubo_pin_update", %from, %to);
        let updated = async {
            if from == to || !inner.pin_update_supported.load(Ordering::Acquire) {
                return Ok(false);
            }
            if !inner.has_pin(from, PinMode::Recursive).await? {
                debug!("old cid is not pinned recursively, pinning the new one from scratch");
                return Ok(false);
            }
            if inner.has_pin(to, PinMode::Recursive).await? {
                return Ok(true);
            }
            let query = [
                ("arg", from.to_string()),
                ("arg", to.to_string()),
                ("unpin", "false".to_string()),
            ];
            // pin/update reports no progress, so the ordinary request budget bounds it
            let deadline = inner.request_deadline();
            let answer = within(deadline, async {
                let response = inner
                    .rpc
                    .send("pin/update", &query, None, deadline, false)
                    .await?;
                let mut answers = JsonStream::new(response);
                let mut last = None;
                while let Some(value) = answers.next().await {
                    last = Some(value?);
                }
                Ok(last)
            })
            .await;
            match answer {
                Ok(_) => {
                    let _ = progress.try_send(1);
                    info!("pin updated");
                    Ok(true)
                }
                Err(e) if e.is_unknown_command() => {
                    info!("the node has no pin/update, falling back to pin/add from now on");
                    inner.pin_update_supported.store(false, Ordering::Release);
                    Ok(false)
                }
                Err(e) => Err(e.into_ipfs("pin/update")),
            }
        }
        .instrument(span)
        .await?;
        if updated {
            Ok(())
        } else {
            self.pin(to, PinMode::Recursive, progress).await
        }
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError> {
        let inner = &self.inner;
        inner.check_open()?;
        if inner.settings.unpin_disable {
            return Err(IpfsError::Unsupported(
                "unpinning is disabled on this peer (ipfshttp.unpin_disable)".into(),
            ));
        }
        let query = [("arg", cid.to_string()), ("recursive", "true".to_string())];
        let deadline = deadline_after(inner.settings.unpin_timeout);
        match inner.rpc.json("pin/rm", &query, deadline).await {
            Ok(_) => {
                info!(%cid, "unpinned");
                Ok(())
            }
            Err(e) if is_not_pinned(&e) => {
                debug!(%cid, "was not pinned");
                Ok(())
            }
            Err(e) => Err(e.into_ipfs("pin/rm")),
        }
    }

    async fn pin_ls_cid(&self, cid: &Cid) -> Result<IpfsPinStatus, IpfsError> {
        self.inner.pin_ls_one(cid).await
    }

    async fn pin_ls_cids(&self, cids: &[Cid]) -> Result<Vec<IpfsPinStatus>, IpfsError> {
        let inner = &self.inner;
        inner.check_open()?;
        let mut statuses = Vec::with_capacity(cids.len());
        for chunk in cids.chunks(PIN_LS_BATCH) {
            statuses.extend(inner.pin_ls_chunk(chunk).await?);
        }
        Ok(statuses)
    }

    fn pin_ls(
        &self,
        recursive: bool,
        direct: bool,
    ) -> BoxStream<'static, Result<(Cid, IpfsPinStatus), IpfsError>> {
        // one listing per kind: Kubo's type=all would add every indirect pin (a walk of all DAGs)
        let mut kinds = VecDeque::new();
        if recursive {
            kinds.push_back("recursive");
        }
        if direct {
            kinds.push_back("direct");
        }
        let state = PinListing {
            inner: self.inner.clone(),
            deadline: self.inner.request_deadline(),
            kinds,
            current: None,
            pending: VecDeque::new(),
            failed: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            let item = state.next_item().await?;
            Some((item, state))
        })
        .boxed()
    }

    async fn repo_stat(&self) -> Result<RepoStat, IpfsError> {
        let answer = self
            .inner
            .json("repo/stat", &[("size-only", "true".to_string())])
            .await?;
        let field = |name: &str| -> Result<u64, IpfsError> {
            match answer.get(name) {
                None | Some(Value::Null) => Ok(0),
                Some(value) => as_u64(value).ok_or_else(|| {
                    IpfsError::Backend(format!("repo/stat: {name} is not a number: {value}"))
                }),
            }
        };
        Ok(RepoStat {
            repo_size: field("RepoSize")?,
            storage_max: field("StorageMax")?,
        })
    }

    async fn repo_gc(&self) -> Result<Vec<Cid>, IpfsError> {
        let inner = &self.inner;
        inner.check_open()?;
        let deadline = deadline_after(inner.settings.repogc_timeout);
        let query = [("stream-errors", "true".to_string())];
        let outcome = within(deadline, async {
            let response = inner
                .rpc
                .send("repo/gc", &query, None, deadline, true)
                .await?;
            let mut answers = JsonStream::new(response);
            let mut removed = Vec::new();
            let mut errors = Vec::new();
            while let Some(value) = answers.next().await {
                let value = value?;
                if let Some(error) = value.get("Error").and_then(Value::as_str)
                    && !error.is_empty()
                {
                    errors.push(error.to_string());
                    continue;
                }
                let key = match value.get("Key") {
                    Some(Value::String(s)) => Some(s.as_str()),
                    Some(Value::Object(link)) => link.get("/").and_then(Value::as_str),
                    _ => None,
                };
                if let Some(key) = key {
                    removed.push(parse_cid(key).map_err(RpcError::Decode)?);
                }
            }
            Ok((removed, errors))
        })
        .await
        .map_err(|e| e.into_ipfs("repo/gc"))?;
        let (removed, errors) = outcome;
        info!(
            removed = removed.len(),
            errors = errors.len(),
            "repo gc done"
        );
        if let Some(first) = errors.first() {
            return Err(IpfsError::Backend(format!(
                "repo/gc removed {} blocks but failed {} times, first: {first}",
                removed.len(),
                errors.len()
            )));
        }
        Ok(removed)
    }

    async fn block_put(&self, data: Bytes, codec: u64) -> Result<Cid, IpfsError> {
        let inner = &self.inner;
        inner.check_open()?;
        let expected = block_cid(&data, codec)?;
        let name = codec_name(codec)?;
        let blocks = [data];
        let known = inner.codec_param.load(Ordering::Acquire);
        let first_param = if known == CODEC_PARAM_FORMAT {
            "format"
        } else {
            "cid-codec"
        };
        let first = inner.block_put_request(&blocks, first_param, name).await;
        if matches!(&first, Ok(cids) if cids.first().is_some_and(|c| same_block(c, &expected))) {
            if known == CODEC_PARAM_UNKNOWN && codec != CODEC_DAG_PB {
                // dag-pb comes out the same either way, so only other codecs tell
                inner
                    .codec_param
                    .store(CODEC_PARAM_CID_CODEC, Ordering::Release);
            }
            return Ok(expected);
        }
        let node_answered = matches!(
            &first,
            Ok(_) | Err(RpcError::Status { .. } | RpcError::Decode(_))
        );
        if known != CODEC_PARAM_UNKNOWN || !node_answered {
            return Err(match first {
                Ok(cids) => IpfsError::Backend(format!(
                    "block/put: node stored the block as {:?}, expected {expected}",
                    cids.first().map(Cid::to_string)
                )),
                Err(e) => e.into_ipfs("block/put"),
            });
        }
        // the node ignored cid-codec (js-ipfs does); the legacy parameter may work
        let retry = inner
            .block_put_request(&blocks, "format", name)
            .await
            .map_err(|e| e.into_ipfs("block/put"))?;
        if retry.first().is_some_and(|c| same_block(c, &expected)) {
            info!("node takes the block codec as `format`, using that from now on");
            inner
                .codec_param
                .store(CODEC_PARAM_FORMAT, Ordering::Release);
            return Ok(expected);
        }
        let first_outcome = match first {
            Ok(cids) => format!("{:?}", cids.first().map(Cid::to_string)),
            Err(e) => e.into_ipfs("block/put").to_string(),
        };
        Err(IpfsError::Backend(format!(
            "block/put: node stored the block as {:?} with format and answered {first_outcome} \
             with cid-codec, expected {expected}",
            retry.first().map(Cid::to_string)
        )))
    }

    async fn put_blocks(&self, blocks: Vec<(Cid, Bytes)>) -> Result<(), IpfsError> {
        self.inner.check_open()?;
        for (cid, data) in &blocks {
            cluster_ipfs::verify_block(cid, data)?;
        }
        // One request per run of blocks sharing codec and hash function (an add alternates
        // raw leaves and dag-pb parents, so runs are as long as the layout allows).
        let mut rest = &blocks[..];
        while let Some((first, _)) = rest.first() {
            let (codec, code) = (first.codec(), first.hash().code());
            // ...and bounded in size: js-ipfs refuses request bodies over 1 MiB (413).
            let mut bytes = 0usize;
            let len = rest
                .iter()
                .take_while(|(c, d)| {
                    bytes += d.len();
                    c.codec() == codec && c.hash().code() == code && (bytes <= MAX_PUT_REQUEST_BYTES || bytes == d.len())
                })
                .count();
            let (run, tail) = rest.split_at(len);
            rest = tail;
            let data: Vec<Bytes> = run.iter().map(|(_, d)| d.clone()).collect();
            if code == 0x12 {
                // sha2-256 takes the checked path, which also learns the codec parameter.
                self.block_put_many(&data, codec).await?;
                continue;
            }
            let mhtype = cluster_ipfs::multihash_name(code)
                .ok_or_else(|| IpfsError::Unsupported(format!("hash function 0x{code:x}")))?;
            let param = match self.inner.codec_param.load(Ordering::Acquire) {
                CODEC_PARAM_FORMAT => "format",
                _ => "cid-codec",
            };
            let confirmed = self
                .inner
                .block_put_hashed(&data, param, codec_name(codec)?, &mhtype)
                .await
                .map_err(|e| e.into_ipfs("block/put"))?;
            // Nodes key blocks by multihash, so the hash is what must come back. Blocks left
            // unconfirmed (js-ipfs stores one file per request) are put one at a time.
            for (cid, data) in run.iter().filter(|(c, _)| !confirmed.iter().any(|got| got.hash() == c.hash())) {
                let again = self
                    .inner
                    .block_put_hashed(std::slice::from_ref(data), param, codec_name(codec)?, &mhtype)
                    .await
                    .map_err(|e| e.into_ipfs("block/put"))?;
                if !again.iter().any(|got| got.hash() == cid.hash()) {
                    return Err(IpfsError::Backend(format!("block/put did not store {cid} (mhtype {mhtype})")));
                }
            }
        }
        Ok(())
    }

    async fn block_get(&self, cid: &Cid) -> Result<Bytes, IpfsError> {
        self.inner
            .bytes("block/get", &[("arg", cid.to_string())])
            .await
    }

    async fn swarm_connect(&self, addr: &str) -> Result<(), IpfsError> {
        let addr = addr.trim();
        addr.parse::<cluster_ipfs::Multiaddr>()
            .map_err(|e| IpfsError::InvalidInput(format!("bad multiaddr {addr:?}: {e}")))?;
        // Kubo dials by peer id, so the address must name one
        let names_peer = addr
            .rsplit_once("/p2p/")
            .is_some_and(|(_, peer)| peer.parse::<cluster_ipfs::PeerId>().is_ok());
        if !names_peer {
            return Err(IpfsError::InvalidInput(format!(
                "multiaddr {addr:?} does not end with /p2p/<peer id>"
            )));
        }
        self.inner
            .json("swarm/connect", &[("arg", addr.to_string())])
            .await?;
        debug!(%addr, "swarm connected");
        Ok(())
    }

    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError> {
        let answer = self.inner.json("swarm/peers", &[]).await?;
        let mut peers: Vec<String> = answer
            .get("Peers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("Peer").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        peers.sort();
        peers.dedup();
        Ok(peers)
    }

    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError> {
        let path = path.trim();
        if let Some(rest) = path.strip_prefix("/ipfs/") {
            let root = rest.split('/').next().unwrap_or_default();
            Cid::try_from(root)
                .map_err(|e| IpfsError::InvalidInput(format!("bad cid in path {path:?}: {e}")))?;
        } else if !path.starts_with("/ipns/") {
            return Err(IpfsError::InvalidInput(format!(
                "path {path:?} must start with /ipfs/ or /ipns/"
            )));
        }
        let answer = self
            .inner
            .json(
                "resolve",
                &[("arg", path.to_string()), ("recursive", "true".to_string())],
            )
            .await?;
        let resolved = answer
            .get("Path")
            .and_then(Value::as_str)
            .ok_or_else(|| IpfsError::Backend(format!("resolve: answer without Path: {answer}")))?;
        let cid_part = resolved
            .strip_prefix("/ipfs/")
            .map(|rest| rest.split('/').next().unwrap_or_default())
            .ok_or_else(|| {
                IpfsError::Backend(format!(
                    "resolve: {path} resolved to a non-ipfs path {resolved}"
                ))
            })?;
        parse_cid(cid_part).map_err(|e| IpfsError::Backend(format!("resolve: {e}")))
    }

    async fn add_bytes(&self, data: Bytes) -> Result<Cid, IpfsError> {
        let inner = &self.inner;
        inner.check_open()?;
        let query = [
            ("pin", "false".to_string()),
            ("cid-version", "0".to_string()),
            ("raw-leaves", "false".to_string()),
            ("chunker", "size-262144".to_string()),
            ("hash", "sha2-256".to_string()),
            ("progress", "false".to_string()),
            ("quieter", "true".to_string()),
        ];
        let deadline = inner.request_deadline();
        let body = Multipart::new(&[data]);
        let root = within(deadline, async {
            let response = inner
                .rpc
                .send("add", &query, Some(body), deadline, true)
                .await?;
            let mut answers = JsonStream::new(response);
            let mut root = None;
            while let Some(value) = answers.next().await {
                if let Some(hash) = value?.get("Hash").and_then(Value::as_str) {
                    root = Some(hash.to_string());
                }
            }
            Ok(root)
        })
        .await
        .map_err(|e| e.into_ipfs("add"))?;
        let root =
            root.ok_or_else(|| IpfsError::Backend("add: the node reported no hash".into()))?;
        parse_cid(&root).map_err(|e| IpfsError::Backend(format!("add: {e}")))
    }

    async fn cat(&self, cid: &Cid) -> Result<Bytes, IpfsError> {
        self.inner.bytes("cat", &[("arg", cid.to_string())]).await
    }

    async fn shutdown(&self) -> Result<(), IpfsError> {
        self.inner.closed.store(true, Ordering::Release);
        Ok(())
    }
}

/// State of one `pin_ls` stream: the kinds still to list and the answer being read.
struct PinListing {
    inner: Arc<Inner>,
    deadline: Option<Instant>,
    kinds: VecDeque<&'static str>,
    current: Option<JsonStream>,
    pending: VecDeque<(Cid, IpfsPinStatus)>,
    failed: bool,
}

impl PinListing {
    async fn next_item(&mut self) -> Option<Result<(Cid, IpfsPinStatus), IpfsError>> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            let result = self.advance().await?;
            if let Err(e) = result {
                self.failed = true;
                return Some(Err(e));
            }
        }
    }

    /// Reads the next answer into `pending`; `None` once every kind is listed.
    async fn advance(&mut self) -> Option<Result<(), IpfsError>> {
        if self.current.is_none() {
            let kind = self.kinds.pop_front()?;
            if let Err(e) = self.inner.check_open() {
                return Some(Err(e));
            }
            let query = [("type", kind.to_string()), ("stream", "true".to_string())];
            match self
                .inner
                .rpc
                .send("pin/ls", &query, None, self.deadline, true)
                .await
            {
                Ok(response) => self.current = Some(JsonStream::new(response)),
                Err(e) => return Some(Err(e.into_ipfs("pin/ls"))),
            }
        }
        let stream = self.current.as_mut()?;
        match stream.next_within(self.deadline).await {
            None => {
                self.current = None;
                Some(Ok(()))
            }
            Some(Err(e)) => Some(Err(e.into_ipfs("pin/ls"))),
            Some(Ok(value)) => Some(self.take(&value)),
        }
    }

    /// Accepts the streamed form (`{"Cid","Type"}`) and, from nodes ignoring `stream`, the
    /// whole-listing form (`{"Keys":{cid:{"Type"}}}`).
    fn take(&mut self, value: &Value) -> Result<(), IpfsError> {
        let bad = |why: String| IpfsError::Backend(format!("pin/ls: {why}"));
        let mut entry = |cid: &str, kind: &str| -> Result<(), IpfsError> {
            let cid = parse_cid(cid).map_err(bad)?;
            let status = parse_pin_type(kind)
                .ok_or_else(|| bad(format!("unknown pin type {kind:?} for {cid}")))?;
            // a listing of one kind holds only that kind; anything else is not what was asked
            if matches!(status, IpfsPinStatus::Recursive | IpfsPinStatus::Direct) {
                self.pending.push_back((cid, status));
            }
            Ok(())
        };
        if let Some(keys) = value.get("Keys").and_then(Value::as_object) {
            for (cid, info) in keys {
                entry(
                    cid,
                    info.get("Type").and_then(Value::as_str).unwrap_or_default(),
                )?;
            }
            return Ok(());
        }
        match (
            value.get("Cid").and_then(Value::as_str),
            value.get("Type").and_then(Value::as_str),
        ) {
            (Some(cid), Some(kind)) => entry(cid, kind),
            _ => Err(bad(format!("unexpected entry {value}"))),
        }
    }
}

/// Whether the node stored the block `expected` names. Kubo answers CIDv1 even for dag-pb, where
/// the cluster uses CIDv0; blocks are stored by multihash, so the version does not matter.
fn same_block(got: &Cid, expected: &Cid) -> bool {
    got.codec() == expected.codec() && got.hash() == expected.hash()
}

/// The multicodec name `block/put` takes for `codec`.
fn codec_name(codec: u64) -> Result<&'static str, IpfsError> {
    Ok(match codec {
        CODEC_RAW => "raw",
        CODEC_DAG_PB => "dag-pb",
        CODEC_DAG_CBOR => "dag-cbor",
        0x0129 => "dag-json",
        0x0200 => "json",
        0x51 => "cbor",
        0x72 => "libp2p-key",
        0x0202 => "car",
        other => {
            return Err(IpfsError::InvalidInput(format!(
                "codec 0x{other:x} has no name block/put knows"
            )));
        }
    })
}

fn parse_pin_type(kind: &str) -> Option<IpfsPinStatus> {
    match kind {
        "recursive" => Some(IpfsPinStatus::Recursive),
        "direct" => Some(IpfsPinStatus::Direct),
        // Kubo and js-ipfs say "indirect through <cid>"
        k if k.starts_with("indirect") => Some(IpfsPinStatus::Indirect),
        _ => None,
    }
}

/// Kubo: "not pinned or pinned indirectly"; js-ipfs: "is not pinned", "… is pinned indirectly".
fn is_not_pinned(err: &RpcError) -> bool {
    err.node_message().is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("not pinned") || m.contains("pinned indirectly")
    })
}

/// The CID in the first single-quoted part of a message, as in "path '/ipfs/<cid>' is not pinned".
fn quoted_cid(message: &str) -> Option<Cid> {
    let (_, rest) = message.split_once('\'')?;
    let (quoted, _) = rest.split_once('\'')?;
    parse_cid(quoted).ok()
}

/// A CID as a node prints it: any multibase, `/ipfs/` prefix allowed (js-ipfs even prints
/// some CIDv0 with a base58btc multibase prefix, `zQm…`, which decodes to the same CID).
fn parse_cid(text: &str) -> Result<Cid, String> {
    let text = text.trim();
    Cid::try_from(text).map_err(|e| format!("node sent an invalid cid {text:?}: {e}"))
}

/// Numbers as Kubo sends them, or as strings as js-ipfs does.
fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_cids_and_numbers() {
        let v0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
        let expected: Cid = v0.parse().unwrap();
        assert_eq!(parse_cid(v0).unwrap(), expected);
        assert_eq!(parse_cid(&format!("z{v0}")).unwrap(), expected);
        assert_eq!(parse_cid(&format!("/ipfs/{v0}")).unwrap(), expected);
        // bafkqaaa in base58btc, as js-ipfs prints it
        assert_eq!(
            parse_cid("z2yYDV").unwrap(),
            "bafkqaaa".parse::<Cid>().unwrap()
        );
        assert!(parse_cid("nope").is_err());
        assert_eq!(
            quoted_cid(&format!("path '/ipfs/{v0}' is not pinned")),
            Some(expected)
        );
        assert_eq!(
            quoted_cid(&format!("path '{v0}' is not pinned")),
            Some(expected)
        );
        assert_eq!(quoted_cid("not pinned or pinned indirectly"), None);

        let v1 = Cid::new_v1(CODEC_DAG_PB, *expected.hash());
        assert!(same_block(&v1, &expected));
        assert!(!same_block(
            &Cid::new_v1(CODEC_RAW, *expected.hash()),
            &expected
        ));

        assert_eq!(as_u64(&serde_json::json!(12)), Some(12));
        assert_eq!(
            as_u64(&serde_json::json!("9007199254740991")),
            Some(9007199254740991)
        );
        assert_eq!(as_u64(&serde_json::json!("x")), None);
        assert_eq!(as_u64(&serde_json::json!(-1)), None);
    }

    #[test]
    fn pin_types() {
        assert_eq!(parse_pin_type("recursive"), Some(IpfsPinStatus::Recursive));
        assert_eq!(parse_pin_type("direct"), Some(IpfsPinStatus::Direct));
        assert_eq!(
            parse_pin_type("indirect through QmX"),
            Some(IpfsPinStatus::Indirect)
        );
        assert_eq!(parse_pin_type("indirect"), Some(IpfsPinStatus::Indirect));
        assert_eq!(parse_pin_type("weird"), None);
    }

    #[test]
    fn settings_follow_the_config_section() {
        let mut cfg = IpfsHttpConfig {
            node_multiaddress: "/unix/run/ipfs.sock".into(),
            unpin_disable: true,
            ..IpfsHttpConfig::default()
        };
        let settings = KuboSettings::from(&cfg);
        assert_eq!(settings.node_multiaddress, "/unix/run/ipfs.sock");
        assert_eq!(settings.pin_timeout, Duration::from_secs(120));
        assert_eq!(settings.request_timeout, Duration::from_secs(300));
        assert!(settings.unpin_disable);
        assert_eq!(
            KuboSettings::new("/ip4/1.2.3.4/tcp/5001").unpin_timeout,
            Duration::from_secs(3 * 3600)
        );
        assert!(KuboConnector::from_config(&cfg).is_ok());
        cfg.node_multiaddress = "nonsense".into();
        assert!(matches!(
            KuboConnector::from_config(&cfg),
            Err(IpfsError::InvalidInput(_))
        ));
    }
}

/// Most block bytes sent in one `block/put` request (a larger single block goes alone).
const MAX_PUT_REQUEST_BYTES: usize = 512 * 1024;
