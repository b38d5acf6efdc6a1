//! Prints a GGUF file's metadata and tensor table, and dequantises every tensor it can read.
//!
//! `cargo run -p cl-gguf --example gguf_inspect -- model.gguf`

use std::collections::BTreeMap;

use cl_gguf::{Gguf, Value};

fn short(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() > 60 => {
            format!("{:?}… ({} bytes)", &s[..s.floor_char_boundary(60)], s.len())
        }
        Value::Array(items) if items.len() > 4 => {
            format!(
                "[{}, … ] ({} × {})",
                short(&items[0]),
                items.len(),
                items[0].type_name()
            )
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(short).collect::<Vec<_>>().join(", ")
        ),
        v => format!("{v:?}"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: gguf_inspect <file.gguf>")?;
    let g = Gguf::open(&path)?;
    println!("{path}: GGUF v{}, alignment {}", g.version(), g.alignment());
    for (k, v) in g.metadata() {
        println!("  {k} = {}", short(v));
    }
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    let (mut read, mut values) = (0, 0usize);
    for t in g.tensors() {
        *by_type.entry(format!("{:?}", t.ty)).or_default() += 1;
        if t.ty.is_supported() {
            let (_, v) = g.dequantize(&t.name)?;
            if let Some(bad) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!("tensor `{}`: element {bad} is not finite", t.name).into());
            }
            read += 1;
            values += v.len();
        }
    }
    println!(
        "{} tensors {by_type:?}; {read} dequantised ({values} values, all finite)",
        g.tensors().len()
    );
    for t in g.tensors().iter().take(12) {
        println!("  {} {:?} {:?} @{}", t.name, t.shape(), t.ty, t.offset);
    }
    if g.get("tokenizer.ggml.tokens").is_some() {
        let (tok, ids) = cl_gguf::tokenizer::tokenizer(&g)?;
        let text = "Hello world! 123";
        let enc = tok
            .encode(text, true)
            .map_err(|e| format!("encoding {text:?}: {e}"))?;
        println!(
            "tokenizer: {} tokens, {ids:?}; {text:?} -> {:?} {:?}",
            tok.get_vocab_size(true),
            enc.get_ids(),
            enc.get_tokens()
        );
    }
    Ok(())
}
