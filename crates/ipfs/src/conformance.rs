//! The behavioural contract of [`IpfsConnector`], as a suite any backend's tests can run.
//!
//! Each check takes an `Arc<dyn IpfsConnector>`, uses content unique to the call (so checks can
//! share one node), bounds every operation with a timeout, and returns a [`ConformanceError`]
//! describing the first broken expectation instead of panicking, so a backend's test decides how
//! to report it. [`run_all`] runs every single-node check in sequence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::{
    CODEC_DAG_PB, CODEC_RAW, IpfsConnector, IpfsError, IpfsPinStatus, MULTIHASH_IDENTITY, PinMode,
};

/// Budget for any single connector call in the suite; generous because debug builds are slow.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Kubo's CID for `"hello world\n"` added with default settings.
pub const HELLO_WORLD_CID: &str = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
/// Kubo's CID for an empty file added with default settings.
pub const EMPTY_FILE_CID: &str = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH";
/// Kubo's CID for the 1 MiB file whose byte `i` is `i % 251`, added with default settings.
pub const MIB_MOD_251_CID: &str = "QmXgkY4miMKJBrg8YYke4xw6C2n8WNsUc1GXLhN84k4QM3";
/// CIDv1 of `"hello world\n"` stored as a single raw block.
pub const HELLO_WORLD_RAW_CID: &str = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4";
/// The empty raw block under the identity multihash: available without any storage or network.
pub const EMPTY_IDENTITY_CID: &str = "bafkqaaa";

/// A broken expectation, with enough context to find the failing step.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConformanceError(pub String);

/// Outcome of one conformance check.
pub type Outcome = Result<(), ConformanceError>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(ConformanceError(format!($($fmt)+)));
        }
    };
}

/// Awaits a connector call with [`OP_TIMEOUT`], turning both failure kinds into a
/// [`ConformanceError`] naming the step.
async fn step<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, IpfsError>>,
) -> Result<T, ConformanceError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ConformanceError(format!("{what}: {e}"))),
        Err(_) => Err(ConformanceError(format!(
            "{what}: no answer within {OP_TIMEOUT:?}"
        ))),
    }
}

fn parse_cid(text: &str) -> Result<Cid, ConformanceError> {
    text.parse()
        .map_err(|e| ConformanceError(format!("bad cid constant {text}: {e}")))
}

/// A seed no other call in this process gets, so checks sharing a node never share content.
pub fn unique_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Deterministic pseudo-random bytes (xorshift64*), so content is incompressible and two seeds
/// never produce the same blocks.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Bytes {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_len_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encodes a UnixFS directory as a dag-pb block (links sorted by name, links before data, as the
/// dag-pb spec requires), so directories can be made through `block_put` on any backend.
/// Each link is `(name, target, cumulative size)`.
pub fn dag_pb_directory(links: &[(&str, Cid, u64)]) -> Bytes {
    let mut sorted: Vec<&(&str, Cid, u64)> = links.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut node = Vec::new();
    for (name, target, size) in sorted {
        let mut link = Vec::new();
        put_len_field(&mut link, 0x0a, &target.to_bytes());
        put_len_field(&mut link, 0x12, name.as_bytes());
        link.push(0x18);
        put_varint(&mut link, *size);
        put_len_field(&mut node, 0x12, &link);
    }
    // UnixFS Data { Type: Directory }
    put_len_field(&mut node, 0x0a, &[0x08, 0x01]);
    Bytes::from(node)
}

fn read_varint(data: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

/// Splits one protobuf message into `(field number, payload)` for its length-delimited fields;
/// varint fields are skipped, other wire types are rejected (dag-pb uses neither).
fn protobuf_fields(data: &[u8]) -> Result<Vec<(u64, &[u8])>, String> {
    let mut pos = 0;
    let mut fields = Vec::new();
    while pos < data.len() {
        let tag = read_varint(data, &mut pos)?;
        match tag & 7 {
            0 => {
                read_varint(data, &mut pos)?;
            }
            2 => {
                let len =
                    usize::try_from(read_varint(data, &mut pos)?).map_err(|_| "length overflow")?;
                let end = pos.checked_add(len).ok_or("length overflow")?;
                let payload = data.get(pos..end).ok_or("truncated field")?;
                fields.push((tag >> 3, payload));
                pos = end;
            }
            other => return Err(format!("unexpected wire type {other}")),
        }
    }
    Ok(fields)
}

/// Decodes the links of a dag-pb block as `(name, target)`, in block order.
pub fn dag_pb_links(block: &[u8]) -> Result<Vec<(String, Cid)>, ConformanceError> {
    let fail = |e: String| ConformanceError(format!("malformed dag-pb block: {e}"));
    let mut links = Vec::new();
    for (field, payload) in protobuf_fields(block).map_err(fail)? {
        if field != 2 {
            continue;
        }
        let mut name = String::new();
        let mut target = None;
        for (link_field, value) in protobuf_fields(payload).map_err(fail)? {
            match link_field {
                1 => {
                    target = Some(Cid::try_from(value).map_err(|e| fail(e.to_string()))?);
                }
                2 => name = String::from_utf8_lossy(value).into_owned(),
                _ => {}
            }
        }
        let target = target.ok_or_else(|| fail("link without hash".into()))?;
        links.push((name, target));
    }
    Ok(links)
}

/// Pins and returns the last progress value seen.
async fn pin_with_progress(
    conn: &Arc<dyn IpfsConnector>,
    cid: &Cid,
    mode: PinMode,
) -> Result<Option<u64>, ConformanceError> {
    let (tx, mut rx) = mpsc::channel(1024);
    step(&format!("pin {mode} {cid}"), conn.pin(cid, mode, tx)).await?;
    let mut last = None;
    while let Ok(value) = rx.try_recv() {
        last = Some(value);
    }
    Ok(last)
}

async fn expect_status(
    conn: &Arc<dyn IpfsConnector>,
    cid: &Cid,
    expected: IpfsPinStatus,
    when: &str,
) -> Outcome {
    let got = step(&format!("pin ls {cid}"), conn.pin_ls_cid(cid)).await?;
    ensure!(
        got == expected,
        "{when}: {cid} should be {expected}, is {got}"
    );
    Ok(())
}

async fn list_pins(
    conn: &Arc<dyn IpfsConnector>,
    recursive: bool,
    direct: bool,
) -> Result<Vec<(Cid, IpfsPinStatus)>, ConformanceError> {
    let listing = conn.pin_ls(recursive, direct).collect::<Vec<_>>();
    let items = tokio::time::timeout(OP_TIMEOUT, listing)
        .await
        .map_err(|_| ConformanceError(format!("pin ls: no answer within {OP_TIMEOUT:?}")))?;
    items
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConformanceError(format!("pin ls: {e}")))
}

/// Kubo-default `add` gives Kubo's CIDs, and `cat` returns the bytes unchanged.
pub async fn add_and_cat(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let mib: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let cases: [(&str, Bytes, &str); 3] = [
        (
            "hello world",
            Bytes::from_static(b"hello world\n"),
            HELLO_WORLD_CID,
        ),
        ("empty file", Bytes::new(), EMPTY_FILE_CID),
        ("1 MiB of i % 251", Bytes::from(mib), MIB_MOD_251_CID),
    ];
    for (what, data, expected) in cases {
        let cid = step(&format!("add {what}"), conn.add_bytes(data.clone())).await?;
        ensure!(
            cid.to_string() == expected,
            "add {what}: expected kubo's {expected}, got {cid}"
        );
        let back = step(&format!("cat {what}"), conn.cat(&cid)).await?;
        ensure!(
            back == data,
            "cat {what}: {} bytes back instead of the {} added",
            back.len(),
            data.len()
        );
    }
    let unique = pseudo_random_bytes(unique_seed(), 300 * 1024);
    let cid = step("add random", conn.add_bytes(unique.clone())).await?;
    let back = step("cat random", conn.cat(&cid)).await?;
    ensure!(
        back == unique,
        "cat random: content differs from what was added"
    );
    Ok(())
}

/// A recursive pin reports progress, covers the children (indirect), survives a direct re-pin,
/// and an unpin removes it all.
pub async fn pin_recursive_lifecycle(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let data = pseudo_random_bytes(unique_seed(), 1024 * 1024);
    let root = step("add", conn.add_bytes(data)).await?;
    expect_status(&conn, &root, IpfsPinStatus::Unpinned, "after add").await?;

    let root_block = step("block get root", conn.block_get(&root)).await?;
    let children = dag_pb_links(&root_block)?;
    ensure!(
        children.len() == 4,
        "1 MiB in 256 KiB chunks should give 4 leaves, root has {} links",
        children.len()
    );
    let child = children[0].1;

    let last = pin_with_progress(&conn, &root, PinMode::Recursive).await?;
    ensure!(
        last.is_some_and(|n| n >= 1),
        "recursive pin reported no progress (last value {last:?})"
    );
    expect_status(
        &conn,
        &root,
        IpfsPinStatus::Recursive,
        "after recursive pin",
    )
    .await?;
    expect_status(
        &conn,
        &child,
        IpfsPinStatus::Indirect,
        "child after recursive pin",
    )
    .await?;

    // pinning again, or directly, keeps the recursive pin
    pin_with_progress(&conn, &root, PinMode::Recursive).await?;
    pin_with_progress(&conn, &root, PinMode::Direct).await?;
    expect_status(&conn, &root, IpfsPinStatus::Recursive, "after re-pin").await?;

    step("unpin", conn.unpin(&root)).await?;
    expect_status(&conn, &root, IpfsPinStatus::Unpinned, "after unpin").await?;
    expect_status(&conn, &child, IpfsPinStatus::Unpinned, "child after unpin").await?;
    step("second unpin", conn.unpin(&root)).await?;
    Ok(())
}

/// A direct pin covers the root only; it can be upgraded to recursive; unpin removes it.
pub async fn pin_direct_lifecycle(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let data = pseudo_random_bytes(unique_seed(), 600 * 1024);
    let root = step("add", conn.add_bytes(data)).await?;
    let root_block = step("block get root", conn.block_get(&root)).await?;
    let child = dag_pb_links(&root_block)?
        .first()
        .map(|(_, cid)| *cid)
        .ok_or_else(|| ConformanceError("600 KiB file should have links".into()))?;

    let last = pin_with_progress(&conn, &root, PinMode::Direct).await?;
    ensure!(
        last.is_some_and(|n| n >= 1),
        "direct pin reported no progress (last value {last:?})"
    );
    expect_status(&conn, &root, IpfsPinStatus::Direct, "after direct pin").await?;
    expect_status(
        &conn,
        &child,
        IpfsPinStatus::Unpinned,
        "child of a direct pin",
    )
    .await?;

    step("unpin direct", conn.unpin(&root)).await?;
    expect_status(&conn, &root, IpfsPinStatus::Unpinned, "after unpin").await?;

    pin_with_progress(&conn, &root, PinMode::Direct).await?;
    pin_with_progress(&conn, &root, PinMode::Recursive).await?;
    expect_status(&conn, &root, IpfsPinStatus::Recursive, "after upgrade").await?;
    expect_status(
        &conn,
        &child,
        IpfsPinStatus::Indirect,
        "child after upgrade",
    )
    .await?;
    step("unpin upgraded", conn.unpin(&root)).await?;
    expect_status(
        &conn,
        &root,
        IpfsPinStatus::Unpinned,
        "after unpin of upgraded",
    )
    .await?;

    // a direct pin of a raw block
    let raw = step(
        "block put raw",
        conn.block_put(pseudo_random_bytes(unique_seed(), 1000), CODEC_RAW),
    )
    .await?;
    pin_with_progress(&conn, &raw, PinMode::Direct).await?;
    expect_status(
        &conn,
        &raw,
        IpfsPinStatus::Direct,
        "raw block after direct pin",
    )
    .await?;
    step("unpin raw", conn.unpin(&raw)).await?;
    Ok(())
}

/// Unpinning something never pinned (or only indirectly pinned) succeeds.
pub async fn unpin_not_pinned_is_ok(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let cid = step(
        "add",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 100)),
    )
    .await?;
    step("unpin of unpinned content", conn.unpin(&cid)).await?;

    let absent = crate::block_cid(&pseudo_random_bytes(unique_seed(), 64), CODEC_RAW)
        .map_err(|e| ConformanceError(e.to_string()))?;
    step("unpin of an unknown cid", conn.unpin(&absent)).await?;
    expect_status(&conn, &absent, IpfsPinStatus::Unpinned, "unknown cid").await?;
    Ok(())
}

/// `pin_update` pins the new CID recursively and leaves the old pin alone; when the old CID is
/// not pinned it is an ordinary recursive pin.
pub async fn pin_update_keeps_the_old_pin(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let from = step(
        "add old",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 300 * 1024)),
    )
    .await?;
    let to = step(
        "add new",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 300 * 1024)),
    )
    .await?;
    pin_with_progress(&conn, &from, PinMode::Recursive).await?;
    let (tx, _rx) = mpsc::channel(1024);
    step("pin update", conn.pin_update(&from, &to, tx)).await?;
    expect_status(&conn, &to, IpfsPinStatus::Recursive, "new cid after update").await?;
    expect_status(
        &conn,
        &from,
        IpfsPinStatus::Recursive,
        "old cid after update",
    )
    .await?;

    let loose = step(
        "add unpinned",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 2000)),
    )
    .await?;
    let fresh = step(
        "add fresh",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 2000)),
    )
    .await?;
    let (tx, _rx) = mpsc::channel(1024);
    step(
        "pin update from unpinned",
        conn.pin_update(&loose, &fresh, tx),
    )
    .await?;
    expect_status(
        &conn,
        &fresh,
        IpfsPinStatus::Recursive,
        "update from an unpinned cid",
    )
    .await?;
    expect_status(&conn, &loose, IpfsPinStatus::Unpinned, "unpinned old cid").await?;

    for cid in [from, to, fresh] {
        step("unpin", conn.unpin(&cid)).await?;
    }
    Ok(())
}

/// `pin_ls` lists recursive and direct pins together when both are asked, and only the asked
/// kind otherwise.
pub async fn pin_ls_lists_both_kinds(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let rec = step(
        "add",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 2000)),
    )
    .await?;
    let dir = step(
        "add",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 2000)),
    )
    .await?;
    pin_with_progress(&conn, &rec, PinMode::Recursive).await?;
    pin_with_progress(&conn, &dir, PinMode::Direct).await?;

    let both = list_pins(&conn, true, true).await?;
    ensure!(
        both.contains(&(rec, IpfsPinStatus::Recursive)),
        "pin ls (both) misses recursive pin {rec}: {both:?}"
    );
    ensure!(
        both.contains(&(dir, IpfsPinStatus::Direct)),
        "pin ls (both) misses direct pin {dir}: {both:?}"
    );
    ensure!(
        both.iter()
            .all(|(_, s)| matches!(s, IpfsPinStatus::Recursive | IpfsPinStatus::Direct)),
        "pin ls (both) lists other kinds: {both:?}"
    );

    let only_rec = list_pins(&conn, true, false).await?;
    ensure!(
        only_rec.contains(&(rec, IpfsPinStatus::Recursive))
            && only_rec
                .iter()
                .all(|(c, s)| *s == IpfsPinStatus::Recursive && *c != dir),
        "pin ls (recursive) is wrong: {only_rec:?}"
    );
    let only_dir = list_pins(&conn, false, true).await?;
    ensure!(
        only_dir.contains(&(dir, IpfsPinStatus::Direct))
            && only_dir
                .iter()
                .all(|(c, s)| *s == IpfsPinStatus::Direct && *c != rec),
        "pin ls (direct) is wrong: {only_dir:?}"
    );
    let none = list_pins(&conn, false, false).await?;
    ensure!(none.is_empty(), "pin ls of no kind lists {none:?}");

    step("unpin", conn.unpin(&rec)).await?;
    step("unpin", conn.unpin(&dir)).await?;
    let after = list_pins(&conn, true, true).await?;
    ensure!(
        !after.iter().any(|(c, _)| *c == rec || *c == dir),
        "unpinned cids still listed: {after:?}"
    );
    Ok(())
}

/// The CID of a fresh random raw block that no node holds.
pub fn absent_cid() -> Cid {
    use multihash_codetable::MultihashDigest as _;
    let hash = multihash_codetable::Code::Sha2_256.digest(&pseudo_random_bytes(unique_seed(), 64));
    Cid::new_v1(CODEC_RAW, hash)
}

/// A fresh identity CID (raw codec): its content is inline, so it pins without any network.
fn unique_identity_cid() -> Result<Cid, ConformanceError> {
    let digest =
        cid::multihash::Multihash::<64>::wrap(MULTIHASH_IDENTITY, &unique_seed().to_be_bytes())
            .map_err(|e| ConformanceError(format!("cannot build an identity multihash: {e}")))?;
    Ok(Cid::new_v1(CODEC_RAW, digest))
}

/// `pin_ls_cids` answers what `pin_ls_cid` answers, in input order: for recursive, direct,
/// indirect and unpinned CIDs mixed (identity CIDs included, and a CID asked twice), for an empty
/// slice, and again after the pins are removed.
pub async fn pin_ls_cids_agrees_with_pin_ls_cid(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let none = step("pin ls of no cids", conn.pin_ls_cids(&[])).await?;
    ensure!(none.is_empty(), "pin ls of no cids answered {none:?}");

    let rec = step(
        "add",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 600 * 1024)),
    )
    .await?;
    let rec_block = step("block get root", conn.block_get(&rec)).await?;
    let child = dag_pb_links(&rec_block)?
        .first()
        .map(|(_, cid)| *cid)
        .ok_or_else(|| ConformanceError("600 KiB file should have links".into()))?;
    let direct = step(
        "block put direct",
        conn.block_put(pseudo_random_bytes(unique_seed(), 500), CODEC_RAW),
    )
    .await?;
    let stored = step(
        "block put unpinned",
        conn.block_put(pseudo_random_bytes(unique_seed(), 500), CODEC_RAW),
    )
    .await?;
    let absent = crate::block_cid(&pseudo_random_bytes(unique_seed(), 64), CODEC_RAW)
        .map_err(|e| ConformanceError(e.to_string()))?;
    let id_rec = unique_identity_cid()?;
    let id_direct = unique_identity_cid()?;
    let id_unpinned = unique_identity_cid()?;

    pin_with_progress(&conn, &rec, PinMode::Recursive).await?;
    pin_with_progress(&conn, &direct, PinMode::Direct).await?;
    pin_with_progress(&conn, &id_rec, PinMode::Recursive).await?;
    pin_with_progress(&conn, &id_direct, PinMode::Direct).await?;

    use IpfsPinStatus::{Direct, Indirect, Recursive, Unpinned};
    let cases = [
        (stored, Unpinned),
        (rec, Recursive),
        (child, Indirect),
        (direct, Direct),
        (absent, Unpinned),
        (id_rec, Recursive),
        (id_direct, Direct),
        (id_unpinned, Unpinned),
        (rec, Recursive),
    ];
    let cids: Vec<Cid> = cases.iter().map(|(cid, _)| *cid).collect();
    let batch = step("pin ls of a batch", conn.pin_ls_cids(&cids)).await?;
    ensure!(
        batch.len() == cids.len(),
        "pin ls of {} cids answered {} statuses",
        cids.len(),
        batch.len()
    );
    for ((cid, expected), got) in cases.iter().zip(&batch) {
        let single = step(&format!("pin ls {cid}"), conn.pin_ls_cid(cid)).await?;
        ensure!(
            single == *expected,
            "pin ls {cid} answered {single}, expected {expected}"
        );
        ensure!(
            got == expected,
            "batched pin ls answered {got} for {cid}, expected {expected} (single: {single})"
        );
    }
    let one = step("pin ls of one cid", conn.pin_ls_cids(&[child])).await?;
    ensure!(
        one == [Indirect],
        "batched pin ls of the child alone answered {one:?}"
    );

    for cid in [rec, direct, id_rec, id_direct] {
        step("unpin", conn.unpin(&cid)).await?;
    }
    let after = step("pin ls after unpin", conn.pin_ls_cids(&cids)).await?;
    ensure!(
        after.len() == cids.len() && after.iter().all(|s| *s == Unpinned),
        "after unpinning everything, batched pin ls answered {after:?}"
    );
    Ok(())
}

/// Adding content makes the reported repo size grow.
pub async fn repo_stat_grows_after_add(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let before = step("repo stat", conn.repo_stat()).await?;
    step(
        "add",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 200 * 1024)),
    )
    .await?;
    let after = step("repo stat", conn.repo_stat()).await?;
    ensure!(
        after.repo_size >= before.repo_size + 200 * 1024,
        "repo size went from {} to {} after adding 200 KiB",
        before.repo_size,
        after.repo_size
    );
    ensure!(
        after.storage_max == 0 || after.storage_max >= after.repo_size,
        "storage max {} is below the repo size {}",
        after.storage_max,
        after.repo_size
    );
    Ok(())
}

/// `block_put` uses sha2-256 with CIDv1 (CIDv0 for dag-pb) and `block_get` returns the bytes.
pub async fn block_put_get_roundtrip(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let hello = Bytes::from_static(b"hello world\n");
    let cid = step("block put raw", conn.block_put(hello.clone(), CODEC_RAW)).await?;
    ensure!(
        cid.to_string() == HELLO_WORLD_RAW_CID,
        "raw block put: expected {HELLO_WORLD_RAW_CID}, got {cid}"
    );
    let back = step("block get raw", conn.block_get(&cid)).await?;
    ensure!(back == hello, "raw block get returned other bytes");

    let dir = dag_pb_directory(&[]);
    let cid = step(
        "block put dag-pb",
        conn.block_put(dir.clone(), CODEC_DAG_PB),
    )
    .await?;
    ensure!(
        cid.version() == cid::Version::V0,
        "dag-pb block put should give a cidv0, got {cid}"
    );
    let back = step("block get dag-pb", conn.block_get(&cid)).await?;
    ensure!(back == dir, "dag-pb block get returned other bytes");

    let data = pseudo_random_bytes(unique_seed(), 4096);
    let cid = step("block put random", conn.block_put(data.clone(), CODEC_RAW)).await?;
    ensure!(
        cid.version() == cid::Version::V1 && cid.codec() == CODEC_RAW,
        "raw block put should give a raw cidv1, got {cid}"
    );
    let back = step("block get random", conn.block_get(&cid)).await?;
    ensure!(back == data, "block get returned other bytes");
    Ok(())
}

/// Blocks stored under CIDs the caller computed (CIDv1 dag-pb, raw, another hash) come back
/// from `block_get` under those CIDs, and a block whose data does not match its CID is refused.
pub async fn put_blocks_with_given_cids(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let sha256 = |data: &[u8]| -> Result<cid::multihash::Multihash<64>, ConformanceError> {
        use multihash_codetable::{Code, MultihashDigest};
        Ok(Code::Sha2_256.digest(data))
    };
    let sha512 = |data: &[u8]| -> Result<cid::multihash::Multihash<64>, ConformanceError> {
        use multihash_codetable::{Code, MultihashDigest};
        Ok(Code::Sha2_512.digest(data))
    };
    let leaf = pseudo_random_bytes(unique_seed(), 2048);
    let leaf_cid = Cid::new_v1(CODEC_RAW, sha256(&leaf)?);
    let other = pseudo_random_bytes(unique_seed(), 1024);
    let other_cid = Cid::new_v1(CODEC_RAW, sha512(&other)?);
    let dir = dag_pb_directory(&[("leaf", leaf_cid, leaf.len() as u64)]);
    let dir_cid = Cid::new_v1(CODEC_DAG_PB, sha256(&dir)?);
    let dir512 = dag_pb_directory(&[("other", other_cid, other.len() as u64)]);
    let dir512_cid = Cid::new_v1(CODEC_DAG_PB, sha512(&dir512)?);
    let blocks = vec![
        (leaf_cid, leaf.clone()),
        (other_cid, other.clone()),
        (dir_cid, dir.clone()),
        (dir512_cid, dir512.clone()),
    ];
    step("put blocks", conn.put_blocks(blocks.clone())).await?;
    for (cid, data) in &blocks {
        let back = step(&format!("block get {cid}"), conn.block_get(cid)).await?;
        ensure!(back == *data, "block {cid} came back with other bytes");
    }
    let wrong = Cid::new_v1(CODEC_RAW, sha256(b"not this data")?);
    match tokio::time::timeout(OP_TIMEOUT, conn.put_blocks(vec![(wrong, Bytes::from_static(b"but this"))])).await {
        Ok(Err(IpfsError::InvalidInput(_))) => {}
        Ok(other) => return Err(ConformanceError(format!("a block not matching its cid: expected invalid input, got {other:?}"))),
        Err(_) => return Err(ConformanceError("put of a mismatching block did not answer".into())),
    }
    Ok(())
}

/// Identity CIDs carry their content inline, so they pin (both ways) without any network.
pub async fn identity_cid_pins_offline(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let cid = parse_cid(EMPTY_IDENTITY_CID)?;
    pin_with_progress(&conn, &cid, PinMode::Recursive).await?;
    expect_status(
        &conn,
        &cid,
        IpfsPinStatus::Recursive,
        "identity cid after pin",
    )
    .await?;
    let data = step("block get identity", conn.block_get(&cid)).await?;
    ensure!(
        data.is_empty(),
        "bafkqaaa should be empty, got {} bytes",
        data.len()
    );
    step("unpin identity", conn.unpin(&cid)).await?;
    expect_status(
        &conn,
        &cid,
        IpfsPinStatus::Unpinned,
        "identity cid after unpin",
    )
    .await?;

    pin_with_progress(&conn, &cid, PinMode::Direct).await?;
    expect_status(
        &conn,
        &cid,
        IpfsPinStatus::Direct,
        "identity cid after direct pin",
    )
    .await?;
    step("unpin identity", conn.unpin(&cid)).await?;
    Ok(())
}

/// `/ipfs/<dir>/a/b` resolves through UnixFS directory links; missing links are errors.
pub async fn resolve_path_in_directory(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let content = pseudo_random_bytes(unique_seed(), 1000);
    let file = step("add", conn.add_bytes(content.clone())).await?;
    let sub_block = dag_pb_directory(&[("b", file, 1000)]);
    let sub = step(
        "put subdir",
        conn.block_put(sub_block.clone(), CODEC_DAG_PB),
    )
    .await?;
    let root_block = dag_pb_directory(&[("a", sub, sub_block.len() as u64 + 1000)]);
    let root = step("put dir", conn.block_put(root_block, CODEC_DAG_PB)).await?;

    let got = step("resolve root", conn.resolve(&format!("/ipfs/{root}"))).await?;
    ensure!(got == root, "/ipfs/{root} resolved to {got}");
    let got = step("resolve a", conn.resolve(&format!("/ipfs/{root}/a"))).await?;
    ensure!(
        got == sub,
        "/ipfs/{root}/a resolved to {got}, expected {sub}"
    );
    let got = step("resolve a/b", conn.resolve(&format!("/ipfs/{root}/a/b"))).await?;
    ensure!(
        got == file,
        "/ipfs/{root}/a/b resolved to {got}, expected {file}"
    );

    let back = step("cat through dir", conn.cat(&got)).await?;
    ensure!(
        back == content,
        "file reached through the directory differs"
    );

    let missing = tokio::time::timeout(OP_TIMEOUT, conn.resolve(&format!("/ipfs/{root}/nope")))
        .await
        .map_err(|_| ConformanceError("resolve of a missing link hung".into()))?;
    ensure!(
        missing.is_err(),
        "resolve of a missing link succeeded: {missing:?}"
    );
    let bad = tokio::time::timeout(OP_TIMEOUT, conn.resolve("/ipfs/not-a-cid/x"))
        .await
        .map_err(|_| ConformanceError("resolve of a bad path hung".into()))?;
    ensure!(
        matches!(bad, Err(IpfsError::InvalidInput(_))),
        "resolve of a bad path should be invalid input, got {bad:?}"
    );
    Ok(())
}

/// A pin of content nobody has keeps waiting (the caller's watchdog decides when to give up),
/// and cancelling it by dropping the future leaves nothing pinned.
pub async fn pin_of_unavailable_cid_runs_until_cancelled(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let absent = absent_cid();
    for mode in [PinMode::Recursive, PinMode::Direct] {
        let (tx, _rx) = mpsc::channel(16);
        let attempt =
            tokio::time::timeout(Duration::from_secs(1), conn.pin(&absent, mode, tx)).await;
        ensure!(
            attempt.is_err(),
            "{mode} pin of unavailable {absent} finished instead of waiting: {attempt:?}"
        );
        expect_status(
            &conn,
            &absent,
            IpfsPinStatus::Unpinned,
            "after cancelled pin",
        )
        .await?;
    }
    let listed = list_pins(&conn, true, true).await?;
    ensure!(
        !listed.iter().any(|(c, _)| *c == absent),
        "cancelled pin is listed: {listed:?}"
    );
    Ok(())
}

/// Garbage collection removes unpinned blocks and keeps pinned ones. Backends without GC must
/// say so with [`IpfsError::Unsupported`], which passes.
pub async fn repo_gc_keeps_pins(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let loose = step(
        "add loose",
        conn.add_bytes(pseudo_random_bytes(unique_seed(), 5000)),
    )
    .await?;
    let kept_data = pseudo_random_bytes(unique_seed(), 400 * 1024);
    let kept = step("add kept", conn.add_bytes(kept_data.clone())).await?;
    pin_with_progress(&conn, &kept, PinMode::Recursive).await?;

    let removed = match tokio::time::timeout(OP_TIMEOUT, conn.repo_gc()).await {
        Err(_) => return Err(ConformanceError("repo gc hung".into())),
        Ok(Err(IpfsError::Unsupported(_))) => {
            step("unpin", conn.unpin(&kept)).await?;
            return Ok(());
        }
        Ok(Err(e)) => return Err(ConformanceError(format!("repo gc: {e}"))),
        Ok(Ok(removed)) => removed,
    };
    let same_hash = |a: &Cid, b: &Cid| a.hash() == b.hash();
    ensure!(
        removed.iter().any(|c| same_hash(c, &loose)),
        "gc did not remove the unpinned {loose}"
    );
    ensure!(
        !removed.iter().any(|c| same_hash(c, &kept)),
        "gc removed the pinned {kept}"
    );
    let back = step("cat kept after gc", conn.cat(&kept)).await?;
    ensure!(back == kept_data, "pinned content changed after gc");
    step("unpin", conn.unpin(&kept)).await?;
    Ok(())
}

/// `id` reports a peer id and addresses carrying it.
pub async fn id_is_reported(conn: Arc<dyn IpfsConnector>) -> Outcome {
    let id = step("id", conn.id()).await?;
    ensure!(!id.id.is_empty(), "empty peer id");
    ensure!(
        id.addresses
            .iter()
            .all(|a| a.ends_with(&format!("/p2p/{}", id.id))),
        "addresses should end with /p2p/{}: {:?}",
        id.id,
        id.addresses
    );
    Ok(())
}

/// Runs every single-node check in order, stopping at the first failure.
pub async fn run_all(conn: Arc<dyn IpfsConnector>) -> Outcome {
    macro_rules! run {
        ($check:ident) => {
            $check(conn.clone())
                .await
                .map_err(|e| ConformanceError(format!("{}: {}", stringify!($check), e.0)))?;
            tracing::info!(check = stringify!($check), "conformance check passed");
        };
    }
    run!(id_is_reported);
    run!(add_and_cat);
    run!(block_put_get_roundtrip);
    run!(put_blocks_with_given_cids);
    run!(pin_recursive_lifecycle);
    run!(pin_direct_lifecycle);
    run!(unpin_not_pinned_is_ok);
    run!(pin_update_keeps_the_old_pin);
    run!(pin_ls_lists_both_kinds);
    run!(pin_ls_cids_agrees_with_pin_ls_cid);
    run!(repo_stat_grows_after_add);
    run!(identity_cid_pins_offline);
    run!(resolve_path_in_directory);
    run!(pin_of_unavailable_cid_runs_until_cancelled);
    run!(repo_gc_keeps_pins);
    Ok(())
}
