//! The store's fixed, seedless key hash.
//!
//! Determinism across replicas forbids `RandomState`: every store, in every process, must place a
//! key in the same shard and the same table slot. This is a small wyhash-style folded-multiply
//! hash with constant secrets; it reads the key as little-endian words so that the result is the
//! same on every platform. It is not DoS-resistant (no secret seed) – the same trade-off memcached
//! makes with its fixed murmur3/jenkins hash.

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
const P3: u64 = 0x5899_65cc_7537_4cc3;

#[inline(always)]
fn mix(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
fn r8(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn r4(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(w) as u64
}

/// Hash a key. The low 16 bits are used as the table tag/home slot, bits 40.. select the shard.
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    let len = key.len();
    let mut seed = P0 ^ mix(len as u64 ^ P1, P2);
    let (a, b);
    if len <= 16 {
        if len >= 4 {
            let q = (len >> 3) << 2;
            a = (r4(key, 0) << 32) | r4(key, q);
            b = (r4(key, len - 4) << 32) | r4(key, len - 4 - q);
        } else if len > 0 {
            a = ((key[0] as u64) << 16) | ((key[len >> 1] as u64) << 8) | key[len - 1] as u64;
            b = 0;
        } else {
            a = 0;
            b = 0;
        }
    } else {
        let mut i = 0;
        while len - i > 16 {
            seed = mix(r8(key, i) ^ P1, r8(key, i + 8) ^ seed);
            i += 16;
        }
        a = r8(key, len - 16);
        b = r8(key, len - 8);
    }
    let h = mix(a ^ P1, b ^ seed);
    mix(h ^ P3, (len as u64) ^ P1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_values_and_spread() {
        // The hash must never change between builds: replicas and snapshots rely on it.
        assert_eq!(hash_key(b"key:0000001"), hash_key(b"key:0000001"));
        assert_ne!(hash_key(b"key:0000001"), hash_key(b"key:0000002"));
        assert_ne!(hash_key(b""), hash_key(b"\0"));
        // Every length path works and distinguishes single-byte changes.
        let base: Vec<u8> = (0u8..100).collect();
        for len in 0..100 {
            let k = &base[..len];
            if len > 0 {
                let mut k2 = k.to_vec();
                k2[len - 1] ^= 1;
                assert_ne!(hash_key(k), hash_key(&k2), "len {len}");
            }
        }
        // Low 16 bits spread over 1M sequential keys: no 16-bit bucket gets more than 4x its share.
        let mut counts = vec![0u32; 1 << 16];
        for i in 0..1_000_000u32 {
            let k = format!("key:{i:07}");
            counts[(hash_key(k.as_bytes()) & 0xFFFF) as usize] += 1;
        }
        assert!(*counts.iter().max().unwrap() < 4 * (1_000_000 >> 16) + 20);
    }
}
