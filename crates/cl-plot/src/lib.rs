//! `cl-plot`: the plots of cl-peft's reports, drawn with `plotters` into SVG strings (crisp at
//! any size, text left to the viewer, so no font file is needed).
//!
//! - [`heatmap`]: an accuracy matrix `[rows][tasks]` in %, one cell per (after task t, task j);
//!   a one-row matrix is a joint training (row `J`).
//! - [`curves`]: accuracy against the number of tasks trained, one line per [`Series`], with a
//!   band of ± one standard deviation (over seeds / orders) where it has more than one run.
//! - [`scatter`]: labelled points, e.g. stored parameters against accuracy, optionally on a log
//!   x axis.

use plotters::coord::Shift;
use plotters::prelude::*;

/// A plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Nothing to draw.
    #[error("plot `{title}`: {reason}")]
    Empty {
        /// The plot's title.
        title: String,
        /// What is missing.
        reason: String,
    },
    /// plotters failed.
    #[error("plot `{title}`: {message}")]
    Draw {
        /// The plot's title.
        title: String,
        /// plotters' error.
        message: String,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, PlotError>;

/// Distinct line colours (Okabe–Ito, then a few more).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(0, 0, 0),
    RGBColor(150, 40, 40),
    RGBColor(90, 60, 160),
];

/// A perceptual ramp (viridis stops) at `t ∈ [0, 1]` (non-finite values are 0).
pub fn ramp(t: f64) -> RGBColor {
    const STOPS: [[u8; 3]; 5] = [
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
    let mix =
        |k: usize| (STOPS[i][k] as f64 * (1.0 - f) + STOPS[i + 1][k] as f64 * f).round() as u8;
    RGBColor(mix(0), mix(1), mix(2))
}

fn draw_error(title: &str) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError::Draw {
        title: title.to_string(),
        message,
    }
}

/// Runs `draw` on a white `width × height` SVG and returns the document.
fn svg(
    title: &str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| draw_error(title)(e.to_string()))?;
        draw(&root).map_err(draw_error(title))?;
        root.present()
            .map_err(|e| draw_error(title)(e.to_string()))?;
    }
    Ok(out)
}

/// A heatmap of `matrix[t][j]` (accuracy in %): rows `T1…` (after training task t) or `J` for a
/// one-row joint training, columns the tasks (`task_names` up to six columns, else 1…); each cell shows
/// its value; the diagonal of a square matrix is outlined.
pub fn heatmap(title: &str, matrix: &[Vec<f64>], task_names: &[String]) -> Result<String> {
    let rows = matrix.len();
    let cols = matrix.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 || matrix.iter().any(|r| r.len() != cols) {
        return Err(PlotError::Empty {
            title: title.into(),
            reason: format!("the matrix must be non-empty and rectangular ({rows} rows)"),
        });
    }
    let joint = rows == 1 && cols > 1;
    let cell = if cols <= 6 { 64 } else { 40 };
    let width = (90 + cols as u32 * cell + 30).max(420);
    let height = 70 + rows as u32 * cell + 70;
    // Names fit under up to six columns; wider matrices are numbered.
    let column = |j: usize| match task_names.get(j) {
        Some(name) if cols <= 6 => name.clone(),
        _ => format!("{}", j + 1),
    };
    svg(title, (width, height), |root| {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(50)
            .build_cartesian_2d(0.5f64..cols as f64 + 0.5, rows as f64 + 0.5..0.5f64)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols)
            .y_labels(rows)
            .x_label_formatter(&|v| column((v.round() as usize).saturating_sub(1)))
            .y_label_formatter(&|v| {
                if joint {
                    "J".into()
                } else {
                    format!("T{}", v.round() as usize)
                }
            })
            .x_desc("task evaluated")
            .y_desc(if joint {
                "after joint training"
            } else {
                "after training task"
            })
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|x| e(&x))?;
        for (r, row) in matrix.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let (x, y) = (j as f64 + 1.0, r as f64 + 1.0);
                let colour = ramp(v / 100.0);
                let corners = [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)];
                chart
                    .draw_series(std::iter::once(Rectangle::new(corners, colour.filled())))
                    .map_err(|x| e(&x))?;
                if r == j && !joint {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x - 0.47, y - 0.47), (x + 0.47, y + 0.47)],
                            WHITE.stroke_width(2),
                        )))
                        .map_err(|x| e(&x))?;
                }
                let luminance =
                    0.299 * colour.0 as f64 + 0.587 * colour.1 as f64 + 0.114 * colour.2 as f64;
                let ink = if luminance > 140.0 { BLACK } else { WHITE };
                let style = ("sans-serif", 15).into_font().color(&ink).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ),
                );
                chart
                    .draw_series(std::iter::once(Text::new(format!("{v:.0}"), (x, y), style)))
                    .map_err(|x| e(&x))?;
            }
        }
        Ok(())
    })
}

/// One line of [`curves`]: `mean[i]` after `i + 1` tasks, `std[i]` its spread (empty, or zeros,
/// for a single run: no band).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub label: String,
    /// The value after each task, in %.
    pub mean: Vec<f64>,
    /// One standard deviation at each point (same length as `mean`, or empty).
    pub std: Vec<f64>,
}

impl Series {
    /// The "mean accuracy on the tasks seen" line of several runs of one method, each run an
    /// accuracy matrix in % (row `t` = after training task `t`): per run
    /// [`seen_accuracy`], then the mean and the sample standard deviation over the runs after
    /// each task (0 for one run), as many points as the shortest run has rows.
    pub fn seen_accuracy(label: impl Into<String>, matrices: &[&[Vec<f64>]]) -> Series {
        let curves: Vec<Vec<f64>> = matrices.iter().map(|m| seen_accuracy(m)).collect();
        let points = curves.iter().map(Vec::len).min().unwrap_or(0);
        let n = curves.len() as f64;
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for i in 0..points {
            let m = curves.iter().map(|c| c[i]).sum::<f64>() / n;
            let var = if curves.len() > 1 {
                curves.iter().map(|c| (c[i] - m).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            mean.push(m);
            std.push(var.sqrt());
        }
        Series {
            label: label.into(),
            mean,
            std,
        }
    }
}

/// Mean accuracy over the tasks seen after each task of an accuracy matrix (row `t` = after
/// task `t`): `(1/(t+1)) Σ_{j≤t} R[t][j]` (over the row's entries where it is shorter).
pub fn seen_accuracy(matrix: &[Vec<f64>]) -> Vec<f64> {
    matrix
        .iter()
        .enumerate()
        .map(|(t, row)| {
            let seen = &row[..(t + 1).min(row.len())];
            seen.iter().sum::<f64>() / seen.len().max(1) as f64
        })
        .collect()
}

/// Approximate advance of one character of the 13-px legend font, in pixels.
const LEGEND_CHAR_PX: usize = 8;
/// The widest legend column beside [`curves`]' plot; longer labels wrap.
const LEGEND_MAX_PX: usize = 420;

/// `label` cut at spaces into lines of at most `max_chars` characters (a longer word stays
/// whole on its own line).
fn wrap(label: &str, max_chars: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in label.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= max_chars => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Lines of accuracy (%) against tasks trained (1…), each with its ± std band, and a legend in
/// a column to the right of the plot (so it never hides a line).
pub fn curves(title: &str, y_desc: &str, series: &[Series]) -> Result<String> {
    let points = series.iter().map(|s| s.mean.len()).max().unwrap_or(0);
    if points == 0 {
        return Err(PlotError::Empty {
            title: title.into(),
            reason: "no series has a point".into(),
        });
    }
    let max_chars = (LEGEND_MAX_PX - 40) / LEGEND_CHAR_PX;
    let labels: Vec<Vec<String>> = series.iter().map(|s| wrap(&s.label, max_chars)).collect();
    let widest = labels
        .iter()
        .flatten()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    let legend_width = (40 + widest * LEGEND_CHAR_PX + 10) as u32;
    svg(title, (760 + legend_width, 420), |root| {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let x_max = points.max(2) as f64;
        let (plot, legend) = root.split_horizontally(760);
        let mut legend_y = 52;
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .build_cartesian_2d(1f64..x_max, 0f64..100f64)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_labels(points.max(2))
            .x_label_formatter(&|v| format!("{:.0}", v))
            .y_labels(11)
            .x_desc("tasks trained")
            .y_desc(y_desc)
            .label_style(("sans-serif", 13))
            .light_line_style(WHITE)
            .draw()
            .map_err(|x| e(&x))?;
        for (k, s) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let at = |i: usize| (i as f64 + 1.0, s.mean[i]);
            if s.std.len() == s.mean.len() && s.std.iter().any(|&d| d > 0.0) {
                let upper = (0..s.mean.len()).map(|i| (at(i).0, (s.mean[i] + s.std[i]).min(100.0)));
                let lower = (0..s.mean.len())
                    .rev()
                    .map(|i| (at(i).0, (s.mean[i] - s.std[i]).max(0.0)));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        upper.chain(lower).collect::<Vec<_>>(),
                        colour.mix(0.18).filled(),
                    )))
                    .map_err(|x| e(&x))?;
            }
            chart
                .draw_series(LineSeries::new(
                    (0..s.mean.len()).map(at),
                    colour.stroke_width(3),
                ))
                .map_err(|x| e(&x))?;
            chart
                .draw_series((0..s.mean.len()).map(|i| Circle::new(at(i), 4, colour.filled())))
                .map_err(|x| e(&x))?;
            // The legend entry: a line and the label (wrapped), top-aligned with the plot area.
            legend
                .draw(&PathElement::new(
                    vec![(4, legend_y), (28, legend_y)],
                    colour.stroke_width(3),
                ))
                .map_err(|x| e(&x))?;
            for line in &labels[k] {
                legend
                    .draw(&Text::new(
                        line.clone(),
                        (36, legend_y - 7),
                        ("sans-serif", 13).into_font().color(&BLACK),
                    ))
                    .map_err(|x| e(&x))?;
                legend_y += 16;
            }
            legend_y += 8;
        }
        Ok(())
    })
}

/// `v` as an axis label: integers without decimals, large values as `1.2e6`.
fn compact(v: f64) -> String {
    if v.abs() >= 1e5 {
        format!("{v:.1e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One labelled point of [`scatter`].
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Shown beside the point.
    pub label: String,
    /// Horizontal value (e.g. stored parameters).
    pub x: f64,
    /// Vertical value (e.g. accuracy in %).
    pub y: f64,
    /// Which colour group (0 = the first of [`PALETTE`]).
    pub group: usize,
}

/// Labelled points; `log_x` puts x on a log scale (every x must then be positive).
pub fn scatter(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[Point],
    log_x: bool,
) -> Result<String> {
    if points.is_empty() || (log_x && points.iter().any(|p| p.x <= 0.0)) {
        return Err(PlotError::Empty {
            title: title.into(),
            reason: "needs at least one point (with x > 0 on a log axis)".into(),
        });
    }
    let (x_lo, x_hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.x), hi.max(p.x))
        });
    let (y_lo, y_hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.y), hi.max(p.y))
        });
    let y_range = (y_lo - 5.0).max(0.0)..(y_hi + 5.0).min(100.0).max(y_lo + 1.0);
    svg(title, (760, 440), |root| {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(54);
        macro_rules! draw_points {
            ($chart:expr) => {{
                let chart = &mut $chart;
                chart
                    .configure_mesh()
                    .x_label_formatter(&|v| compact(*v))
                    .x_desc(x_desc)
                    .y_desc(y_desc)
                    .label_style(("sans-serif", 13))
                    .light_line_style(WHITE)
                    .draw()
                    .map_err(|x| e(&x))?;
                for p in points {
                    let colour = PALETTE[p.group % PALETTE.len()];
                    let marker = EmptyElement::at((p.x, p.y))
                        + Circle::new((0, 0), 5, colour.filled())
                        + Text::new(
                            p.label.clone(),
                            (8, -14),
                            ("sans-serif", 12).into_font().color(&BLACK),
                        );
                    chart
                        .draw_series(std::iter::once(marker))
                        .map_err(|x| e(&x))?;
                }
            }};
        }
        if log_x {
            let mut chart = builder
                .build_cartesian_2d((x_lo / 2.0..x_hi * 2.0).log_scale(), y_range.clone())
                .map_err(|x| e(&x))?;
            draw_points!(chart);
        } else {
            let pad = ((x_hi - x_lo) * 0.1).max(1.0);
            let mut chart = builder
                .build_cartesian_2d(x_lo - pad..x_hi + pad, y_range.clone())
                .map_err(|x| e(&x))?;
            draw_points!(chart);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    #[test]
    fn a_heatmap_has_a_cell_and_a_value_per_entry_and_outlines_the_diagonal() {
        let m = vec![vec![80.0, 10.0], vec![60.0, 90.0]];
        let svg = heatmap("seq-lora text5", &m, &["dbpedia".into(), "amazon".into()]).unwrap();
        assert!(svg.contains("<svg"));
        assert!(svg.contains("seq-lora text5") && svg.contains("amazon"));
        for v in ["80", "10", "60", "90"] {
            assert_eq!(count(&svg, &format!(">\n{v}\n</text>")), 1, "{v}");
        }
        // Four filled cells plus two diagonal outlines (and the background).
        assert!(count(&svg, "<rect") > 6, "{}", count(&svg, "<rect"));
        let joint = heatmap("mtl", &[vec![70.0, 75.0, 80.0]], &[]).unwrap();
        assert!(joint.contains("after joint training") && joint.contains(">\nJ\n</text>"));
        assert!(heatmap("ragged", &[vec![1.0], vec![1.0, 2.0]], &[]).is_err());
        assert!(heatmap("empty", &[], &[]).is_err());
    }

    #[test]
    fn ramp_runs_from_dark_to_light_and_clamps() {
        let lum = |c: RGBColor| c.0 as u32 + c.1 as u32 + c.2 as u32;
        assert!(lum(ramp(0.0)) < lum(ramp(0.5)) && lum(ramp(0.5)) < lum(ramp(1.0)));
        assert_eq!(ramp(-1.0), ramp(0.0));
        assert_eq!(ramp(f64::NAN), ramp(0.0));
        assert_eq!(ramp(2.0), ramp(1.0));
    }

    #[test]
    fn curves_draw_a_band_only_where_runs_spread() {
        let one = Series {
            label: "seq-lora".into(),
            mean: vec![90.0, 60.0, 40.0],
            std: vec![],
        };
        let spread = Series {
            label: "rkif".into(),
            mean: vec![90.0, 80.0, 75.0],
            std: vec![1.0, 3.0, 2.0],
        };
        let a = curves(
            "text5",
            "accuracy on tasks seen (%)",
            std::slice::from_ref(&one),
        )
        .unwrap();
        let b = curves("text5", "accuracy on tasks seen (%)", &[one, spread]).unwrap();
        assert_eq!(count(&a, "<polygon"), 0);
        assert_eq!(count(&b, "<polygon"), 1);
        assert!(b.contains("rkif") && b.contains("seq-lora") && b.contains("tasks trained"));
        assert!(curves("none", "y", &[]).is_err());
        assert_eq!(
            wrap("Fine-tuning (shared weights, per-task heads)", 20),
            vec!["Fine-tuning (shared", "weights, per-task", "heads)"]
        );
        assert_eq!(wrap("a-very-long-word x", 5), vec!["a-very-long-word", "x"]);
    }

    #[test]
    fn seen_accuracy_lines_average_the_lower_triangle_then_the_runs() {
        let a = vec![vec![80.0, 10.0], vec![60.0, 90.0]];
        let b = vec![vec![60.0, 30.0], vec![40.0, 70.0]];
        assert_eq!(seen_accuracy(&a), vec![80.0, 75.0]);
        let line = Series::seen_accuracy("rkif", &[&a, &b]);
        assert_eq!(line.label, "rkif");
        assert_eq!(line.mean, vec![70.0, 65.0]);
        let sd = (2.0f64 * 100.0).sqrt();
        assert!((line.std[0] - sd).abs() < 1e-12 && (line.std[1] - sd).abs() < 1e-12);
        assert_eq!(Series::seen_accuracy("one", &[&a]).std, vec![0.0, 0.0]);
        let short = vec![vec![50.0, 0.0]];
        assert_eq!(
            Series::seen_accuracy("ragged", &[&a, &short]).mean,
            vec![65.0]
        );
    }

    #[test]
    fn a_scatter_labels_every_point_on_a_log_axis() {
        let points: Vec<Point> = [
            (1e3, 70.0, "4x4"),
            (1e4, 75.0, "16x16"),
            (1e6, 80.0, "full"),
        ]
        .iter()
        .map(|&(x, y, l)| Point {
            label: l.into(),
            x,
            y,
            group: 0,
        })
        .collect();
        let svg = scatter(
            "vision6",
            "stored parameters per task",
            "OP (%)",
            &points,
            true,
        )
        .unwrap();
        for l in ["4x4", "16x16", "full"] {
            assert!(svg.contains(l), "{l}");
        }
        assert_eq!(count(&svg, "<circle"), 3);
        let mut bad = points.clone();
        bad[0].x = 0.0;
        assert!(scatter("bad", "x", "y", &bad, true).is_err());
    }
}
