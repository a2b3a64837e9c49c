//! Our sketch's registers in Redis's own HyperLogLog encoding, so that Redis merges them where
//! they are stored (`PFMERGE`, register-wise max, in C) and one key per period holds the
//! fleet's sketch whatever the fleet's size.
//!
//! Both sketches have 2^14 registers and the same register semantics (the rank of the first
//! set bit after the index bits), so a register-wise max in Redis is exactly the merge
//! [`HyperLogLog::merge_bytes`](paymetrics::uniques::HyperLogLog::merge_bytes) does. The
//! hash functions differ, which does not matter: Redis never hashes our ids (no `PFADD`), it
//! only merges registers. A side effect operators can use: `PFCOUNT` on a fleet key gives
//! Redis's estimate of the same registers.
//!
//! The format (Redis's `hyperloglog.c`): a 16-byte header (`HYLL`, an encoding byte, three
//! unused bytes, an 8-byte cached cardinality whose top bit marks it stale), then either
//! *dense* registers (6 bits each, little-endian bit order, 12,288 bytes) or *sparse* opcodes
//! (runs of zeros and of small values), which Redis keeps for keys with few registers set.

use paymetrics::uniques::PRECISION;

const HEADER: usize = 16;
const REGISTERS: usize = 1 << PRECISION;
const REGISTER_BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << REGISTER_BITS) - 1;
/// The length of a dense sketch in Redis: header and packed registers.
pub(crate) const DENSE_LEN: usize = HEADER + REGISTERS * REGISTER_BITS / 8;
const MAGIC: &[u8; 4] = b"HYLL";
const DENSE: u8 = 0;
const SPARSE: u8 = 1;

/// Encodes registers ([`HyperLogLog::to_bytes`](paymetrics::uniques::HyperLogLog::to_bytes))
/// as a dense Redis HyperLogLog; `None` when there are not 2^14 of them.
pub(crate) fn to_redis(registers: &[u8]) -> Option<Vec<u8>> {
    if registers.len() != REGISTERS {
        return None;
    }
    let mut out = vec![0u8; DENSE_LEN];
    out[..4].copy_from_slice(MAGIC);
    out[4] = DENSE;
    // The cached cardinality is marked stale: Redis recomputes it if PFCOUNT is asked.
    out[15] = 0x80;
    let packed = &mut out[HEADER..];
    for (i, &register) in registers.iter().enumerate() {
        // Ranks of a 2^14-register sketch never exceed 51; clamping keeps the 6-bit field
        // from spilling into its neighbour whatever the input.
        let value = u16::from(register.min(REGISTER_MAX));
        let bit = i * REGISTER_BITS;
        let (byte, shift) = (bit / 8, bit % 8);
        let spread = value << shift;
        packed[byte] |= spread as u8;
        if let Some(next) = packed.get_mut(byte + 1) {
            *next |= (spread >> 8) as u8;
        }
    }
    Some(out)
}

/// Decodes a Redis HyperLogLog (dense or sparse) into our 2^14 registers; `None` when it is
/// not one.
pub(crate) fn from_redis(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return None;
    }
    let body = &bytes[HEADER..];
    match bytes[4] {
        DENSE if bytes.len() == DENSE_LEN => Some(
            (0..REGISTERS)
                .map(|i| {
                    let bit = i * REGISTER_BITS;
                    let (byte, shift) = (bit / 8, bit % 8);
                    let low = u16::from(body[byte]);
                    let high = u16::from(body.get(byte + 1).copied().unwrap_or(0));
                    (((low | high << 8) >> shift) as u8) & REGISTER_MAX
                })
                .collect(),
        ),
        SPARSE => from_sparse(body),
        _ => None,
    }
}

/// The sparse opcodes: `00xxxxxx` (x+1 zeros), `01xxxxxx yyyyyyyy` (xy+1 zeros),
/// `1vvvvvxx` (x+1 registers of value v+1). They must cover exactly 2^14 registers.
fn from_sparse(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut registers = vec![0u8; REGISTERS];
    let mut i = 0usize;
    while let Some((&op, rest)) = body.split_first() {
        body = rest;
        let (value, run) = match op >> 6 {
            0b00 => (0, usize::from(op & 0x3f) + 1),
            0b01 => {
                let (&low, rest) = body.split_first()?;
                body = rest;
                (0, (usize::from(op & 0x3f) << 8 | usize::from(low)) + 1)
            }
            _ => (((op >> 2) & 0x1f) + 1, usize::from(op & 0x03) + 1),
        };
        registers.get_mut(i..i + run)?.fill(value);
        i += run;
    }
    (i == REGISTERS).then_some(registers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_round_trips_every_value_at_every_bit_offset() {
        let registers: Vec<u8> = (0..REGISTERS).map(|i| (i * 7 % 52) as u8).collect();
        let encoded = to_redis(&registers).unwrap();
        assert_eq!(encoded.len(), 12_304, "Redis's HLL_DENSE_SIZE");
        assert_eq!(&encoded[..5], b"HYLL\0");
        assert_eq!(from_redis(&encoded).unwrap(), registers);
        assert!(to_redis(&registers[1..]).is_none());
        assert!(from_redis(&encoded[..DENSE_LEN - 1]).is_none(), "short");
    }

    #[test]
    fn sparse_decodes_runs_of_zeros_and_values() {
        let mut sparse = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        // 3 zeros, then value 5 twice, then XZERO for the rest (16384 - 5 = 16379).
        sparse.push(0b0000_0010);
        sparse.push(0b1001_0001); // 1vvvvvxx: v = 5 - 1, x = 2 - 1
        let rest = 16_379 - 1;
        sparse.push(0x40 | (rest >> 8) as u8);
        sparse.push(rest as u8);
        let registers = from_redis(&sparse).unwrap();
        assert_eq!(&registers[..6], &[0, 0, 0, 5, 5, 0]);
        assert_eq!(registers.iter().filter(|r| **r != 0).count(), 2);
        sparse.pop();
        assert!(from_redis(&sparse).is_none(), "truncated opcode");
        sparse.extend_from_slice(&[rest as u8, 0]);
        assert!(from_redis(&sparse).is_none(), "more than 2^14 registers");
        assert!(from_redis(b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\0").is_none());
        assert!(from_redis(b"nope").is_none());
    }
}
