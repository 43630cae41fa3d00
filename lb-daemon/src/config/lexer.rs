//! keepalived's lexical rules: words separated by blanks, one statement per line, `{` and `}`
//! as their own tokens, `#` and `!` start a comment, double quotes group a word with blanks.
//! On an `include` line (any variant) braces belong to the words: keepalived reads that line
//! before splitting it, and its glob takes `{a,b}` as alternatives.

use super::diag::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Word(String),
    Open,
    Close,
    Newline,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Splits `src` into tokens. Never fails: an unterminated quote runs to the end of the line
/// and is reported by the caller through `unterminated`.
pub fn lex(src: &str, file: usize, unterminated: &mut Vec<Span>) -> Vec<Token> {
    let mut out = Vec::new();
    for (line_no, line) in src.lines().enumerate() {
        let line_no = line_no + 1;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let mut i = 0;
        // Where the line's current piece starts: the line, or the last brace that opened or
        // closed a block on it (keepalived takes `include` there too).
        let mut piece = out.len();
        let include_line = |out: &[Token], piece: usize| {
            out[piece..]
                .iter()
                .find_map(|t| if let TokenKind::Word(w) = &t.kind { Some(w.as_str()) } else { None })
                .is_some_and(|w| {
                    matches!(w, "include" | "includer" | "includem" | "includew" | "includeb" | "includea")
                })
        };
        while i < chars.len() {
            let (byte, c) = chars[i];
            let col = byte + 1;
            let braces_are_tokens = !include_line(&out, piece);
            match c {
                '#' | '!' => break,
                c if c.is_whitespace() => i += 1,
                '{' | '}' if braces_are_tokens => {
                    let kind = if c == '{' { TokenKind::Open } else { TokenKind::Close };
                    out.push(Token { kind, span: Span::new(file, line_no, col, 1) });
                    piece = out.len();
                    i += 1;
                }
                '"' => {
                    let start = i;
                    i += 1;
                    let mut word = String::new();
                    let mut closed = false;
                    while i < chars.len() {
                        if chars[i].1 == '"' {
                            closed = true;
                            i += 1;
                            break;
                        }
                        word.push(chars[i].1);
                        i += 1;
                    }
                    let end = chars.get(i).map_or(line.len(), |(b, _)| *b);
                    let span = Span::new(file, line_no, col, end - chars[start].0);
                    if !closed {
                        unterminated.push(span);
                    }
                    out.push(Token { kind: TokenKind::Word(word), span });
                }
                _ => {
                    let start = byte;
                    let mut word = String::new();
                    while i < chars.len() {
                        let c = chars[i].1;
                        if c.is_whitespace()
                            || matches!(c, '#' | '!' | '"')
                            || braces_are_tokens && matches!(c, '{' | '}')
                        {
                            break;
                        }
                        word.push(c);
                        i += 1;
                    }
                    let end = chars.get(i).map_or(line.len(), |(b, _)| *b);
                    out.push(Token { kind: TokenKind::Word(word), span: Span::new(file, line_no, col, end - start) });
                }
            }
        }
        out.push(Token { kind: TokenKind::Newline, span: Span::new(file, line_no, line.len() + 1, 0) });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_on_an_include_line_belong_to_its_words() {
        assert_eq!(words("include {a,b}.conf\n"), ["include", "{a,b}.conf", "\\n"]);
        assert_eq!(words("} includeb x/{a,b}.conf\n"), ["}", "includeb", "x/{a,b}.conf", "\\n"]);
        assert_eq!(words("vs { include {a,b}.conf\n"), ["vs", "{", "include", "{a,b}.conf", "\\n"]);
        assert_eq!(words("vs {\ninclude_check x\n"), ["vs", "{", "\\n", "include_check", "x", "\\n"]);
    }

    fn words(src: &str) -> Vec<String> {
        lex(src, 0, &mut Vec::new())
            .into_iter()
            .map(|t| match t.kind {
                TokenKind::Word(w) => w,
                TokenKind::Open => "{".into(),
                TokenKind::Close => "}".into(),
                TokenKind::Newline => "\\n".into(),
            })
            .collect()
    }

    #[test]
    fn comments_quotes_and_braces() {
        assert_eq!(words("a b{ # c\n! d\n\"x y\" }z"), ["a", "b", "{", "\\n", "\\n", "x y", "}", "z", "\\n"]);
    }

    #[test]
    fn unterminated_quote_is_reported() {
        let mut bad = Vec::new();
        let toks = lex("script \"/bin/true", 0, &mut bad);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].col, 8);
        assert_eq!(toks[1].kind, TokenKind::Word("/bin/true".into()));
    }
}
