//! keepalived.conf: lexer → statement tree → keyword tables → typed model, with every
//! problem located (`file:line:col`) and all of them collected in one pass.

pub mod diag;
pub mod keyword;
pub mod lexer;
pub mod model;
pub mod parse;
pub mod tree;

use std::path::Path;

pub use diag::{Diagnostic, Severity, Sources};
pub use model::*;

/// A parsed configuration with its warnings, or every error found.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Every diagnostic rendered with its source line.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| self.sources.render(d))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Reads and parses `path`. I/O failure is the only `Err`; parse problems are diagnostics.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    Ok(parse_str(&path.display().to_string(), &text))
}

pub fn parse_str(name: &str, text: &str) -> Loaded {
    let mut sources = Sources::default();
    let file = sources.add(name.to_string(), text.to_string());
    let mut diagnostics = Vec::new();
    let mut unterminated = Vec::new();
    let tokens = lexer::lex(text, file, &mut unterminated);
    for span in unterminated {
        diagnostics.push(Diagnostic::error(span, "unterminated quoted string"));
    }
    let stmts = tree::build(&tokens, &mut diagnostics);
    let mut ctx = keyword::Ctx::default();
    let config = parse::config(&mut ctx, &stmts);
    diagnostics.extend(ctx.diags);
    Loaded {
        config,
        diagnostics,
        sources,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn virtual_server_with_reals_and_defaults() {
        let l = parse_str(
            "t.conf",
            "virtual_server 192.0.2.10 80 {\n lb_algo rr\n lvs_method DR\n protocol UDP\n \
             real_server 198.51.100.2 8080 {\n  weight 3\n }\n real_server 198.51.100.3 8080\n}\n",
        );
        assert!(!l.has_errors(), "{}", l.render());
        let vs = &l.config.virtual_servers[0];
        assert_eq!(
            vs.addr,
            ServiceAddr::Inet("192.0.2.10:80".parse::<SocketAddr>().unwrap())
        );
        assert_eq!(
            (vs.scheduler.as_str(), vs.forward, vs.protocol),
            ("rr", ForwardMethod::Dr, Protocol::Udp)
        );
        assert_eq!(vs.delay_loop, 60);
        assert_eq!(vs.real_servers[0].weight, 3);
        assert_eq!(vs.real_servers[1].weight, 1);
    }

    #[test]
    fn errors_are_located_and_all_collected() {
        let l = parse_str(
            "bad.conf",
            "virtual_server 192.0.2.300 80 {\n protcol TCP\n real_server 198.51.100.2 x\n}\n",
        );
        let msgs: Vec<String> = l.errors().map(|d| l.sources.render(d)).collect();
        assert_eq!(msgs.len(), 3, "{msgs:#?}");
        assert!(
            msgs[0]
                .starts_with("bad.conf:1:16: error: `192.0.2.300` is not an IPv4 or IPv6 address"),
            "{}",
            msgs[0]
        );
        assert!(msgs[1].starts_with("bad.conf:2:2: error: unknown keyword `protcol` in virtual_server; did you mean `protocol`?"), "{}", msgs[1]);
        assert!(
            msgs[2].starts_with("bad.conf:3:28: error: `x` is not a port number"),
            "{}",
            msgs[2]
        );
        assert!(
            msgs[1].contains("\n  |  protcol TCP\n  |  ^^^^^^^"),
            "{}",
            msgs[1]
        );
    }

    #[test]
    fn keepalived_blocks_not_yet_acted_on_warn() {
        let l = parse_str(
            "k.conf",
            "global_defs {\n router_id x\n}\nvrrp_instance VI_1 {\n state MASTER\n}\n",
        );
        assert!(!l.has_errors(), "{}", l.render());
        assert_eq!(l.diagnostics.len(), 2);
        assert!(
            l.diagnostics
                .iter()
                .all(|d| d.severity == Severity::Warning)
        );
    }
}
