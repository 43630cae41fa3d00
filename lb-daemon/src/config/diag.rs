//! Locations and messages: every problem names `file:line:col` and shows the line.

use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Index into `Sources::files`.
    pub file: usize,
    /// 1-based line and column (column in bytes).
    pub line: usize,
    pub col: usize,
    /// Length in bytes, for the caret underline.
    pub len: usize,
}

impl Span {
    pub const fn new(file: usize, line: usize, col: usize, len: usize) -> Self {
        Self { file, line, col, len }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    pub message: String,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, span, message: message.into() }
    }
    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, span, message: message.into() }
    }
}

/// The text of every file read, so diagnostics can quote the offending line.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub files: Vec<(String, String)>,
    /// Where each line of each file starts, so that rendering many diagnostics (one per real
    /// server of a large config) does not rescan the file for each.
    line_starts: Vec<Vec<usize>>,
}

impl Sources {
    pub fn add(&mut self, name: String, text: String) -> usize {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        self.files.push((name, text));
        self.line_starts.push(starts);
        self.files.len() - 1
    }

    /// Line `n` (1-based) of file `file`, without its line ending.
    fn line(&self, file: usize, n: usize) -> Option<&str> {
        let text = &self.files.get(file)?.1;
        let start = *self.line_starts.get(file)?.get(n.checked_sub(1)?)?;
        let rest = text.get(start..)?;
        let line = rest.split('\n').next()?;
        (start < text.len()).then(|| line.strip_suffix('\r').unwrap_or(line))
    }

    /// Renders one diagnostic as `file:line:col: error: message`, the source line and a caret.
    pub fn render(&self, d: &Diagnostic) -> String {
        let name = self.files.get(d.span.file).map_or("<input>", |(n, _)| n);
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{name}:{}:{}: {kind}: {}", d.span.line, d.span.col, d.message);
        if let Some(line) = self.line(d.span.file, d.span.line) {
            let pad: String =
                line.chars().take(d.span.col.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
            out.push_str(&format!("\n  | {line}\n  | {pad}{}", "^".repeat(d.span.len.max(1))));
        }
        out
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}
