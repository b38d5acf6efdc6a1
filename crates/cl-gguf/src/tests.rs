//! Reader tests on GGUF files written here byte by byte (the layout of `docs/gguf.md` of ggml).

use super::*;

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::Array(items) => {
            out.extend(items.first().map_or(4, type_id).to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
    }
}

struct Tensor {
    name: &'static str,
    dims: Vec<u64>,
    ty_id: u32,
    data: Vec<u8>,
}

/// A GGUF v3 file: header, metadata, tensor infos, padding to `alignment`, tensors each padded.
fn write(kvs: &[(&str, Value)], tensors: &[Tensor], alignment: usize) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        put_str(&mut out, k);
        out.extend(type_id(v).to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0usize;
    for t in tensors {
        put_str(&mut out, t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.ty_id.to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offset += t.data.len().div_ceil(alignment) * alignment;
    }
    for t in tensors {
        out.resize(out.len().div_ceil(alignment) * alignment, 0);
        out.extend(&t.data);
    }
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Two Q4_1 blocks (one row of 64): d = 1, m = -8; qs[j] = j | (15 - j) << 4.
fn q4_1_row() -> Vec<u8> {
    let mut block = vec![0x00, 0x3C, 0x00, 0xC8];
    block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    [block.clone(), block].concat()
}

fn sample_file(alignment: usize) -> Vec<u8> {
    let mut kvs = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(2)),
        ("llama.rope.freq_base", Value::F32(100000.0)),
        ("a.u8", Value::U8(7)),
        ("a.i8", Value::I8(-7)),
        ("a.u16", Value::U16(700)),
        ("a.i16", Value::I16(-700)),
        ("a.i32", Value::I32(-70000)),
        ("a.u64", Value::U64(1 << 40)),
        ("a.i64", Value::I64(-(1 << 40))),
        ("a.f64", Value::F64(0.125)),
        ("a.bool", Value::Bool(true)),
        (
            "tokenizer.ggml.tokens",
            Value::Array(vec![Value::String("a".into()), Value::String("Ġb".into())]),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(vec![Value::I32(1), Value::I32(3)]),
        ),
    ];
    if alignment != 32 {
        kvs.push(("general.alignment", Value::U32(alignment as u32)));
    }
    let tensors = vec![
        Tensor {
            name: "norm.weight",
            dims: vec![3],
            ty_id: 0,
            data: f32_bytes(&[1.0, 2.0, 3.0]),
        },
        Tensor {
            // GGUF [64, 2] = PyTorch [2, 64]: two rows of two Q4_1 blocks.
            name: "blk.0.attn_q.weight",
            dims: vec![64, 2],
            ty_id: 3,
            data: [q4_1_row(), q4_1_row()].concat(),
        },
        Tensor {
            name: "token_embd.weight",
            dims: vec![32, 1],
            ty_id: 8,
            data: {
                let mut b = half::f16::from_f32(0.5).to_bits().to_le_bytes().to_vec();
                b.extend((0..32).map(|j: i32| (j - 16) as i8 as u8));
                b
            },
        },
    ];
    write(&kvs, &tensors, alignment)
}

#[test]
fn reads_metadata_of_every_type_and_tensors_with_their_pytorch_shapes() {
    for alignment in [32, 64] {
        let g = Gguf::from_bytes("sample.gguf", sample_file(alignment)).unwrap();
        assert_eq!((g.version(), g.alignment()), (3, alignment as u64));
        assert_eq!(g.str_key("general.architecture").unwrap(), "llama");
        assert_eq!(g.count_key("llama.block_count").unwrap(), 2);
        assert_eq!(g.f64_key("llama.rope.freq_base").unwrap(), 100000.0);
        assert_eq!(g.u64_key("a.u8").unwrap(), 7);
        assert_eq!(g.get("a.i8"), Some(&Value::I8(-7)));
        assert_eq!(g.u64_key("a.u16").unwrap(), 700);
        assert_eq!(g.get("a.i16").and_then(Value::as_i64), Some(-700));
        assert_eq!(g.get("a.i32").and_then(Value::as_i64), Some(-70000));
        assert_eq!(g.u64_key("a.u64").unwrap(), 1 << 40);
        assert_eq!(g.get("a.i64").and_then(Value::as_i64), Some(-(1 << 40)));
        assert_eq!(g.f64_key("a.f64").unwrap(), 0.125);
        assert_eq!(g.get("a.bool"), Some(&Value::Bool(true)));
        assert_eq!(
            g.str_array_key("tokenizer.ggml.tokens").unwrap(),
            ["a", "Ġb"]
        );
        assert_eq!(
            g.int_array_key("tokenizer.ggml.token_type").unwrap(),
            [1, 3]
        );
        assert_eq!(g.metadata().next().unwrap().0, "general.architecture");

        assert_eq!(g.tensors().len(), 3);
        let (shape, norm) = g.dequantize("norm.weight").unwrap();
        assert_eq!((shape, norm), (vec![3], vec![1.0, 2.0, 3.0]));
        let q = g
            .dequantize_shaped("blk.0.attn_q.weight", &[2, 64])
            .unwrap();
        let block: Vec<f32> = (0..16)
            .map(|j| j as f32 - 8.0)
            .chain((0..16).map(|j| 7.0 - j as f32))
            .collect();
        assert_eq!(q, block.repeat(4));
        let (shape, e) = g.dequantize("token_embd.weight").unwrap();
        assert_eq!(shape, [1, 32]);
        assert_eq!(
            e,
            (0..32).map(|j| (j - 16) as f32 * 0.5).collect::<Vec<_>>()
        );
    }
}

fn kind(bytes: Vec<u8>) -> GgufErrorKind {
    Gguf::from_bytes("bad.gguf", bytes).unwrap_err().kind
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let file = sample_file(32);
    for len in 0..file.len() {
        let err = Gguf::from_bytes("cut.gguf", file[..len].to_vec()).unwrap_err();
        assert!(
            matches!(
                err.kind,
                GgufErrorKind::Truncated { .. } | GgufErrorKind::TensorOutOfBounds { .. }
            ),
            "cut at {len}: {err}"
        );
        assert!(err.to_string().starts_with("GGUF file cut.gguf: "), "{err}");
    }
}

#[test]
fn bad_headers_and_tables_are_named() {
    let mut f = sample_file(32);
    f[..4].copy_from_slice(b"GGML");
    assert!(matches!(kind(f), GgufErrorKind::BadMagic(m) if &m == b"GGML"));

    let mut f = sample_file(32);
    f[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(kind(f), GgufErrorKind::UnsupportedVersion(1)));

    let one = |t: Tensor| write(&[], &[t], 32);
    let err = kind(one(Tensor {
        name: "w",
        dims: vec![32],
        ty_id: 5,
        data: vec![0; 20],
    }));
    assert!(
        matches!(&err, GgufErrorKind::UnknownGgmlType { tensor, id: 5 } if tensor == "w"),
        "{err}"
    );
    let err = kind(one(Tensor {
        name: "w",
        dims: vec![48, 2],
        ty_id: 3,
        data: vec![0; 60],
    }));
    assert!(
        matches!(
            &err,
            GgufErrorKind::RowNotBlockAligned {
                ne0: 48,
                block: 32,
                ..
            }
        ),
        "{err}"
    );
    let err = kind(one(Tensor {
        name: "w",
        dims: vec![32, 2],
        ty_id: 3,
        data: vec![0; 20],
    }));
    assert!(
        matches!(&err, GgufErrorKind::TensorOutOfBounds { tensor, bytes: 40, .. } if tensor == "w"),
        "{err}"
    );
    let err = kind(one(Tensor {
        name: "w",
        dims: vec![1, 1, 1, 1, 1],
        ty_id: 0,
        data: vec![0; 4],
    }));
    assert!(
        matches!(err, GgufErrorKind::TooManyDims { n_dims: 5, .. }),
        "{err}"
    );

    let twice = write(&[("k", Value::U32(1)), ("k", Value::U32(2))], &[], 32);
    assert!(matches!(kind(twice), GgufErrorKind::DuplicateKey(k) if k == "k"));
    let mut bad_type = write(&[("k", Value::U32(1))], &[], 32);
    let at = 24 + 8 + 1;
    bad_type[at..at + 4].copy_from_slice(&13u32.to_le_bytes());
    assert!(matches!(
        kind(bad_type),
        GgufErrorKind::BadValueType { id: 13, .. }
    ));
    let align = write(&[("general.alignment", Value::U32(48))], &[], 32);
    assert!(matches!(kind(align), GgufErrorKind::BadAlignment(48)));
    let mut utf8 = write(&[("k", Value::String("ab".into()))], &[], 32);
    let n = utf8.len();
    utf8[n - 1] = 0xFF;
    assert!(matches!(kind(utf8), GgufErrorKind::BadUtf8 { .. }));
}

#[test]
fn lookups_name_the_key_or_tensor() {
    let g = Gguf::from_bytes("sample.gguf", sample_file(32)).unwrap();
    let msg = |e: GgufError| e.to_string();
    assert_eq!(
        msg(g.u64_key("llama.context_length").unwrap_err()),
        "GGUF file sample.gguf: metadata key `llama.context_length` is missing"
    );
    assert_eq!(
        msg(g.str_key("llama.block_count").unwrap_err()),
        "GGUF file sample.gguf: metadata key `llama.block_count` is UINT32, not a string"
    );
    assert!(matches!(
        g.u64_key("a.i8").unwrap_err().kind,
        GgufErrorKind::WrongKeyType { .. }
    ));
    assert!(matches!(
        g.tensor("output.weight").unwrap_err().kind,
        GgufErrorKind::MissingTensor(t) if t == "output.weight"
    ));
    let err = g
        .dequantize_shaped("blk.0.attn_q.weight", &[64, 2])
        .unwrap_err();
    assert_eq!(
        msg(err),
        "GGUF file sample.gguf: tensor `blk.0.attn_q.weight` has shape [2, 64], expected [64, 2]"
    );

    // A K-quant tensor is listed, but dequantising it says which types are read.
    let f = write(
        &[],
        &[Tensor {
            name: "w",
            dims: vec![256],
            ty_id: 12,
            data: vec![0; 144],
        }],
        32,
    );
    let g = Gguf::from_bytes("k.gguf", f).unwrap();
    assert_eq!(g.tensor("w").unwrap().ty, GgmlType::Q4K);
    assert!(matches!(
        g.dequantize("w").unwrap_err().kind,
        GgufErrorKind::UnsupportedGgmlType {
            ty: GgmlType::Q4K,
            ..
        }
    ));
}

/// llama.cpp's converter (`LlamaModel.permute`): rows viewed as [groups, 2, hd/2], the last two
/// axes swapped.
fn permute(w: &[f32], rows: usize, cols: usize, groups: usize) -> Vec<f32> {
    let hd = rows / groups;
    let half = hd / 2;
    let mut out = vec![0.0; w.len()];
    for h in 0..groups {
        for j in 0..2 {
            for i in 0..half {
                let src = h * hd + j * half + i; // [h, j, i]
                let dst = h * hd + i * 2 + j; // [h, i, j]
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[test]
fn unpermute_inverts_llama_cpp_permutation() {
    for (rows, cols, groups) in [(576, 3, 9), (192, 2, 3), (8, 1, 2)] {
        let w: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        assert_eq!(
            unpermute_rope_rows(&permute(&w, rows, cols, groups), rows, cols, groups),
            w
        );
    }
    // One head of 4: HF rows [a, b, c, d] pair (a, c), (b, d); llama.cpp stores [a, c, b, d].
    assert_eq!(
        unpermute_rope_rows(&[0.0, 2.0, 1.0, 3.0], 4, 1, 1),
        vec![0.0, 1.0, 2.0, 3.0]
    );
}

fn tokenizer_file(model: &str, pre: &str, merges: &[&str]) -> Vec<u8> {
    let strings =
        |v: &[&str]| Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect());
    let tokens = [
        "<|endoftext|>",
        "a",
        "b",
        "ab",
        "Ġ",
        "1",
        "2",
        "Ġ1",
        "Ġ12",
        "12",
    ];
    let mut types = vec![Value::I32(3)];
    types.extend((1..tokens.len()).map(|_| Value::I32(1)));
    write(
        &[
            ("tokenizer.ggml.model", Value::String(model.into())),
            ("tokenizer.ggml.pre", Value::String(pre.into())),
            ("tokenizer.ggml.tokens", strings(&tokens)),
            ("tokenizer.ggml.merges", strings(merges)),
            ("tokenizer.ggml.token_type", Value::Array(types)),
            ("tokenizer.ggml.eos_token_id", Value::U32(0)),
        ],
        &[],
        32,
    )
}

const MERGES: [&str; 4] = ["a b", "Ġ 1", "Ġ1 2", "1 2"];

#[test]
fn tokenizer_isolates_digits_for_smollm_and_matches_control_tokens_whole() {
    let encode = |pre: &str, text: &str| {
        let g = Gguf::from_bytes("tok.gguf", tokenizer_file("gpt2", pre, &MERGES)).unwrap();
        let (tok, ids) = tokenizer::tokenizer(&g).unwrap();
        assert_eq!((ids.eos, ids.bos), (Some(0), None));
        let enc = tok.encode(text, true).unwrap();
        let back = tok.decode(enc.get_ids(), false).unwrap();
        assert_eq!(back, text);
        enc.get_ids().to_vec()
    };
    // smollm: " 12" splits into " ", "1", "2" before byte-level BPE; no BOS is added.
    assert_eq!(encode("smollm", "ab 12"), [3, 4, 5, 6]);
    // plain GPT-2 keeps " 12" whole: Ġ + 1 → Ġ1, Ġ1 + 2 → Ġ12.
    assert_eq!(encode("gpt2", "ab 12"), [3, 8]);
    assert_eq!(encode("smollm", "a<|endoftext|>b"), [1, 0, 2]);
}

#[test]
fn tokenizer_metadata_errors_are_named() {
    let err = |bytes: Vec<u8>| {
        let g = Gguf::from_bytes("tok.gguf", bytes).unwrap();
        tokenizer::tokenizer(&g).unwrap_err().to_string()
    };
    assert!(
        err(tokenizer_file("llama", "smollm", &MERGES)).contains("tokenizer.ggml.model is `llama`")
    );
    assert!(
        err(tokenizer_file("gpt2", "qwen2", &MERGES)).contains("tokenizer.ggml.pre is `qwen2`")
    );
    assert!(err(tokenizer_file("gpt2", "smollm", &["ab"])).contains("merge 0 `ab`"));
    assert!(err(tokenizer_file("gpt2", "smollm", &["b a"])).contains("names `ba`"));
    let g = Gguf::from_bytes("tok.gguf", sample_file(32)).unwrap();
    assert_eq!(
        tokenizer::tokenizer(&g).unwrap_err().to_string(),
        "GGUF file tok.gguf: metadata key `tokenizer.ggml.model` is missing"
    );
}
