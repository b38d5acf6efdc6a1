//! PNG plots without a font or a plotting library: an RGB canvas with rectangles, lines and a
//! 3×5 pixel font (digits, capitals, a few signs), written with the `png` crate.
//!
//! - [`heatmap`]: a `T × T` accuracy matrix, one cell per (after task t, task j), value in %;
//! - [`curves`]: mean accuracy over the tasks seen so far against the number of tasks trained,
//!   one line per method, with a legend.

use std::path::Path;

use anyhow::{Context, Result};

/// An RGB colour.
pub type Rgb = [u8; 3];

const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [200, 200, 200];

/// Distinct line colours (Okabe–Ito, then a few more).
pub const PALETTE: [Rgb; 10] = [
    [0, 114, 178],
    [213, 94, 0],
    [0, 158, 115],
    [204, 121, 167],
    [230, 159, 0],
    [86, 180, 233],
    [120, 120, 120],
    [0, 0, 0],
    [150, 40, 40],
    [90, 60, 160],
];

/// Names of [`PALETTE`], for legends in text.
pub const PALETTE_NAMES: [&str; 10] = [
    "blue",
    "vermillion",
    "green",
    "pink",
    "orange",
    "sky blue",
    "grey",
    "black",
    "red-brown",
    "purple",
];

/// A width × height RGB image.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<Rgb>,
}

impl Canvas {
    /// A canvas filled with `background`.
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        Self {
            width,
            height,
            pixels: vec![background; width * height],
        }
    }

    /// The pixel at (x, y), or `None` outside.
    #[cfg(test)]
    pub fn pixel(&self, x: usize, y: usize) -> Option<Rgb> {
        (x < self.width && y < self.height).then(|| self.pixels[y * self.width + x])
    }

    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = c;
        }
    }

    /// Fills the rectangle with top-left (x, y); clipped to the canvas.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// A rectangle's outline.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        self.fill_rect(x, y, w, 1, c);
        self.fill_rect(x, y + h - 1, w, 1, c);
        self.fill_rect(x, y, 1, h, c);
        self.fill_rect(x + w - 1, y, 1, h, c);
    }

    /// A line `thickness` pixels wide (square pen).
    pub fn line(&mut self, from: (f64, f64), to: (f64, f64), c: Rgb, thickness: i64) {
        let steps = ((to.0 - from.0).abs().max((to.1 - from.1).abs()).ceil() as usize).max(1);
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let x = (from.0 + (to.0 - from.0) * t).round() as i64;
            let y = (from.1 + (to.1 - from.1) * t).round() as i64;
            self.fill_rect(
                x - thickness / 2,
                y - thickness / 2,
                thickness,
                thickness,
                c,
            );
        }
    }

    /// Draws `text` (upper-cased) with its top-left at (x, y), each font pixel `scale` pixels.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, c: Rgb) {
        for (i, ch) in text.chars().enumerate() {
            let bits = glyph(ch);
            let gx = x + i as i64 * 4 * scale;
            for row in 0..5 {
                for col in 0..3 {
                    if bits >> (14 - (row * 3 + col)) & 1 == 1 {
                        self.fill_rect(gx + col * scale, y + row * scale, scale, scale, c);
                    }
                }
            }
        }
    }

    /// Width in pixels of `text` drawn at `scale`.
    pub fn text_width(text: &str, scale: i64) -> i64 {
        (text.chars().count() as i64 * 4 - 1).max(0) * scale
    }

    /// Writes the canvas as an 8-bit RGB PNG.
    pub fn save(&self, path: &Path) -> Result<()> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut encoder = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .with_context(|| format!("writing {}", path.display()))?;
        let data: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        writer
            .write_image_data(&data)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// The 3×5 glyph of `ch` as 15 bits, row-major, top-left first; unknown characters are a box.
fn glyph(ch: char) -> u16 {
    let rows: &str = match ch.to_ascii_uppercase() {
        '0' => "111101101101111",
        '1' => "010110010010111",
        '2' => "111001111100111",
        '3' => "111001111001111",
        '4' => "101101111001001",
        '5' => "111100111001111",
        '6' => "111100111101111",
        '7' => "111001001001001",
        '8' => "111101111101111",
        '9' => "111101111001111",
        'A' => "010101111101101",
        'B' => "110101110101110",
        'C' => "011100100100011",
        'D' => "110101101101110",
        'E' => "111100110100111",
        'F' => "111100110100100",
        'G' => "011100101101011",
        'H' => "101101111101101",
        'I' => "111010010010111",
        'J' => "001001001101010",
        'K' => "101101110101101",
        'L' => "100100100100111",
        'M' => "101111111101101",
        'N' => "110101101101101",
        'O' => "010101101101010",
        'P' => "110101110100100",
        'Q' => "010101101110011",
        'R' => "110101110101101",
        'S' => "011100010001110",
        'T' => "111010010010010",
        'U' => "101101101101111",
        'V' => "101101101101010",
        'W' => "101101111111101",
        'X' => "101101010101101",
        'Y' => "101101010010010",
        'Z' => "111001010100111",
        '.' => "000000000000010",
        ',' => "000000000010100",
        ':' => "000010000010000",
        ';' => "000010000010100",
        '-' | '−' => "000000111000000",
        '+' => "000010111010000",
        '=' => "000111000111000",
        '(' => "001010010010001",
        ')' => "100010010010100",
        '/' => "001001010100100",
        '%' => "101001010100101",
        '_' => "000000000000111",
        '·' | '×' => "000000010000000",
        ' ' => "000000000000000",
        _ => "111101101101111",
    };
    rows.bytes()
        .fold(0, |acc, b| (acc << 1) | u16::from(b == b'1'))
}

/// A perceptual ramp (viridis stops) at `t ∈ [0, 1]`.
pub fn ramp(t: f64) -> Rgb {
    const STOPS: [Rgb; 5] = [
        [68, 1, 84],
        [59, 82, 139],
        [33, 145, 140],
        [94, 201, 98],
        [253, 231, 37],
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mut c = [0u8; 3];
    for k in 0..3 {
        c[k] = (STOPS[i][k] as f64 * (1.0 - f) + STOPS[i + 1][k] as f64 * f).round() as u8;
    }
    c
}

/// Heatmap of `matrix[t][j]` (accuracy in %, `T × T`, or `1 × T` for a joint training, whose
/// row is labelled `J`), titled; the diagonal of a square matrix is outlined.
pub fn heatmap(title: &str, matrix: &[Vec<f64>]) -> Canvas {
    let rows = matrix.len().max(1) as i64;
    let t = matrix.first().map_or(1, Vec::len).max(1) as i64;
    let joint = rows == 1 && t > 1;
    let cell = if t <= 6 { 56 } else { 30 };
    let (left, top) = (56, 64);
    let width = (left + t * cell + 16).max(Canvas::text_width(title, 2) + 24);
    let height = top + rows * cell + 40;
    let mut canvas = Canvas::new(width as usize, height as usize, WHITE);
    canvas.text(12, 10, title, 2, BLACK);
    canvas.text(
        12,
        34,
        if joint {
            "ROW: AFTER JOINT TRAINING ON ALL TASKS. COLUMN: TASK J. VALUES IN %"
        } else {
            "ROW: AFTER TRAINING TASK T. COLUMN: TASK J. VALUES IN %"
        },
        1,
        BLACK,
    );
    let scale = if cell >= 40 { 2 } else { 1 };
    for (r, row) in matrix.iter().enumerate() {
        let y = top + r as i64 * cell;
        let label = if joint {
            "J".to_string()
        } else {
            format!("T{}", r + 1)
        };
        canvas.text(12, y + cell / 2 - 5, &label, 2, BLACK);
        for (j, &v) in row.iter().enumerate() {
            let x = left + j as i64 * cell;
            let colour = ramp(v / 100.0);
            canvas.fill_rect(x, y, cell, cell, colour);
            let luminance =
                0.299 * colour[0] as f64 + 0.587 * colour[1] as f64 + 0.114 * colour[2] as f64;
            let ink = if luminance > 140.0 { BLACK } else { WHITE };
            let label = format!("{:.0}", v);
            let w = Canvas::text_width(&label, scale);
            canvas.text(
                x + (cell - w) / 2,
                y + (cell - 5 * scale) / 2,
                &label,
                scale,
                ink,
            );
            if r == j && !joint {
                canvas.stroke_rect(x, y, cell, cell, WHITE);
            }
        }
    }
    for j in 0..t {
        let label = format!("{}", j + 1);
        let w = Canvas::text_width(&label, 2);
        canvas.text(
            left + j * cell + (cell - w) / 2,
            top + rows * cell + 10,
            &label,
            2,
            BLACK,
        );
    }
    canvas
}

/// Curves of `y` (accuracy in %, one point per task trained) for each named series.
pub fn curves(title: &str, series: &[(String, Vec<f64>)]) -> Canvas {
    let (width, plot_h) = (760i64, 320i64);
    let (left, top, plot_w) = (60i64, 50i64, 420i64);
    let legend_x = left + plot_w + 24;
    let height = (top + plot_h + 50).max(top + 24 * series.len() as i64 + 20);
    let mut canvas = Canvas::new(width as usize, height as usize, WHITE);
    canvas.text(12, 12, title, 2, BLACK);
    let points = series
        .iter()
        .map(|(_, y)| y.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let x_of = |i: usize| left as f64 + plot_w as f64 * i as f64 / (points - 1) as f64;
    let y_of = |v: f64| (top + plot_h) as f64 - plot_h as f64 * v.clamp(0.0, 100.0) / 100.0;
    for tick in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let y = y_of(tick) as i64;
        canvas.fill_rect(left, y, plot_w, 1, GREY);
        let label = format!("{tick:.0}");
        canvas.text(
            left - 10 - Canvas::text_width(&label, 2),
            y - 5,
            &label,
            2,
            BLACK,
        );
    }
    for i in 0..points {
        let x = x_of(i) as i64;
        canvas.fill_rect(x, top + plot_h, 1, 6, BLACK);
        let label = format!("{}", i + 1);
        canvas.text(
            x - Canvas::text_width(&label, 2) / 2,
            top + plot_h + 10,
            &label,
            2,
            BLACK,
        );
    }
    canvas.text(
        left,
        top + plot_h + 30,
        "TASKS TRAINED; Y: MEAN ACCURACY ON TASKS SEEN (%)",
        1,
        BLACK,
    );
    canvas.stroke_rect(left, top, plot_w + 1, plot_h + 1, BLACK);
    for (k, (name, ys)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        for (i, pair) in ys.windows(2).enumerate() {
            canvas.line(
                (x_of(i), y_of(pair[0])),
                (x_of(i + 1), y_of(pair[1])),
                colour,
                3,
            );
        }
        for (i, &v) in ys.iter().enumerate() {
            canvas.fill_rect(x_of(i) as i64 - 3, y_of(v) as i64 - 3, 7, 7, colour);
        }
        let y = top + 24 * k as i64;
        canvas.fill_rect(legend_x, y, 16, 10, colour);
        canvas.text(legend_x + 22, y, name, 2, BLACK);
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_are_fifteen_bits_and_text_inks_pixels() {
        assert_eq!(glyph('1'), 0b010_110_010_010_111);
        let mut c = Canvas::new(20, 10, WHITE);
        c.text(0, 0, "1", 1, BLACK);
        assert_eq!(c.pixel(1, 0), Some(BLACK));
        assert_eq!(c.pixel(0, 0), Some(WHITE));
        assert_eq!(Canvas::text_width("12", 2), 14);
    }

    #[test]
    fn a_joint_heatmap_has_one_row_of_cells() {
        let square = heatmap("SQUARE", &[vec![90.0, 10.0], vec![60.0, 80.0]]);
        let joint = heatmap("JOINT", &[vec![90.0, 60.0, 30.0, 80.0, 70.0]]);
        // One row of 56-pixel cells under the 64-pixel header, 40 below.
        assert_eq!(joint.height, 64 + 56 + 40);
        assert_eq!(square.height, 64 + 2 * 56 + 40);
        assert_eq!(joint.width, 56 + 5 * 56 + 16);
        // The fifth cell is drawn (70 %), and nothing below the single row.
        assert_eq!(joint.pixel(56 + 4 * 56 + 2, 64 + 2), Some(ramp(0.7)));
        if let Some(dir) = std::env::var_os("CL_PLOT_SAMPLES") {
            joint
                .save(&std::path::Path::new(&dir).join("joint-heatmap.png"))
                .unwrap();
        }
    }

    #[test]
    fn ramp_runs_from_dark_to_light_and_clamps() {
        assert_eq!(ramp(0.0), [68, 1, 84]);
        assert_eq!(ramp(1.0), [253, 231, 37]);
        assert_eq!(ramp(7.0), ramp(1.0));
        assert_eq!(ramp(f64::NAN), ramp(0.0));
    }

    #[test]
    fn heatmap_colours_cells_by_value_and_png_round_trips() {
        let m = vec![vec![100.0, 0.0], vec![50.0, 100.0]];
        let c = heatmap("TEST", &m);
        // Cell (1, 0) = 50% at its corner pixel (left 56, top 64, cell 56).
        assert_eq!(c.pixel(56 + 1, 64 + 56 + 1), Some(ramp(0.5)));
        assert_eq!(c.pixel(56 + 56 + 2, 64 + 2), Some(ramp(0.0)));
        let path = std::env::temp_dir().join(format!("xtask-heatmap-{}.png", std::process::id()));
        c.save(&path).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let reader = decoder.read_info().unwrap();
        assert_eq!(
            (reader.info().width as usize, reader.info().height as usize),
            (c.width, c.height)
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn curves_draw_each_series_in_its_colour() {
        let c = curves(
            "T",
            &[
                ("A".into(), vec![100.0, 100.0]),
                ("B".into(), vec![0.0, 0.0]),
            ],
        );
        // The first series runs along the top edge (y = 50), the second along the bottom.
        assert_eq!(c.pixel(200, 50), Some(PALETTE[0]));
        assert_eq!(c.pixel(200, 370), Some(PALETTE[1]));
    }
}
