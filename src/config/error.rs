//! Errors and warnings of the conntrackd.conf parser, each tied to a position in the file.
//!
//! The C daemon stops at the first problem and prints `parsing config file in line (N),
//! symbol 'X': syntax error`. We collect every problem instead and render each one as
//! `FILE:LINE:COL: message` (the form compilers and editors understand), saying what was
//! found and what was expected.

use std::fmt;

/// A position in the configuration text: 1-based line and column.
///
/// Lines are counted on `\n` only, like the C lexer (a lone `\r` is blank space but does not
/// start a new line). Columns count characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column number (in characters).
    pub col: u32,
}

impl Span {
    /// A span at `line`:`col`.
    pub const fn new(line: u32, col: u32) -> Self {
        Self { line, col }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// What kind of problem an [`Error`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The token stream does not follow the 1.4.7 grammar (the C daemon's `syntax error`).
    Syntax,
    /// The grammar is respected but the C daemon refuses the value or the combination
    /// (it logs an error and exits 1 while reading the file).
    Semantic,
}

/// One fatal problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of problem this is.
    pub kind: ErrorKind,
    /// Where it is; `None` for problems with the whole file (unreadable).
    pub span: Option<Span>,
    /// Human-readable text: what was found and what was expected.
    pub message: String,
}

impl Error {
    pub(crate) fn syntax(span: Span, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Syntax,
            span: Some(span),
            message: message.into(),
        }
    }

    pub(crate) fn semantic(span: Span, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Semantic,
            span: Some(span),
            message: message.into(),
        }
    }
}

/// A non-fatal remark: the C daemon logs a warning and goes on (often ignoring the item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where the remark applies.
    pub span: Span,
    /// Human-readable text.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.span, self.message)
    }
}

/// Every fatal problem found in one file, in file order.
///
/// `Display` prints one `FILE:LINE:COL: message` line per problem (no trailing newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors {
    file: String,
    errors: Vec<Error>,
}

impl Errors {
    pub(crate) fn new(file: &str, mut errors: Vec<Error>) -> Self {
        // Stable sort: problems found by different passes come out in file order.
        errors.sort_by_key(|e| e.span);
        Self {
            file: file.to_owned(),
            errors,
        }
    }

    pub(crate) fn io(file: &str, err: &std::io::Error) -> Self {
        Self::new(
            file,
            vec![Error {
                kind: ErrorKind::Io,
                span: None,
                message: format!("can't open config file: {err}"),
            }],
        )
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Number of problems (at least one).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: an `Errors` value holds at least one problem.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The problems, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.errors.iter()
    }
}

impl<'a> IntoIterator for &'a Errors {
    type Item = &'a Error;
    type IntoIter = std::slice::Iter<'a, Error>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match e.span {
                Some(span) => write!(f, "{}:{}: {}", self.file, span, e.message)?,
                None => write!(f, "{}: {}", self.file, e.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_display_one_line_per_error() {
        let errs = Errors::new(
            "a.conf",
            vec![
                Error::syntax(Span::new(7, 5), "second"),
                Error::semantic(Span::new(2, 1), "first"),
            ],
        );
        assert_eq!(errs.len(), 2);
        assert_eq!(errs.to_string(), "a.conf:2:1: first\na.conf:7:5: second");
    }

    #[test]
    fn test_display_io() {
        let err = std::io::Error::from(std::io::ErrorKind::NotFound);
        let errs = Errors::io("/nope.conf", &err);
        assert!(
            errs.to_string()
                .starts_with("/nope.conf: can't open config file")
        );
        assert_eq!(errs.iter().next().map(|e| e.kind), Some(ErrorKind::Io));
    }
}
