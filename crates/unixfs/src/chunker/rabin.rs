//! Rabin-fingerprint cut points, as go-ipfs-chunker computes them.
//!
//! Facts reproduced from go-ipfs-chunker (and the restic-derived chunker it wraps): the
//! irreducible polynomial 0x3DF305DFB2A805 (degree 53), a 16-byte sliding window, a cut mask
//! of `floor(log2(avg))` low bits, no cut before `min` bytes, a forced cut at `max`. Each
//! chunk starts with a fresh window: the first `min - 16` bytes are skipped without being
//! fingerprinted, so the first test (at `min`) sees exactly the 16 bytes before it.

/// go-ipfs-chunker's `IpfsRabinPoly`.
const POLYNOMIAL: u64 = 0x003D_F305_DFB2_A805;

/// Width of the sliding window in bytes.
const WINDOW: usize = 16;

/// Degree of a polynomial over GF(2) stored in a `u64`; `-1` for zero.
fn degree(p: u64) -> i32 {
    63 - p.leading_zeros() as i32
}

/// `x mod p` over GF(2).
fn modulo(mut x: u64, p: u64) -> u64 {
    let dp = degree(p);
    while degree(x) >= dp {
        x ^= p << (degree(x) - dp);
    }
    x
}

/// Rabin parameters plus the two lookup tables derived from the polynomial.
#[derive(Debug, Clone)]
pub(super) struct Rabin {
    min: usize,
    max: usize,
    mask: u64,
    shift: u32,
    /// `out[b]` removes byte `b` leaving the window: `b * x^(8*(WINDOW-1)) mod P`.
    out: [u64; 256],
    /// `reduce[b]` folds the 8 bits that overflow above the polynomial's degree back in.
    reduce: [u64; 256],
}

impl Rabin {
    pub(super) fn new(min: usize, avg: usize, max: usize) -> Rabin {
        let k = degree(POLYNOMIAL) as u32;
        let mut out = [0u64; 256];
        let mut reduce = [0u64; 256];
        for b in 0..256u64 {
            let mut h = modulo(b, POLYNOMIAL);
            for _ in 0..WINDOW - 1 {
                h = modulo(h << 8, POLYNOMIAL);
            }
            out[b as usize] = h;
            reduce[b as usize] = modulo(b << k, POLYNOMIAL) | (b << k);
        }
        // floor(log2(avg)) bits, computed exactly (Go uses a float log2, which agrees for
        // every size up to the 1 MiB limit).
        let bits = if avg == 0 { 0 } else { usize::BITS - 1 - avg.leading_zeros() };
        // A zero maximum (only constructible by hand) would never make progress.
        Rabin { min, max: max.max(1), mask: (1u64 << bits) - 1, shift: k - 8, out, reduce }
    }

    /// Length of the chunk that starts at `data[0]`; `data` is non-empty and holds either at
    /// least `max` bytes or the rest of the input.
    pub(super) fn cut(&self, data: &[u8]) -> usize {
        let limit = data.len().min(self.max);
        if limit <= self.min {
            return limit;
        }
        let mut window = [0u8; WINDOW];
        let mut wpos = 0usize;
        let (out, reduce, shift) = (&self.out, &self.reduce, self.shift);
        let slide = |digest: u64, leaving: u8, b: u8| -> u64 {
            let d = digest ^ out[leaving as usize];
            ((d << 8) | u64::from(b)) ^ reduce[(d >> shift) as usize & 0xff]
        };
        // The Go chunker primes every new chunk's window with a single 1 byte. It has
        // slid out again by the first cut test (min >= 16), so this only keeps the state
        // identical.
        window[0] = 1;
        wpos = (wpos + 1) % WINDOW;
        let mut digest = slide(0, 0, 1);
        let skip = self.min.saturating_sub(WINDOW);
        for (i, &b) in data[..limit].iter().enumerate().skip(skip) {
            digest = slide(digest, window[wpos], b);
            window[wpos] = b;
            wpos = (wpos + 1) % WINDOW;
            let len = i + 1;
            if len >= self.min && (digest & self.mask == 0 || len >= self.max) {
                return len;
            }
        }
        limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint of a whole 16-byte window, computed directly from the definition
    /// (`sum b_i x^(8*(15-i)) mod P`), without tables.
    fn fingerprint(window: &[u8]) -> u64 {
        window.iter().fold(0u64, |h, &b| modulo((h << 8) | u64::from(b), POLYNOMIAL))
    }

    #[test]
    fn polynomial_has_degree_53() {
        assert_eq!(degree(POLYNOMIAL), 53);
        assert_eq!(POLYNOMIAL, 17437180132763653);
    }

    #[test]
    fn cuts_where_the_window_fingerprint_matches_the_mask() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let data: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let r = Rabin::new(32, 1024, 100_000);
        let mut start = 0;
        let mut cuts = 0;
        while data.len() - start > 100_000 {
            let chunk = &data[start..];
            let want = (32..=100_000).find(|&len| fingerprint(&chunk[len - 16..len]) & 1023 == 0).unwrap_or(100_000);
            assert_eq!(r.cut(chunk), want, "chunk at {start}");
            start += want;
            cuts += 1;
        }
        assert!(cuts > 50, "only {cuts} cuts");
    }

    #[test]
    fn max_forces_a_cut_and_short_input_is_one_chunk() {
        let r = Rabin::new(16, 1 << 20, (1 << 20) + 1);
        let data = vec![0xA5u8; 5000];
        // A mask of 20 bits is practically never met by a constant non-zero window.
        assert_eq!(r.cut(&data), 5000);
        let r = Rabin::new(16, 1 << 19, 4000);
        assert_eq!(r.cut(&data), 4000);
        assert_eq!(r.cut(&data[..10]), 10);
    }
}
