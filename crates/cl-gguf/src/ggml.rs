//! ggml tensor types: ids, block geometry and dequantisation to f32.
//!
//! Layouts follow `ggml-common.h` / `dequantize_row_*` of llama.cpp: every scale (`d`, `m`) is a
//! little-endian IEEE binary16; the 4- and 5-bit 32-element types put the low nibble of byte `j` at
//! element `j` and the high nibble at element `j + 16`. Arithmetic is `q * d + m` in f32, in that
//! order, so results are bit-identical to the scalar C reference.

use half::f16;

/// The ggml tensor types a GGUF file may name (`enum ggml_type`). Ids 4 and 5 were removed upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    Iq2Xxs,
    Iq2Xs,
    Iq3Xxs,
    Iq1S,
    Iq4Nl,
    Iq3S,
    Iq2S,
    Iq4Xs,
    I8,
    I16,
    I32,
    I64,
    F64,
    Iq1M,
    Bf16,
    Tq1_0,
    Tq2_0,
    Mxfp4,
}

impl GgmlType {
    /// The type with ggml id `id`, if ggml defines one.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            16 => Iq2Xxs,
            17 => Iq2Xs,
            18 => Iq3Xxs,
            19 => Iq1S,
            20 => Iq4Nl,
            21 => Iq3S,
            22 => Iq2S,
            23 => Iq4Xs,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => Iq1M,
            30 => Bf16,
            34 => Tq1_0,
            35 => Tq2_0,
            39 => Mxfp4,
            _ => return None,
        })
    }

    /// The ggml id of this type (inverse of [`GgmlType::from_id`]).
    pub fn id(self) -> u32 {
        (0..64)
            .find(|&id| Self::from_id(id) == Some(self))
            .expect("every GgmlType has an id in 0..64")
    }

    /// (elements per block, bytes per block), as `GGML_QUANT_SIZES`.
    pub fn block(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 => (1, 4),
            F16 | Bf16 => (1, 2),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2K => (256, 84),
            Q3K => (256, 110),
            Q4K => (256, 144),
            Q5K => (256, 176),
            Q6K => (256, 210),
            Q8K => (256, 292),
            Iq2Xxs => (256, 66),
            Iq2Xs => (256, 74),
            Iq3Xxs => (256, 98),
            Iq1S => (256, 50),
            Iq4Nl => (32, 18),
            Iq3S => (256, 110),
            Iq2S => (256, 82),
            Iq4Xs => (256, 136),
            I8 => (1, 1),
            I16 => (1, 2),
            I32 => (1, 4),
            I64 | F64 => (1, 8),
            Iq1M => (256, 56),
            Tq1_0 => (256, 54),
            Tq2_0 => (256, 66),
            Mxfp4 => (32, 17),
        }
    }

    /// Whether [`dequantize`] reads this type.
    pub fn is_supported(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16 | Bf16 | F64 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1
        )
    }

    /// Bytes of `n` elements (`n` a multiple of the block size).
    pub fn bytes_of(self, n: u64) -> u64 {
        let (elems, bytes) = self.block();
        n / elems as u64 * bytes as u64
    }
}

fn half_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Dequantises `bytes` (whole blocks of `ty`) to f32, in storage order.
///
/// Returns `None` for a type [`GgmlType::is_supported`] rejects. `bytes.len()` must be a multiple
/// of the block's byte size; a trailing partial block is ignored (callers check sizes first).
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Option<Vec<f32>> {
    let (elems, size) = ty.block();
    let blocks = bytes.chunks_exact(size);
    let mut out = Vec::with_capacity(bytes.len() / size * elems);
    match ty {
        GgmlType::F32 => out.extend(blocks.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        GgmlType::F64 => out
            .extend(blocks.map(|b| f64::from_le_bytes(b.try_into().expect("8-byte block")) as f32)),
        GgmlType::F16 => out.extend(blocks.map(|b| half_at(b, 0))),
        GgmlType::Bf16 => out.extend(
            blocks.map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)),
        ),
        GgmlType::Q4_0 => {
            for b in blocks {
                let d = half_at(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in blocks {
                let (d, m) = (half_at(b, 0), half_at(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Q5_0 => {
            for b in blocks {
                let d = half_at(b, 0);
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let qs = &b[6..22];
                let (lo, hi) = five_bit(qs, qh);
                out.extend(lo.iter().map(|&q| (q as i32 - 16) as f32 * d));
                out.extend(hi.iter().map(|&q| (q as i32 - 16) as f32 * d));
            }
        }
        GgmlType::Q5_1 => {
            for b in blocks {
                let (d, m) = (half_at(b, 0), half_at(b, 2));
                let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let qs = &b[8..24];
                let (lo, hi) = five_bit(qs, qh);
                out.extend(lo.iter().map(|&q| q as f32 * d + m));
                out.extend(hi.iter().map(|&q| q as f32 * d + m));
            }
        }
        GgmlType::Q8_0 | GgmlType::Q8_1 => {
            // Q8_1 stores d, then s = d·Σq (unused here), then the 32 quants.
            let start = if ty == GgmlType::Q8_0 { 2 } else { 4 };
            for b in blocks {
                let d = half_at(b, 0);
                out.extend(b[start..start + 32].iter().map(|&q| (q as i8) as f32 * d));
            }
        }
        _ => return None,
    }
    Some(out)
}

/// The 5-bit quants of a Q5_0 / Q5_1 block: (elements 0..16, elements 16..32).
fn five_bit(qs: &[u8], qh: u32) -> ([u8; 16], [u8; 16]) {
    let mut lo = [0u8; 16];
    let mut hi = [0u8; 16];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        lo[j] = (qs[j] & 0x0F) | h0;
        hi[j] = (qs[j] >> 4) | h1;
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_bits().to_le_bytes()
    }

    #[test]
    fn ids_round_trip_and_removed_ids_are_unknown() {
        for id in 0..64 {
            if let Some(ty) = GgmlType::from_id(id) {
                assert_eq!(ty.id(), id);
            }
        }
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(GgmlType::from_id(5), None);
        assert_eq!(GgmlType::from_id(3), Some(GgmlType::Q4_1));
        assert_eq!(GgmlType::from_id(8), Some(GgmlType::Q8_0));
    }

    #[test]
    fn q4_1_hand_made_block() {
        // d = 1, m = -8, qs[j] = j | (15 - j) << 4: element j = j - 8, element j + 16 = 7 - j.
        let mut b = vec![0x00, 0x3C, 0x00, 0xC8];
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(GgmlType::Q4_1, &b).unwrap();
        assert_eq!(y.len(), 32);
        for j in 0..16 {
            assert_eq!(y[j], j as f32 - 8.0);
            assert_eq!(y[j + 16], 7.0 - j as f32);
        }
    }

    #[test]
    fn q4_0_and_q8_0_blocks() {
        let mut b = h(0.5).to_vec();
        b.extend((0..16u8).map(|j| j | (j << 4)));
        let y = dequantize(GgmlType::Q4_0, &b).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(y[j + 16], (j as f32 - 8.0) * 0.5);
        }
        let mut b = h(0.25).to_vec();
        b.extend((0..32i8).map(|j| (j - 16) as u8));
        let y = dequantize(GgmlType::Q8_0, &b).unwrap();
        assert_eq!(
            y,
            (0..32).map(|j| (j - 16) as f32 * 0.25).collect::<Vec<_>>()
        );
    }

    #[test]
    fn five_bit_types_take_the_high_bit_from_qh() {
        // Element j's fifth bit is qh bit j, element j + 16's is qh bit j + 16.
        let qh: u32 = 0b1010_0000_0000_0001_0000_0000_0000_0011;
        let qs: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let want = |j: usize| -> u32 {
            let nib = if j < 16 {
                j as u32
            } else {
                15 - (j as u32 - 16)
            };
            nib | (((qh >> j) & 1) << 4)
        };
        let mut b = h(1.0).to_vec();
        b.extend(qh.to_le_bytes());
        b.extend(&qs);
        let y = dequantize(GgmlType::Q5_0, &b).unwrap();
        let mut b1 = h(2.0).to_vec();
        b1.extend(h(-1.0));
        b1.extend(qh.to_le_bytes());
        b1.extend(&qs);
        let y1 = dequantize(GgmlType::Q5_1, &b1).unwrap();
        for j in 0..32 {
            assert_eq!(y[j], want(j) as f32 - 16.0, "Q5_0 element {j}");
            assert_eq!(y1[j], want(j) as f32 * 2.0 - 1.0, "Q5_1 element {j}");
        }
    }

    #[test]
    fn float_types() {
        let b: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(dequantize(GgmlType::F32, &b).unwrap(), vec![1.5, -2.0]);
        let b: Vec<u8> = [h(1.5), h(-2.0)].concat();
        assert_eq!(dequantize(GgmlType::F16, &b).unwrap(), vec![1.5, -2.0]);
        // bf16 of 1.5 is the top half of its f32 bits: 0x3FC0.
        assert_eq!(
            dequantize(GgmlType::Bf16, &0x3FC0u16.to_le_bytes()).unwrap(),
            vec![1.5]
        );
        assert!(dequantize(GgmlType::Q4K, &[0; 144]).is_none());
    }
}
