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
        Self {
            name,
            aliases: &[],
            handler,
        }
    }

    pub const fn alias(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    fn matches(&self, word: &str) -> bool {
        self.name == word || self.aliases.contains(&word)
    }
}

/// keepalived keywords this daemon recognises but does not act on yet: warned about, never
/// silently dropped and never an error, so an existing `keepalived.conf` still runs.
const NOT_YET: &[&str] = &[
    "global_defs",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "vrrp_script",
    "vrrp_sync_group",
    "vrrp_instance",
    "virtual_server_group",
    "include",
    "linkbeat_use_polling",
    "garp_group",
    "track_file",
    "vrrp_track_file",
    "net_namespace",
    "instance",
    // inside virtual_server
    "ha_suspend",
    "virtualhost",
    "alpha",
    "omega",
    "quorum",
    "quorum_up",
    "quorum_down",
    "hysteresis",
    "sorry_server",
    "sorry_server_inhibit",
    "persistence_granularity",
    "ops",
    "lb_algo_flags",
    "retry",
    "delay_before_retry",
    "warmup",
    "connect_timeout",
    // inside real_server
    "inhibit_on_failure",
    "notify_up",
    "notify_down",
    "HTTP_GET",
    "SSL_GET",
    "TCP_CHECK",
    "MISC_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "BFD_CHECK",
    "FILE_CHECK",
    "uthreshold",
    "lthreshold",
];

#[derive(Default)]
pub struct Ctx {
    pub diags: Vec<Diagnostic>,
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

    /// Like `parse`, and checks `lo..=hi`.
    pub fn parse_range<V>(&mut self, stmt: &Stmt, i: usize, what: &str, lo: V, hi: V) -> Option<V>
    where
        V: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let v: V = self.parse(stmt, i, what)?;
        if v < lo || v > hi {
            let span = stmt.args()[i].span;
            self.error(
                span,
                format!(
                    "`{}` must be between {lo} and {hi}, not {v}",
                    stmt.keyword().text
                ),
            );
            return None;
        }
        Some(v)
    }

    /// The statement's `{ }` block, or an error if it has none.
    pub fn block<'s>(&mut self, stmt: &'s Stmt) -> Option<&'s [Stmt]> {
        if stmt.block.is_none() {
            self.error(
                stmt.keyword().span,
                format!("`{}` needs a `{{ ... }}` block", stmt.keyword().text),
            );
        }
        stmt.block.as_deref()
    }

    /// Runs each statement through `table`, reporting unknown keywords.
    pub fn apply<T>(&mut self, table: &[Keyword<T>], target: &mut T, stmts: &[Stmt], block: &str) {
        for stmt in stmts {
            let kw = stmt.keyword();
            if let Some(entry) = table.iter().find(|k| k.matches(&kw.text)) {
                (entry.handler)(self, target, stmt);
            } else if NOT_YET.contains(&kw.text.as_str()) {
                self.warn(
                    kw.span,
                    format!(
                        "`{}` is a keepalived keyword this version does not act on yet; ignored",
                        kw.text
                    ),
                );
            } else {
                let hint = suggest(
                    &kw.text,
                    table
                        .iter()
                        .flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied())),
                )
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
                self.error(
                    kw.span,
                    format!("unknown keyword `{}` in {block}{hint}", kw.text),
                );
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
