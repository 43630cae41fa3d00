//! The data-driven grammar: each block has a table of keywords, each with one handler
//! (keepalived's `install_keyword` tables). Handlers read words through `Ctx`, which
//! records located diagnostics instead of failing, so every error is reported in one pass.

use std::str::FromStr;

use super::{
    diag::{Diagnostic, Span},
    tree::{Stmt, Word},
};

pub type Handler<T> = fn(&mut Ctx, &mut T, &Stmt);

pub struct Keyword<T: 'static> {
    pub name: &'static str,
    /// keepalived's alternative spellings (e.g. `lvs_sched` for `lb_algo`).
    pub aliases: &'static [&'static str],
    pub handler: Handler<T>,
}

impl<T> Keyword<T> {
    pub const fn new(name: &'static str, handler: Handler<T>) -> Self {
        Self { name, aliases: &[], handler }
    }

    pub const fn alias(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    fn matches(&self, word: &str) -> bool {
        self.name == word || self.aliases.contains(&word)
    }
}

/// Every keyword keepalived's own parser knows. Each is acted on (a block's table reads it),
/// refused, or accepted without effect (`keyword_states`); one read by another block's table
/// only is warned about where it does not belong, as keepalived ignores it there.
const KEEPALIVED_KEYWORDS: &str = include_str!("keepalived_keywords.txt");

pub fn is_keepalived_keyword(word: &str) -> bool {
    KEEPALIVED_KEYWORDS.lines().any(|l| l == word)
}

/// keepalived 2.2.7's keywords block by block (the version whose behaviour lb-daemon
/// follows), with blocks named as `Ctx::apply` names them.
const KEEPALIVED_227_BLOCKS: &str = include_str!("keepalived_227_blocks.txt");

/// Every (block, keyword) pair keepalived 2.2.7 reads.
pub fn keepalived_227_pairs() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEEPALIVED_227_BLOCKS.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).filter_map(|l| l.split_once('\t'))
}

/// Whether keepalived 2.2.7 reads `word` in `block`.
pub fn keepalived_takes(block: &str, word: &str) -> bool {
    keepalived_227_pairs().any(|(b, k)| b == block && k == word)
}

/// keepalived keywords that change which node or real server gets traffic and that this
/// version does not act on: each is an error (block, keyword, what to do instead), never
/// skipped with a warning. Where the table of a block reads the keyword, the table wins.
pub const REFUSED: &[(&str, &str, &str)] = &[
    (
        "vrrp_instance",
        "use_vmac_addr",
        "VMACs for the addresses of other interfaces or of the other family are not implemented; remove it \
         (use_vmac puts the instance's own addresses on its VMAC)",
    ),
    ("real_server", "track_file", "track_file belongs in a FILE_CHECK block: FILE_CHECK { track_file NAME }"),
];

/// What to do instead of `word` in `block`, when it is refused there.
pub fn refused(block: &str, word: &str) -> Option<&'static str> {
    REFUSED
        .iter()
        .find(|(b, k, _)| *b == block && *k == word)
        .map(|(_, _, instead)| *instead)
        .or_else(|| super::keyword_states::refused_anywhere(word))
}

/// Every keepalived keyword (from the list above), for the keyword status document.
pub fn keepalived_keywords() -> impl Iterator<Item = &'static str> {
    KEEPALIVED_KEYWORDS.lines().filter(|l| !l.is_empty() && !l.starts_with('#'))
}

#[derive(Default)]
pub struct Ctx {
    pub diags: Vec<Diagnostic>,
    /// Rules read so far without a preference, [IPv4, IPv6] (`rule::RULE_START_PRIORITY`).
    pub rules_unnumbered: [u32; 2],
    /// iproute2's names of tables, protocols, scopes, ... for routes and rules.
    pub rt: super::rt_names::RtNames,
}

impl Ctx {
    pub fn error(&mut self, span: Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, msg));
    }

    pub fn warn(&mut self, span: Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::warning(span, msg));
    }

    /// Argument `i` (0 = first after the keyword), or an error saying what is missing.
    pub fn arg<'s>(&mut self, stmt: &'s Stmt, i: usize, what: &str) -> Option<&'s Word> {
        let word = stmt.args().get(i);
        if word.is_none() {
            let kw = stmt.keyword();
            let end = stmt.words.last().map_or(kw.span, |w| w.span);
            let span = Span::new(end.file, end.line, end.col + end.len, 1);
            self.error(span, format!("`{}` needs {what}", kw.text));
        }
        word
    }

    /// Argument `i` parsed as `V`, with an error naming the expectation on failure.
    pub fn parse<V: FromStr>(&mut self, stmt: &Stmt, i: usize, what: &str) -> Option<V> {
        let word = self.arg(stmt, i, what)?;
        match word.text.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(word.span, format!("`{}` is not {what}", word.text));
                None
            }
        }
    }

    /// Like `parse`, and checks `lo..=hi`; a number outside the type's range (e.g. `256`
    /// for a priority) is reported as out of range too.
    pub fn parse_range<V>(&mut self, stmt: &Stmt, i: usize, what: &str, lo: V, hi: V) -> Option<V>
    where
        V: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let word = self.arg(stmt, i, what)?;
        let range_error = |ctx: &mut Self| {
            let msg = format!("`{}` must be between {lo} and {hi}, not {}", stmt.keyword().text, word.text);
            ctx.error(word.span, msg);
        };
        match word.text.parse::<V>() {
            Ok(v) if v < lo || v > hi => {
                range_error(self);
                None
            }
            Ok(v) => Some(v),
            Err(_) if word.text.parse::<i128>().is_ok() => {
                range_error(self);
                None
            }
            Err(_) => {
                self.error(word.span, format!("`{}` is not {what}", word.text));
                None
            }
        }
    }

    /// A keyword that takes no argument: warns about extra words (keepalived ignores them).
    pub fn flag(&mut self, stmt: &Stmt) -> bool {
        if let Some(extra) = stmt.args().first() {
            self.warn(extra.span, format!("`{}` takes no argument; `{}` ignored", stmt.keyword().text, extra.text));
        }
        true
    }

    /// `keyword [BOOL]` (keepalived 2): no argument means on; true/false, yes/no, on/off.
    pub fn bool_flag(&mut self, stmt: &Stmt) -> Option<bool> {
        let Some(w) = stmt.args().first() else { return Some(true) };
        match w.text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => {
                self.error(w.span, format!("`{}` is not true/false (yes/no, on/off)", w.text));
                None
            }
        }
    }

    /// Argument `i` as an owned string.
    pub fn string(&mut self, stmt: &Stmt, i: usize, what: &str) -> Option<String> {
        self.arg(stmt, i, what).map(|w| w.text.clone())
    }

    /// The rest of the line as a script command (quoted words keep their blanks).
    pub fn script(&mut self, stmt: &Stmt) -> Option<super::model::Script> {
        let first = self.arg(stmt, 0, "a script path")?;
        let span = first.span;
        let command = stmt.args().iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
        Some(super::model::Script { command, span })
    }

    /// `user [group]` at argument `i`.
    pub fn run_as(&mut self, stmt: &Stmt, i: usize) -> Option<super::model::RunAs> {
        let user = self.string(stmt, i, "a user name")?;
        let group = stmt.args().get(i + 1).map(|w| w.text.clone());
        Some(super::model::RunAs { user, group })
    }

    /// Every word of every line of the statement's block (lists such as
    /// `notification_email { a b }`).
    pub fn block_words<'s>(&mut self, stmt: &'s Stmt) -> Vec<&'s Word> {
        let Some(block) = self.block(stmt) else {
            return Vec::new();
        };
        let mut words = Vec::new();
        for s in block {
            if s.block.is_some() {
                self.error(s.keyword().span, format!("unexpected block inside `{}`", stmt.keyword().text));
            }
            words.extend(s.words.iter());
        }
        words
    }

    /// The statement's `{ }` block, or an error if it has none.
    pub fn block<'s>(&mut self, stmt: &'s Stmt) -> Option<&'s [Stmt]> {
        if stmt.block.is_none() {
            self.error(stmt.keyword().span, format!("`{}` needs a `{{ ... }}` block", stmt.keyword().text));
        }
        stmt.block.as_deref()
    }

    /// Runs each statement through `table`, reporting unknown keywords.
    pub fn apply<T>(&mut self, table: &[Keyword<T>], target: &mut T, stmts: &[Stmt], block: &str) {
        for stmt in stmts {
            let kw = stmt.keyword();
            if let Some(entry) = table.iter().find(|k| k.matches(&kw.text)) {
                (entry.handler)(self, target, stmt);
            } else if let Some(instead) = refused(block, &kw.text) {
                self.error(
                    kw.span,
                    format!(
                        "`{}` in {block} changes who gets traffic and this version does not act on it: {instead}",
                        kw.text
                    ),
                );
            } else if let Some(why) = super::keyword_states::without_effect(&kw.text) {
                self.warn(
                    kw.span,
                    format!("`{}` is a keepalived keyword accepted without effect: {why}; ignored", kw.text),
                );
            } else if keepalived_takes(block, &kw.text) {
                // keepalived acts on it here and nothing above placed it: never ignore it
                // (keyword_states' tests keep this branch unreachable for 2.2.7's keywords).
                self.error(
                    kw.span,
                    format!(
                        "`{}` in {block}: keepalived 2.2.7 acts on it here and this version does not; remove it",
                        kw.text
                    ),
                );
            } else if is_keepalived_keyword(&kw.text) {
                // Acted on in another block: keepalived ignores it here too.
                self.warn(
                    kw.span,
                    format!("`{}` is a keepalived keyword that {block} does not take; ignored", kw.text),
                );
            } else {
                let hint = suggest(
                    &kw.text,
                    table.iter().flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied())),
                )
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
                self.error(kw.span, format!("unknown keyword `{}` in {block}{hint}", kw.text));
            }
        }
    }
}

/// The closest known keyword, if it is close enough to be a plausible typo.
fn suggest<'a>(word: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::damerau_levenshtein(word, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keywords_only() {
        let known = ["lb_algo", "lb_kind", "protocol"];
        assert_eq!(suggest("protcol", known.into_iter()), Some("protocol"));
        assert_eq!(suggest("lb_alog", known.into_iter()), Some("lb_algo"));
        assert_eq!(suggest("zzzzzz", known.into_iter()), None);
    }
}
