//! Chunkers: how a file's bytes are cut into leaves, exactly where Kubo cuts them.
//!
//! Every chunker here works the same way internally: it needs a *window* of upcoming bytes
//! (the chunk size, rabin's maximum, buzhash's 512 KiB read buffer), decides where the next
//! chunk ends within that window, and keeps the rest for the next decision. Deciding on a
//! full window (or on whatever is left at end of input) is what go-ipfs-chunker does with its
//! read buffers, so the cut points do not depend on how the input was split into writes.

mod buzhash;
mod rabin;

use std::fmt;
use std::str::FromStr;

use crate::UnixfsError;

/// Kubo's default chunk size (`size-262144`).
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;

/// The largest chunk (and rabin maximum) Kubo accepts: 1 MiB.
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;

/// The smallest rabin minimum go-ipfs-chunker accepts.
pub const RABIN_MIN_SIZE: usize = 16;

/// A chunking strategy, parsed from Kubo's `--chunker` strings.
///
/// Accepted strings: `size-N` (`1 <= N <= 1048576`), `rabin`, `rabin-AVG`,
/// `rabin-MIN-AVG-MAX` (each number may carry its `min:`/`avg:`/`max:` label, as Kubo
/// allows; `16 <= MIN < AVG < MAX <= 1048576`), `buzhash`, and `""`/`default` for
/// `size-262144`. Anything else is an error, including a few strings Kubo's looser parser
/// lets through by accident (`size-10-20`, `rabinfoo`) and `rabin-AVG` with `AVG < 48`,
/// whose derived minimum is below 16 (Kubo accepts it and then never cuts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chunker {
    /// Fixed-size chunks of this many bytes (the last one may be shorter).
    Size(usize),
    /// Rabin-fingerprint content-defined chunks with go-ipfs-chunker's polynomial and
    /// 16-byte window.
    Rabin {
        /// No chunk is cut before this many bytes (except the last).
        min: usize,
        /// The target average; the cut mask has `floor(log2(avg))` bits.
        avg: usize,
        /// Chunks are cut at this size at the latest.
        max: usize,
    },
    /// go-ipfs-chunker's buzhash: 32-byte window, 128 KiB minimum, 512 KiB maximum, 17-bit mask.
    Buzhash,
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker::Size(DEFAULT_CHUNK_SIZE)
    }
}

impl Chunker {
    /// The rabin chunker for an average size, with go-ipfs-chunker's derived bounds
    /// (`avg/3` and `avg + avg/2`).
    pub fn rabin_avg(avg: usize) -> Result<Chunker, UnixfsError> {
        let spec = format!("rabin-{avg}");
        let max = avg + avg / 2;
        let min = avg / 3;
        if max > MAX_CHUNK_SIZE {
            return Err(invalid(&spec, format!("the derived maximum {max} exceeds {MAX_CHUNK_SIZE}")));
        }
        // go-ipfs-chunker does not check this for the one-number form, and its rabin then
        // never cuts at all; refusing is the only way to stay byte-compatible and bounded.
        if min < RABIN_MIN_SIZE {
            return Err(invalid(&spec, format!("the derived minimum {min} is below {RABIN_MIN_SIZE}")));
        }
        Ok(Chunker::Rabin { min, avg, max })
    }

    /// Checks a hand-built value against the bounds the parser enforces (sizes up to 1 MiB,
    /// `16 <= min < avg < max` for rabin).
    pub fn check(&self) -> Result<Chunker, UnixfsError> {
        let spec = self.to_string();
        match *self {
            Chunker::Size(n) if n == 0 || n > MAX_CHUNK_SIZE => {
                Err(invalid(&spec, format!("chunk size must be between 1 and {MAX_CHUNK_SIZE}")))
            }
            Chunker::Rabin { min, avg, max }
                if min < RABIN_MIN_SIZE || min >= avg || avg >= max || max > MAX_CHUNK_SIZE =>
            {
                Err(invalid(&spec, format!("need {RABIN_MIN_SIZE} <= min < avg < max <= {MAX_CHUNK_SIZE}")))
            }
            _ => Ok(*self),
        }
    }

    /// The largest chunk this chunker can produce.
    pub fn max_chunk_len(&self) -> usize {
        match *self {
            Chunker::Size(n) => n,
            Chunker::Rabin { max, .. } => max,
            Chunker::Buzhash => buzhash::MAX,
        }
    }
}

fn invalid(spec: &str, reason: impl Into<String>) -> UnixfsError {
    UnixfsError::InvalidChunker { spec: spec.to_string(), reason: reason.into() }
}

/// Parses a decimal size the way Go's `strconv.Atoi` would accept it, refusing values that
/// would not fit.
fn parse_size(spec: &str, what: &str, s: &str) -> Result<i64, UnixfsError> {
    s.parse::<i64>().map_err(|_| invalid(spec, format!("{what} {s:?} is not an integer")))
}

fn parse_labelled(spec: &str, part: &str, label: &str) -> Result<i64, UnixfsError> {
    let pieces: Vec<&str> = part.split(':').collect();
    if pieces.len() > 1 && pieces[0] != label {
        return Err(invalid(spec, format!("expected the label {label:?} in {part:?}")));
    }
    let value = pieces.last().copied().unwrap_or_default();
    parse_size(spec, label, value)
}

impl FromStr for Chunker {
    type Err = UnixfsError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec.is_empty() || spec == "default" {
            return Ok(Chunker::default());
        }
        if spec == "buzhash" {
            return Ok(Chunker::Buzhash);
        }
        let parts: Vec<&str> = spec.split('-').collect();
        match parts[0] {
            "size" => {
                if parts.len() != 2 {
                    return Err(invalid(spec, "expected size-<bytes>"));
                }
                let size = parse_size(spec, "size", parts[1])?;
                if size <= 0 {
                    return Err(invalid(spec, "chunker size must be greater than 0"));
                }
                if size > MAX_CHUNK_SIZE as i64 {
                    return Err(invalid(spec, format!("chunk size may not exceed {MAX_CHUNK_SIZE}")));
                }
                Ok(Chunker::Size(size as usize))
            }
            "rabin" => match parts.len() {
                1 => Chunker::rabin_avg(DEFAULT_CHUNK_SIZE),
                2 => {
                    let avg = parse_size(spec, "avg", parts[1])?;
                    if avg <= 0 {
                        return Err(invalid(spec, "rabin average must be greater than 0"));
                    }
                    if avg > MAX_CHUNK_SIZE as i64 {
                        return Err(invalid(spec, format!("the derived maximum exceeds {MAX_CHUNK_SIZE}")));
                    }
                    Chunker::rabin_avg(avg as usize)
                }
                4 => {
                    let min = parse_labelled(spec, parts[1], "min")?;
                    if min < RABIN_MIN_SIZE as i64 {
                        return Err(invalid(spec, "rabin min must be greater than 16"));
                    }
                    let avg = parse_labelled(spec, parts[2], "avg")?;
                    let max = parse_labelled(spec, parts[3], "max")?;
                    if min >= avg {
                        return Err(invalid(spec, "rabin-min must be smaller than rabin-avg"));
                    }
                    if avg >= max {
                        return Err(invalid(spec, "rabin-avg must be smaller than rabin-max"));
                    }
                    if max > MAX_CHUNK_SIZE as i64 {
                        return Err(invalid(spec, format!("rabin-max may not exceed {MAX_CHUNK_SIZE}")));
                    }
                    Ok(Chunker::Rabin { min: min as usize, avg: avg as usize, max: max as usize })
                }
                _ => Err(invalid(spec, "expected rabin, rabin-<avg> or rabin-<min>-<avg>-<max>")),
            },
            _ => Err(invalid(spec, "unrecognized chunker (expected size-N, rabin[-...] or buzhash)")),
        }
    }
}

impl fmt::Display for Chunker {
    /// Writes the canonical Kubo string; it parses back to the same chunker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chunker::Size(n) => write!(f, "size-{n}"),
            Chunker::Rabin { min, avg, max } => write!(f, "rabin-{min}-{avg}-{max}"),
            Chunker::Buzhash => f.write_str("buzhash"),
        }
    }
}

/// The cut-point logic of one chunker kind.
#[derive(Debug, Clone)]
enum Cutter {
    Size,
    Rabin(Box<rabin::Rabin>),
    Buzhash,
}

impl Cutter {
    /// Where the next chunk of `data` ends. `data` is non-empty and is either a full window
    /// or the rest of the input.
    fn cut(&self, data: &[u8]) -> usize {
        match self {
            Cutter::Size => data.len(),
            Cutter::Rabin(r) => r.cut(data),
            Cutter::Buzhash => buzhash::cut(data),
        }
    }
}

/// Streaming splitter: takes bytes in any pieces and hands out chunks.
///
/// It holds at most one window of input (at most 1 MiB).
#[derive(Debug, Clone)]
pub struct Splitter {
    cutter: Cutter,
    window: usize,
    buf: Vec<u8>,
}

impl Splitter {
    /// A splitter for `chunker`, which must pass [`Chunker::check`].
    pub fn new(chunker: &Chunker) -> Result<Splitter, UnixfsError> {
        Ok(Splitter::checked(&chunker.check()?))
    }

    /// A splitter for a chunker already checked.
    pub(crate) fn checked(chunker: &Chunker) -> Splitter {
        let (cutter, window) = match *chunker {
            Chunker::Size(n) => (Cutter::Size, n.max(1)),
            Chunker::Rabin { min, avg, max } => (Cutter::Rabin(Box::new(rabin::Rabin::new(min, avg, max))), max.max(1)),
            Chunker::Buzhash => (Cutter::Buzhash, buzhash::MAX),
        };
        Splitter { cutter, window, buf: Vec::new() }
    }

    /// Feeds `data`, calling `on_chunk` with each chunk that is complete.
    pub fn write<E>(&mut self, mut data: &[u8], on_chunk: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        loop {
            if self.buf.is_empty() {
                // Nothing carried over: decide on the caller's bytes without copying them.
                while data.len() >= self.window {
                    let n = self.cutter.cut(&data[..self.window]);
                    on_chunk(&data[..n])?;
                    data = &data[n..];
                }
            }
            if data.is_empty() {
                return Ok(());
            }
            if self.buf.capacity() < self.window {
                self.buf.reserve_exact(self.window - self.buf.len());
            }
            let take = (self.window - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < self.window {
                return Ok(());
            }
            let n = self.cutter.cut(&self.buf);
            on_chunk(&self.buf[..n])?;
            self.buf.drain(..n);
        }
    }

    /// Signals the end of input, handing out the chunks left in the buffer.
    pub fn finish<E>(&mut self, on_chunk: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        while !self.buf.is_empty() {
            let n = self.cutter.cut(&self.buf);
            on_chunk(&self.buf[..n])?;
            self.buf.drain(..n);
        }
        self.buf = Vec::new();
        Ok(())
    }
}

/// Splits a whole buffer at once; a convenience for tests and small inputs.
pub fn split_all(chunker: &Chunker, data: &[u8]) -> Result<Vec<Vec<u8>>, UnixfsError> {
    let mut out = Vec::new();
    let mut s = Splitter::new(chunker)?;
    let mut push = |c: &[u8]| -> Result<(), UnixfsError> {
        out.push(c.to_vec());
        Ok(())
    };
    s.write(data, &mut push)?;
    s.finish(&mut push)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn parses_kubo_strings() {
        assert_eq!("".parse::<Chunker>().unwrap(), Chunker::Size(262144));
        assert_eq!("default".parse::<Chunker>().unwrap(), Chunker::Size(262144));
        assert_eq!("size-1024".parse::<Chunker>().unwrap(), Chunker::Size(1024));
        assert_eq!("size-1048576".parse::<Chunker>().unwrap(), Chunker::Size(1048576));
        assert_eq!("buzhash".parse::<Chunker>().unwrap(), Chunker::Buzhash);
        assert_eq!("rabin".parse::<Chunker>().unwrap(), Chunker::Rabin { min: 87381, avg: 262144, max: 393216 });
        assert_eq!("rabin-1024".parse::<Chunker>().unwrap(), Chunker::Rabin { min: 341, avg: 1024, max: 1536 });
        assert_eq!("rabin-16-32-64".parse::<Chunker>().unwrap(), Chunker::Rabin { min: 16, avg: 32, max: 64 });
        assert_eq!(
            "rabin-min:36-avg:512-max:1024".parse::<Chunker>().unwrap(),
            Chunker::Rabin { min: 36, avg: 512, max: 1024 }
        );
    }

    #[test]
    fn refuses_what_kubo_refuses() {
        for bad in [
            "size-0",
            "size--5",
            "size-1048577",
            "size-abc",
            "size-",
            "size-10-20",
            "rabin-12-512-1024",
            "rabin-512-512-1024",
            "rabin-36-1024-1024",
            "rabin-36-512-2000000",
            "rabin-avg:36-512-1024",
            "rabin-36-min:512-1024",
            "rabin-36-512-min:1024",
            "rabin-1-2",
            "rabin-700000",
            "rabin-30",
            "rabin-0",
            "rabinfoo",
            "buzhash-legacy",
            "fixed",
            "size",
        ] {
            let err = bad.parse::<Chunker>().expect_err(bad);
            assert!(matches!(err, UnixfsError::InvalidChunker { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for c in [Chunker::Size(5), Chunker::Buzhash, Chunker::Rabin { min: 16, avg: 32, max: 64 }] {
            assert_eq!(c.to_string().parse::<Chunker>().unwrap(), c);
        }
    }

    #[test]
    fn size_chunks() {
        let data = pseudo_random(10, 1);
        let chunks = split_all(&Chunker::Size(4), &data).unwrap();
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        assert!(split_all(&Chunker::Size(4), &[]).unwrap().is_empty());
    }

    #[test]
    fn rabin_on_zeros_cuts_at_min() {
        // An all-zero window fingerprints to 0, so every chunk ends at the minimum.
        let chunks = split_all(&Chunker::Rabin { min: 100, avg: 256, max: 400 }, &[0u8; 1050]).unwrap();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [100; 10].iter().copied().chain([50]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn buzhash_on_zeros_cuts_at_min() {
        // The 32 rotations of bytehash[0] have an even number of ones in every bit
        // position, so a zero window hashes to 0 and buzhash cuts at its minimum.
        let chunks = split_all(&Chunker::Buzhash, &vec![0u8; 300 * 1024]).unwrap();
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [131072, 131072, 45056]);
    }

    #[test]
    fn content_defined_chunkers_respect_bounds_on_random_data() {
        let data = pseudo_random(3 << 20, 7);
        let rabin = Chunker::Rabin { min: 4096, avg: 16384, max: 65536 };
        let chunks = split_all(&rabin, &data).unwrap();
        let (last, body) = chunks.split_last().unwrap();
        assert!(body.iter().all(|c| (4096..=65536).contains(&c.len())));
        assert!(!last.is_empty() && last.len() <= 65536);
        // Mostly cut by content, not by the maximum.
        assert!(body.iter().filter(|c| c.len() < 65536).count() > body.len() / 2);
        assert_eq!(chunks.concat(), data);

        let chunks = split_all(&Chunker::Buzhash, &data).unwrap();
        let (last, body) = chunks.split_last().unwrap();
        assert!(body.iter().all(|c| (131072..=524288).contains(&c.len())));
        assert!(!last.is_empty());
        assert!(body.iter().any(|c| c.len() < 524288), "buzhash never cut by content");
        assert_eq!(chunks.concat(), data);
    }

    #[test]
    fn content_defined_cuts_resynchronise_after_an_insertion() {
        // The point of content-defined chunking: a prefix shifts the data, but later cut
        // points stay at the same content.
        let data = pseudo_random(2 << 20, 9);
        let mut shifted = b"a few extra bytes".to_vec();
        shifted.extend_from_slice(&data);
        for chunker in [Chunker::Rabin { min: 2048, avg: 8192, max: 32768 }, Chunker::Buzhash] {
            let a = split_all(&chunker, &data).unwrap();
            let b = split_all(&chunker, &shifted).unwrap();
            let tail_a: Vec<_> = a.iter().rev().take(3).collect();
            let tail_b: Vec<_> = b.iter().rev().take(3).collect();
            assert_eq!(tail_a, tail_b, "{chunker}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Chunks add up to the input, respect the size bounds, and do not depend on how
        /// the input was cut into writes.
        #[test]
        fn chunks_cover_input_whatever_the_writes(
            len in 0usize..200_000,
            seed in any::<u64>(),
            pieces in proptest::collection::vec(1usize..70_000, 1..8),
            which in 0usize..4,
        ) {
            let data = pseudo_random(len, seed);
            let chunker = match which {
                0 => Chunker::Size(1 + (seed % 70_000) as usize),
                1 => Chunker::Rabin { min: 64, avg: 1024, max: 4096 },
                2 => Chunker::Rabin { min: 16, avg: 32, max: 64 },
                _ => Chunker::Buzhash,
            };
            let whole = split_all(&chunker, &data).unwrap();
            prop_assert_eq!(whole.concat(), data.clone());
            prop_assert!(whole.iter().all(|c| !c.is_empty() && c.len() <= chunker.max_chunk_len()));
            if let Chunker::Size(n) = chunker {
                let (_, body) = whole.split_last().unwrap_or((&Vec::new(), &[]));
                prop_assert!(body.iter().all(|c| c.len() == n));
            }

            let mut s = Splitter::new(&chunker).unwrap();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut push = |c: &[u8]| -> Result<(), ()> { got.push(c.to_vec()); Ok(()) };
            let mut rest = &data[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = pieces[i % pieces.len()].min(rest.len());
                s.write(&rest[..n], &mut push).unwrap();
                rest = &rest[n..];
                i += 1;
            }
            s.finish(&mut push).unwrap();
            prop_assert_eq!(got, whole);
        }
    }
}
