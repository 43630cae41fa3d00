//! Groups tokens into statements: the words of one line, plus the `{ ... }` block that follows
//! them (on the same line or alone on the next one, as keepalived accepts).

use super::{
    diag::{Diagnostic, Span},
    lexer::{Token, TokenKind},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    pub words: Vec<Word>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    /// The keyword (first word). Statements are never empty.
    pub fn keyword(&self) -> &Word {
        &self.words[0]
    }

    pub fn args(&self) -> &[Word] {
        &self.words[1..]
    }
}

pub fn build(tokens: &[Token], diags: &mut Vec<Diagnostic>) -> Vec<Stmt> {
    let mut pos = 0;
    let stmts = block(tokens, &mut pos, None, diags);
    // Stray `}` at top level end `block` early; report each and continue after it.
    let mut all = stmts;
    while pos < tokens.len() {
        diags.push(Diagnostic::error(tokens[pos].span, "unmatched `}`: no block is open here"));
        pos += 1;
        all.extend(block(tokens, &mut pos, None, diags));
    }
    all
}

/// Reads statements until the `}` closing `opened` (or the end of input at top level).
fn block(tokens: &[Token], pos: &mut usize, opened: Option<Span>, diags: &mut Vec<Diagnostic>) -> Vec<Stmt> {
    let mut stmts: Vec<Stmt> = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    while let Some(tok) = tokens.get(*pos) {
        match &tok.kind {
            TokenKind::Word(text) => {
                words.push(Word { text: text.clone(), span: tok.span });
                *pos += 1;
            }
            TokenKind::Newline => {
                if !words.is_empty() {
                    stmts.push(Stmt { words: std::mem::take(&mut words), block: None });
                }
                *pos += 1;
            }
            TokenKind::Open => {
                *pos += 1;
                let inner = block(tokens, pos, Some(tok.span), diags);
                if !words.is_empty() {
                    stmts.push(Stmt { words: std::mem::take(&mut words), block: Some(inner) });
                } else if let Some(prev) = stmts.last_mut().filter(|s| s.block.is_none()) {
                    // `keyword` on one line, `{` alone on the next.
                    prev.block = Some(inner);
                } else {
                    diags.push(Diagnostic::error(tok.span, "`{` without a keyword before it"));
                }
            }
            TokenKind::Close => {
                if !words.is_empty() {
                    stmts.push(Stmt { words: std::mem::take(&mut words), block: None });
                }
                if opened.is_some() {
                    *pos += 1;
                }
                return stmts;
            }
        }
    }
    if !words.is_empty() {
        stmts.push(Stmt { words, block: None });
    }
    if let Some(span) = opened {
        diags.push(Diagnostic::error(span, "unclosed `{`: the file ends before its `}`"));
    }
    stmts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lexer::lex;

    fn tree(src: &str) -> (Vec<Stmt>, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let toks = lex(src, 0, &mut Vec::new());
        (build(&toks, &mut diags), diags)
    }

    #[test]
    fn nested_blocks_and_brace_on_next_line() {
        let (s, d) = tree("a 1 {\n b\n c\n {\n  d 2\n }\n}\ne");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(s.len(), 2);
        let a = s[0].block.as_ref().unwrap();
        assert_eq!(a[0].keyword().text, "b");
        assert_eq!(a[1].keyword().text, "c");
        assert_eq!(a[1].block.as_ref().unwrap()[0].args()[0].text, "2");
        assert_eq!(s[1].keyword().text, "e");
    }

    #[test]
    fn one_line_block() {
        let (s, d) = tree("group { x y }");
        assert!(d.is_empty());
        let inner = s[0].block.as_ref().unwrap();
        assert_eq!(inner[0].words.len(), 2);
    }

    #[test]
    fn unclosed_and_unmatched_braces_are_located() {
        let (_, d) = tree("a {\n b\n");
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].span.line, d[0].span.col), (1, 3));
        let (_, d) = tree("a\n}\nb");
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].span.line, d[0].span.col), (2, 1));
    }
}
