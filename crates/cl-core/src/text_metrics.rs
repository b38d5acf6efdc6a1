//! Scores of a generated answer against its reference text, as the TRACE benchmark (Wang et al.
//! 2023, github.com/BeyonderXX/TRACE, `evaluations/` and `metrics.py`) scores its tasks. Each
//! score is in `[0, 1]`; a task's score is the mean over its test examples, where an empty
//! answer or an empty reference scores 0 (TRACE skips the pair but still divides by every
//! example), SARI aside (TRACE passes every example to it).
//!
//! - [`TextMetric::ExactString`]: the whole answer equals the reference, character for
//!   character (C-STANCE, FOMC, NumGLUE-cm, NumGLUE-ds).
//! - [`TextMetric::FirstChar`]: the first characters are equal (ScienceQA, whose answers start
//!   with the option letter).
//! - [`TextMetric::RougeL`]: ROUGE-L F1 of the `rouge` 1.0.1 package (summary level: texts cut
//!   into sentences at `.`, words at single spaces, no case folding; the union LCS counted over
//!   distinct words) (MeetingBank).
//! - [`TextMetric::CodeSimilarity`]: fuzzywuzzy's `fuzz.ratio` / 100 (Python `difflib`'s
//!   `SequenceMatcher` ratio, rounded to a whole percent, half to even) after TRACE's Py150
//!   literal post-processing of both strings (Py150).
//! - [`TextMetric::Sari`]: SARI of the HuggingFace `sari` metric / 100 (sacrebleu's `13a`
//!   tokenisation after lower-casing; keep F1, deletion precision and addition F1 averaged over
//!   1- to 4-grams), with the prompt as the source and one reference (20Minuten).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How a generated answer is scored against its reference (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextMetric {
    /// The answer equals the reference exactly.
    ExactString,
    /// The answers' first characters are equal.
    FirstChar,
    /// ROUGE-L F1.
    RougeL,
    /// fuzzywuzzy's ratio after Py150's literal post-processing.
    CodeSimilarity,
    /// SARI against the source text.
    Sari,
}

impl TextMetric {
    /// Every metric.
    pub const ALL: [TextMetric; 5] = [
        TextMetric::ExactString,
        TextMetric::FirstChar,
        TextMetric::RougeL,
        TextMetric::CodeSimilarity,
        TextMetric::Sari,
    ];

    /// Short name in reports.
    pub fn name(self) -> &'static str {
        match self {
            TextMetric::ExactString => "accuracy",
            TextMetric::FirstChar => "first-char accuracy",
            TextMetric::RougeL => "ROUGE-L",
            TextMetric::CodeSimilarity => "edit similarity",
            TextMetric::Sari => "SARI",
        }
    }

    /// Whether the score reads the example's source text (its prompt).
    pub fn needs_source(self) -> bool {
        self == TextMetric::Sari
    }

    /// The score in `[0, 1]` of `answer` against `reference` (`source`: the prompt, read by
    /// [`TextMetric::Sari`] only; empty when absent).
    pub fn score(self, answer: &str, reference: &str, source: &str) -> f64 {
        if self != TextMetric::Sari && (answer.is_empty() || reference.is_empty()) {
            return 0.0;
        }
        match self {
            TextMetric::ExactString => f64::from(u8::from(answer == reference)),
            TextMetric::FirstChar => {
                f64::from(u8::from(answer.chars().next() == reference.chars().next()))
            }
            TextMetric::RougeL => rouge_l(answer, reference),
            TextMetric::CodeSimilarity => {
                fuzz_ratio(&py150_literals(answer), &py150_literals(reference)) / 100.0
            }
            TextMetric::Sari => sari(source, answer, &[reference]) / 100.0,
        }
    }
}

/// ROUGE-L F1 of the `rouge` 1.0.1 package as TRACE calls it
/// (`Rouge(metrics=["rouge-l"]).get_scores(reference, answer)["rouge-l"]["f"]`): both texts cut
/// into sentences at `.`, whitespace runs collapsed, words split at single spaces; the union of
/// each sentence pair's LCS words over the distinct words of each side. 0 where a text has no
/// sentence (the package raises there).
pub fn rouge_l(answer: &str, reference: &str) -> f64 {
    let sentences = |text: &str| -> Vec<Vec<String>> {
        text.split('.')
            .filter(|piece| !piece.is_empty())
            .map(|piece| {
                piece
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .split(' ')
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    };
    // TRACE passes the reference as the package's hypothesis and the answer as its reference.
    let evaluated = sentences(reference);
    let references = sentences(answer);
    if evaluated.is_empty() || references.is_empty() {
        return 0.0;
    }
    let distinct = |s: &[Vec<String>]| s.iter().flatten().collect::<BTreeSet<_>>().len() as f64;
    let m = distinct(&references);
    let n = distinct(&evaluated);
    let mut union: BTreeSet<&str> = BTreeSet::new();
    for reference in &references {
        for evaluated in &evaluated {
            union.extend(lcs_words(reference, evaluated));
        }
    }
    let llcs = union.len() as f64;
    let (r, p) = (llcs / m, llcs / n);
    2.0 * (p * r / (p + r + 1e-8))
}

/// The words of one longest common subsequence of `x` and `y`, reconstructed from the end as
/// the package does (on a tie, `y` is shortened first).
fn lcs_words<'a>(x: &'a [String], y: &[String]) -> Vec<&'a str> {
    let (n, m) = (x.len(), y.len());
    let mut table = vec![vec![0usize; m + 1]; n + 1];
    for i in 1..=n {
        for j in 1..=m {
            table[i][j] = if x[i - 1] == y[j - 1] {
                table[i - 1][j - 1] + 1
            } else {
                table[i - 1][j].max(table[i][j - 1])
            };
        }
    }
    let (mut i, mut j) = (n, m);
    let mut words = Vec::new();
    while i > 0 && j > 0 {
        if x[i - 1] == y[j - 1] {
            words.push(x[i - 1].as_str());
            i -= 1;
            j -= 1;
        } else if table[i - 1][j] > table[i][j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    words
}

/// fuzzywuzzy's `fuzz.ratio`: 100 for equal strings, 0 where one is empty, else
/// `round(100 · SequenceMatcher(None, a, b).ratio())` (Python's rounding, half to even).
pub fn fuzz_ratio(a: &str, b: &str) -> f64 {
    if a == b {
        return 100.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    (100.0 * sequence_matcher_ratio(a, b)).round_ties_even()
}

/// Python `difflib.SequenceMatcher(None, a, b).ratio()` over characters: `2 M / T`, `M` the
/// characters in the matching blocks it finds, `T` both lengths. Its heuristics are kept: the
/// longest match is searched among the elements of `b` that are not "popular" (more than
/// `len(b) / 100 + 1` occurrences where `b` has 200 characters or more), then extended over
/// equal neighbours, and the regions either side are matched recursively.
pub fn sequence_matcher_ratio(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    let mut b2j: HashMap<char, Vec<usize>> = HashMap::new();
    for (j, &c) in b.iter().enumerate() {
        b2j.entry(c).or_default().push(j);
    }
    if b.len() >= 200 {
        let popular = b.len() / 100 + 1;
        b2j.retain(|_, js| js.len() <= popular);
    }
    let mut matched = 0;
    let mut queue = vec![(0, a.len(), 0, b.len())];
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = longest_match(&a, &b, &b2j, (alo, ahi, blo, bhi));
        if k > 0 {
            matched += k;
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    2.0 * matched as f64 / total as f64
}

/// `find_longest_match` of difflib without junk: `(i, j, size)`, the earliest longest block.
fn longest_match(
    a: &[char],
    b: &[char],
    b2j: &HashMap<char, Vec<usize>>,
    (alo, ahi, blo, bhi): (usize, usize, usize, usize),
) -> (usize, usize, usize) {
    let (mut besti, mut bestj, mut best) = (alo, blo, 0);
    let mut j2len: HashMap<usize, usize> = HashMap::new();
    for (i, c) in a.iter().enumerate().take(ahi).skip(alo) {
        let mut next: HashMap<usize, usize> = HashMap::new();
        for &j in b2j.get(c).map(Vec::as_slice).unwrap_or(&[]) {
            if j < blo {
                continue;
            }
            if j >= bhi {
                break;
            }
            let k = j
                .checked_sub(1)
                .and_then(|p| j2len.get(&p))
                .copied()
                .unwrap_or(0)
                + 1;
            next.insert(j, k);
            if k > best {
                (besti, bestj, best) = (i + 1 - k, j + 1 - k, k);
            }
        }
        j2len = next;
    }
    while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
        (besti, bestj, best) = (besti - 1, bestj - 1, best + 1);
    }
    while besti + best < ahi && bestj + best < bhi && a[besti + best] == b[bestj + best] {
        best += 1;
    }
    (besti, bestj, best)
}

/// TRACE's Py150 post-processing: `<NUM_LIT>` → `0`, `<STR_LIT>` and `<CHAR_LIT>` removed,
/// `<STR_LIT:x>`, `<NUM_LIT:x>`, `<CHAR_LIT:x>` → `x`.
pub fn py150_literals(code: &str) -> String {
    static LITERAL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?s)<(STR|NUM|CHAR)_LIT:(.*?)>").expect("valid regex"));
    let code = code
        .replace("<NUM_LIT>", "0")
        .replace("<STR_LIT>", "")
        .replace("<CHAR_LIT>", "");
    // As TRACE does: every literal found is then replaced wherever it occurs.
    let found: Vec<(String, String)> = LITERAL
        .captures_iter(&code)
        .map(|c| (c[0].to_string(), c[2].to_string()))
        .collect();
    found
        .into_iter()
        .fold(code, |code, (whole, value)| code.replace(&whole, &value))
}

/// sacrebleu's `13a` tokenisation (the default of BLEU and of the `sari` metric).
pub fn tokenize_13a(line: &str) -> String {
    static RULES: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
        let re = |p: &str| Regex::new(p).expect("valid regex");
        [
            // Symbols: { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /
            (
                re(r"([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40\x2F])"),
                " ${1} ",
            ),
            // Period and comma unless preceded by a digit.
            (re(r"([^0-9])([.,])"), "${1} ${2} "),
            // Period and comma unless followed by a digit.
            (re(r"([.,])([^0-9])"), " ${1} ${2}"),
            // A dash preceded by a digit.
            (re(r"([0-9])(-)"), "${1} ${2} "),
        ]
    });
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (rule, replacement) in RULES.iter() {
        line = rule.replace_all(&line, *replacement).into_owned();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// SARI in `[0, 100]` of one prediction, as the HuggingFace `sari` metric computes it for one
/// example: the texts lower-cased and [`tokenize_13a`]-tokenised, then the keep F1, the
/// deletion precision and the addition F1 averaged over 1- to 4-grams, and those three
/// averaged.
pub fn sari(source: &str, prediction: &str, references: &[&str]) -> f64 {
    let norm = |s: &str| tokenize_13a(&s.to_lowercase());
    let (source, prediction) = (norm(source), norm(prediction));
    let references: Vec<String> = references.iter().map(|r| norm(r)).collect();
    let grams = |text: &str| -> [Vec<String>; 4] {
        let words: Vec<&str> = text.split(' ').collect();
        std::array::from_fn(|k| words.windows(k + 1).map(|w| w.join(" ")).collect())
    };
    let s = grams(&source);
    let c = grams(&prediction);
    let r: Vec<[Vec<String>; 4]> = references.iter().map(|t| grams(t)).collect();
    let (mut keep, mut del, mut add) = (0.0, 0.0, 0.0);
    for k in 0..4 {
        let refs: Vec<&[String]> = r.iter().map(|g| g[k].as_slice()).collect();
        let (kp, dp, ap) = sari_ngram(&s[k], &c[k], &refs);
        keep += kp;
        del += dp;
        add += ap;
    }
    100.0 * (keep / 4.0 + del / 4.0 + add / 4.0) / 3.0
}

type Counts<'a> = BTreeMap<&'a str, usize>;

fn counts<'a>(grams: impl IntoIterator<Item = &'a String>, times: usize) -> Counts<'a> {
    let mut out = Counts::new();
    for g in grams {
        *out.entry(g.as_str()).or_default() += times;
    }
    out
}

/// Python `Counter` intersection (`&`: the smaller count, kept where positive).
fn meet<'a>(a: &Counts<'a>, b: &Counts<'a>) -> Counts<'a> {
    a.iter()
        .filter_map(|(g, &n)| b.get(g).map(|&m| (*g, n.min(m))))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// Python `Counter` difference (`-`: counts subtracted, kept where positive).
fn minus<'a>(a: &Counts<'a>, b: &Counts<'a>) -> Counts<'a> {
    a.iter()
        .map(|(g, &n)| (*g, n.saturating_sub(b.get(g).copied().unwrap_or(0))))
        .filter(|&(_, n)| n > 0)
        .collect()
}

fn f1(p: f64, r: f64) -> f64 {
    if p > 0.0 || r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

/// `SARIngram` of the HuggingFace metric: (keep F1, deletion precision, addition F1) of one
/// n-gram order, 0/0 counted as 1.
fn sari_ngram(source: &[String], prediction: &[String], refs: &[&[String]]) -> (f64, f64, f64) {
    let numref = refs.len();
    let r = counts(refs.iter().flat_map(|g| g.iter()), 1);
    let s = counts(source, numref);
    let c = counts(prediction, numref);

    let kept = meet(&s, &c);
    let kept_good = meet(&kept, &r);
    let kept_all = meet(&s, &r);
    let keep_p = if kept.is_empty() {
        1.0
    } else {
        kept_good
            .iter()
            .map(|(g, &n)| n as f64 / kept[g] as f64)
            .sum::<f64>()
            / kept.len() as f64
    };
    let keep_r = if kept_all.is_empty() {
        1.0
    } else {
        kept_good.values().sum::<usize>() as f64 / kept_all.values().sum::<usize>() as f64
    };

    let deleted = minus(&s, &c);
    let deleted_good = minus(&deleted, &r);
    let del_p = if deleted.is_empty() {
        1.0
    } else {
        deleted_good
            .iter()
            .map(|(g, &n)| n as f64 / deleted[g] as f64)
            .sum::<f64>()
            / deleted.len() as f64
    };

    let added: BTreeSet<&str> = c.keys().filter(|g| !s.contains_key(*g)).copied().collect();
    let added_good = added.iter().filter(|g| r.contains_key(*g)).count() as f64;
    let added_all = r.keys().filter(|g| !s.contains_key(*g)).count();
    let add_p = if added.is_empty() {
        1.0
    } else {
        added_good / added.len() as f64
    };
    let add_r = if added_all == 0 {
        1.0
    } else {
        added_good / added_all as f64
    };
    (f1(keep_p, keep_r), del_p, f1(add_p, add_r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sari_matches_the_huggingface_metric_example() {
        // The example of the HuggingFace `sari` metric's documentation: 26.953601953601954.
        let got = sari(
            "About 95 species are currently accepted.",
            "About 95 you now get in.",
            &[
                "About 95 species are currently known.",
                "About 95 species are now accepted.",
                "95 species are now accepted.",
            ],
        );
        assert!((got - 26.953601953601954).abs() < 1e-9, "{got}");
        // A prediction equal to its only reference and its source keeps everything.
        let same = sari("a b c", "a b c", &["a b c"]);
        assert!((same - 100.0).abs() < 1e-9, "{same}");
    }

    #[test]
    fn tokenize_13a_splits_punctuation_but_not_numbers() {
        assert_eq!(
            tokenize_13a("Hello, world! It costs 3.50 (approx.)-ish 1-2."),
            "Hello , world ! It costs 3.50 ( approx . ) -ish 1 - 2 ."
        );
        assert_eq!(tokenize_13a("a &amp; b"), "a & b");
    }

    #[test]
    fn sequence_matcher_and_fuzz_ratio_match_python() {
        // difflib.SequenceMatcher(None, "abcd", "bcde").ratio() == 0.75
        assert!((sequence_matcher_ratio("abcd", "bcde") - 0.75).abs() < 1e-12);
        // fuzz.ratio("this is a test", "this is a test!") == 97
        assert_eq!(fuzz_ratio("this is a test", "this is a test!"), 97.0);
        // fuzz.ratio("fuzzy wuzzy was a bear", "wuzzy fuzzy was a bear") == 91
        assert_eq!(
            fuzz_ratio("fuzzy wuzzy was a bear", "wuzzy fuzzy was a bear"),
            91.0
        );
        assert_eq!(fuzz_ratio("", "x"), 0.0);
        assert_eq!(fuzz_ratio("same", "same"), 100.0);
        assert_eq!(fuzz_ratio("abcd", "wxya"), 25.0);
        // 2 · 1 / 16 = 12.5 %: Python's round goes to the even 12.
        assert_eq!(fuzz_ratio("abcdefgh", "aijklmno"), 12.0);
    }

    #[test]
    fn popular_characters_of_a_long_b_are_not_match_seeds() {
        // b has 200 characters: 'x' occurs 199 times (> 200/100 + 1), so only 'y' seeds a
        // match; the block is then extended over equal neighbours ("xxy" ... ).
        let b = format!("{}y", "x".repeat(199));
        let a = "xxyz";
        // difflib: find_longest_match → 'y' at (2, 199), extended back over 2 x's: size 3.
        assert!((sequence_matcher_ratio(a, &b) - 2.0 * 3.0 / 204.0).abs() < 1e-12);
    }

    #[test]
    fn rouge_l_is_the_union_lcs_f1_over_distinct_words() {
        assert!((rouge_l("the cat sat", "the cat sat") - 1.0).abs() < 1e-6);
        // LCS "the sat": 2 distinct words of 3 on each side: F1 = 2/3.
        let f = rouge_l("the cat sat", "the dog sat");
        assert!((f - 2.0 / 3.0).abs() < 1e-6, "{f}");
        // Two sentences against one: the union of both LCSs ("a b" and "c") over 3 and 4 words.
        let f = rouge_l("a b. c", "a b c d");
        let (p, r) = (3.0 / 4.0, 3.0 / 3.0);
        assert!((f - 2.0 * p * r / (p + r + 1e-8)).abs() < 1e-9, "{f}");
        // Case matters; no sentence at all scores 0.
        assert!(rouge_l("The", "the") < 1e-6);
        assert_eq!(rouge_l("...", "a"), 0.0);
    }

    #[test]
    fn py150_literals_are_restored_before_comparing() {
        assert_eq!(
            py150_literals("x = <NUM_LIT> + <STR_LIT:hello> + <STR_LIT>"),
            "x = 0 + hello + "
        );
        let score = TextMetric::CodeSimilarity.score("y = <NUM_LIT:1>", "y = 1", "");
        assert_eq!(score, 1.0);
    }

    #[test]
    fn empty_answers_score_zero_and_first_char_reads_the_option_letter() {
        for metric in TextMetric::ALL {
            if metric != TextMetric::Sari {
                assert_eq!(metric.score("", "A", "src"), 0.0, "{metric:?}");
            }
        }
        assert_eq!(
            TextMetric::FirstChar.score("B\nBecause", "B\nSince", ""),
            1.0
        );
        assert_eq!(TextMetric::ExactString.score("B ", "B", ""), 0.0);
        assert_eq!(TextMetric::ExactString.score("12", "12", ""), 1.0);
    }
}
