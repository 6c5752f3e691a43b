//! Source files, spans and the located errors that validation collects.
//!
//! Every error names its file, line and column in its message text (so it
//! reads well in plain logs and tests), and carries the source and span for
//! miette to render the offending line.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A stack source file, kept in memory for error rendering.
#[derive(Debug)]
pub struct SourceFile {
    /// For the root file, the path the stack was loaded from, as passed; for
    /// an included file, the include path joined onto the including file's
    /// directory. Not canonicalized: messages show it as is.
    pub path: PathBuf,
    /// The whole text of the file; spans are byte offsets into it.
    pub text: String,
}

impl SourceFile {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        // `str::floor_char_boundary` is newer than the crate's MSRV (1.89).
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

/// A byte range in one of a stack's source files.
#[derive(Debug, Clone)]
pub struct Span {
    /// The file the range points into.
    pub file: Arc<SourceFile>,
    /// Byte offsets into the file's `text`; may be empty (`0..0` when no
    /// better position is known).
    pub range: Range<usize>,
}

impl Span {
    /// A span of `range` (byte offsets) in `file`.
    pub fn new(file: &Arc<SourceFile>, range: Range<usize>) -> Span {
        Span {
            file: file.clone(),
            range,
        }
    }

    /// `path:line:col` of the span's start.
    pub fn location(&self) -> String {
        let (line, col) = self.file.line_col(self.range.start);
        format!("{}:{line}:{col}", self.file.path.display())
    }

    /// A span inside this one's file at `offset..offset+len` relative to
    /// this span's start (for pointing into a string's contents).
    pub fn sub(&self, offset: usize, len: usize) -> Span {
        let start = (self.range.start + offset).min(self.range.end);
        let end = (start + len).min(self.range.end.max(start));
        Span {
            file: self.file.clone(),
            range: start..end,
        }
    }
}

/// One problem in a stack file, with its location.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{location}: {message}")]
pub struct Located {
    /// `path:line:col`, or just the path when no position is known.
    pub location: String,
    /// What is wrong, without the location.
    pub message: String,
    #[source_code]
    source_code: miette::NamedSource<String>,
    #[label("{label}")]
    span: Option<miette::SourceSpan>,
    label: String,
    /// A hint shown below the error, such as a "did you mean" suggestion.
    #[help]
    pub help: Option<String>,
}

impl Located {
    /// An error at `span`.
    pub fn at(span: &Span, message: impl Into<String>) -> Located {
        let message = message.into();
        Located {
            location: span.location(),
            source_code: named_source(&span.file),
            span: Some((span.range.start, span.range.len()).into()),
            label: "here".to_string(),
            message,
            help: None,
        }
    }

    /// An error about a whole file (no position).
    pub fn in_file(file: &Arc<SourceFile>, message: impl Into<String>) -> Located {
        Located {
            location: file.path.display().to_string(),
            source_code: named_source(file),
            span: None,
            label: String::new(),
            message: message.into(),
            help: None,
        }
    }

    /// An error about a file that could not be read at all.
    pub fn unreadable(path: &Path, message: impl Into<String>) -> Located {
        Located {
            location: path.display().to_string(),
            source_code: miette::NamedSource::new(path.display().to_string(), String::new()),
            span: None,
            label: String::new(),
            message: message.into(),
            help: None,
        }
    }

    /// Adds a hint shown below the error.
    pub fn with_help(mut self, help: impl Into<String>) -> Located {
        self.help = Some(help.into());
        self
    }

    /// Replaces the label under the offending source text (by default "here").
    pub fn with_label(mut self, label: impl Into<String>) -> Located {
        self.label = label.into();
        self
    }
}

fn named_source(file: &SourceFile) -> miette::NamedSource<String> {
    miette::NamedSource::new(file.path.display().to_string(), file.text.clone())
}

/// Every problem found in a stack, in file order.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{} in {}", plural(.errors.len()), .file)]
pub struct ConfigError {
    /// The path of the stack file that was loaded (the root, even when the
    /// errors are in files it includes).
    pub file: String,
    /// The errors, sorted by the byte offset where each starts; errors about
    /// a whole file come first.
    #[related]
    pub errors: Vec<Located>,
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 error".to_string()
    } else {
        format!("{n} errors")
    }
}

impl ConfigError {
    /// Every error's `location: message`, one per line (for logs and tests).
    pub fn messages(&self) -> String {
        self.errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Collects errors during loading and validation.
#[derive(Debug, Default)]
pub struct Diagnostics {
    errors: Vec<(usize, Located)>,
}

impl Diagnostics {
    /// Records an error; `order` sorts errors by position.
    pub fn push(&mut self, order: usize, error: Located) {
        self.errors.push((order, error));
    }

    /// Records an error at `span`, ordered by where the span starts.
    pub fn at(&mut self, span: &Span, message: impl Into<String>) {
        self.push(span.range.start, Located::at(span, message));
    }

    /// Records an error at `span` with a hint shown below it.
    pub fn at_with_help(&mut self, span: &Span, message: impl Into<String>, help: impl Into<String>) {
        self.push(span.range.start, Located::at(span, message).with_help(help));
    }

    /// Whether no error has been recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many errors have been recorded.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// `Ok(())` if nothing was recorded, else every error in position order.
    pub fn finish(mut self, file: &Path) -> Result<(), ConfigError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        self.errors.sort_by_key(|(order, _)| *order);
        Err(ConfigError {
            file: file.display().to_string(),
            errors: self.errors.into_iter().map(|(_, e)| e).collect(),
        })
    }
}

/// The closest candidate to `word` by edit distance, if it is close enough
/// to be a likely misspelling.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1) + 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_chars() {
        let f = SourceFile {
            path: "s.toml".into(),
            text: "a = 1\nbé = 2\n".into(),
        };
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(6), (2, 1));
        // after "bé" (3 bytes) the column is 3 characters in.
        assert_eq!(f.line_col(9), (2, 3));
        // An offset inside "é" counts from the character's start.
        assert_eq!(f.line_col(8), (2, 2));
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["cidr_block", "enable_dns_support", "enable_dns_hostnames"];
        assert_eq!(suggest("cidr_blok", names), Some("cidr_block"));
        assert_eq!(
            suggest("enable_dns_hostname", names),
            Some("enable_dns_hostnames")
        );
        assert_eq!(suggest("zzz", names), None);
    }
}
