//! Import throughput against the machine's single-core SHA-256 speed.
//!
//! `cargo run --release -p cluster-unixfs --example import_bench` imports a 1 GiB
//! pseudo-random stream (generated on the fly, nothing written to disk, blocks dropped
//! after they are built) and hashes the same stream with SHA-256 alone. Both figures include
//! generating the stream; the generator's own speed is printed too. `IMPORT_BENCH_MIB`
//! changes the stream length.

use std::io::Read;
use std::time::Instant;

use cluster_unixfs::{AddOptions, Chunker, CidVersion, FileImporter, Layout, NullSink};
use sha2::{Digest, Sha256};

/// An endless-enough stream of xorshift64* bytes.
struct PseudoRandom {
    state: u64,
    left: u64,
}

impl PseudoRandom {
    fn new(len: u64) -> PseudoRandom {
        PseudoRandom { state: 0x2545_F491_4F6C_DD1D, left: len }
    }
}

impl Read for PseudoRandom {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize) & !7;
        let n = if n == 0 { buf.len().min(self.left as usize) } else { n };
        for word in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            word.copy_from_slice(&v[..word.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs
}

fn main() {
    let mib: u64 = std::env::var("IMPORT_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let len = mib << 20;
    let mut buf = vec![0u8; 1 << 20];

    let start = Instant::now();
    let mut g = PseudoRandom::new(len);
    while g.read(&mut buf).unwrap() > 0 {}
    let gen_speed = mib_per_s(len, start.elapsed().as_secs_f64());

    // SHA-256 over the stream, block by block as an importer would see it.
    let start = Instant::now();
    let mut g = PseudoRandom::new(len);
    let mut sink = 0u8;
    loop {
        let n = g.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for block in buf[..n].chunks(256 * 1024) {
            sink ^= Sha256::digest(block)[0];
        }
    }
    let sha_speed = mib_per_s(len, start.elapsed().as_secs_f64());
    std::hint::black_box(sink);

    // SHA-256 with no generator in the way, over one pre-filled 64 MiB buffer.
    let mut big = vec![0u8; 64 << 20];
    PseudoRandom::new(big.len() as u64).read_exact(&mut big).unwrap();
    let start = Instant::now();
    let mut hashed = 0u64;
    while hashed < len {
        for block in big.chunks(256 * 1024) {
            sink ^= Sha256::digest(block)[0];
        }
        hashed += big.len() as u64;
    }
    let pure_sha = mib_per_s(hashed, start.elapsed().as_secs_f64());
    std::hint::black_box(sink);

    println!("stream: {mib} MiB pseudo-random, generated at {gen_speed:.0} MiB/s");
    println!("sha2-256 of an in-memory buffer (single core): {pure_sha:.0} MiB/s");
    println!("sha2-256 of the generated stream (single core): {sha_speed:.0} MiB/s  <- baseline below");

    let v1 = AddOptions { cid_version: Some(CidVersion::V1), ..AddOptions::default() };
    let cases = [
        ("default (CIDv0, size-262144, balanced)", AddOptions::default()),
        ("CIDv1 raw leaves", v1.clone()),
        ("trickle", AddOptions { layout: Layout::Trickle, ..AddOptions::default() }),
        ("rabin", AddOptions { chunker: "rabin".parse().unwrap(), ..AddOptions::default() }),
        ("buzhash", AddOptions { chunker: Chunker::Buzhash, ..AddOptions::default() }),
    ];
    for (name, options) in cases {
        let start = Instant::now();
        let mut f = FileImporter::new(&options).unwrap();
        let mut g = PseudoRandom::new(len);
        f.write_from(&mut g, &mut NullSink).unwrap();
        let root = f.finish(&mut NullSink).unwrap();
        let speed = mib_per_s(len, start.elapsed().as_secs_f64());
        println!("import {name}: {speed:.0} MiB/s = {:.0}% of sha2-256 (root {})", 100.0 * speed / sha_speed, root.cid);
    }
}
