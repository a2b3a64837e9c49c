//! Per-thread placement shared by the recorder's cells and caches: a small index per thread,
//! and a fast hasher for small keys. Nothing here knows about metrics.

use std::{
    hash::{BuildHasher, Hasher, RandomState},
    sync::atomic::{AtomicUsize, Ordering::Relaxed},
};

/// A small number per thread, handed out round-robin, so the first threads land on distinct
/// stripes and shards (hashing a thread id would not guarantee it).
#[inline]
pub(crate) fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed);
    }
    INDEX.with(|i| *i)
}

/// A fast hasher for small keys (packed `u64`s, short strings: tag values, metric names): FxHash's
/// multiply-rotate, finished with MurmurHash3's mixer so every bit of the key reaches the low
/// bits the table indexes by. Not DoS-resistant, and need not be: every table it hashes is
/// bounded.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// [`FastHasher`] with a per-process random seed, for tables whose keys come from outside
/// (label values): which keys collide depends on a seed no caller knows, so a caller cannot
/// choose values that all land in one bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeededFastHash(u64);

impl Default for SeededFastHash {
    fn default() -> Self {
        Self(RandomState::new().hash_one(0x5eed_u64))
    }
}

impl BuildHasher for SeededFastHash {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hasher_spreads_high_bits_into_low_bits() {
        let low = |key: u64| {
            let mut h = FastHasher::default();
            h.write_u64(key);
            h.finish() & 0xff
        };
        let distinct: std::collections::HashSet<u64> = (0..64u64).map(|i| low(i << 40)).collect();
        assert!(distinct.len() > 40, "{}", distinct.len());
    }
}
