//! keepalived.conf: lexer → statement tree (with `include`s expanded) → keyword tables →
//! typed model → semantic checks. Every problem is located (`file:line:col`) and all of them
//! are collected in one pass.

pub mod diag;
pub mod docs;
pub mod global;
pub mod ip;
pub mod keyword;
pub mod keyword_states;
pub mod lexer;
pub mod lvs;
pub mod model;
pub mod parse;
pub mod pre;
pub mod rt_names;
pub mod rule;
pub mod tree;
pub mod validate;
pub mod vrrp;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Severity, Sources, Span};
pub use model::*;
pub use rule::{Rule, RuleAction};

/// How deep `include`s may nest: deeper is almost certainly a file including itself.
const MAX_INCLUDE_DEPTH: usize = 16;

/// A parsed configuration with its warnings, or every error found.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Every diagnostic rendered with its source line.
    pub fn render(&self) -> String {
        self.diagnostics.iter().map(|d| self.sources.render(d)).collect::<Vec<_>>().join("\n")
    }
}

/// The config id conditional lines (`@ID`) compare with: keepalived's `-i/--config-id`, set
/// once by the command line; by default the host name up to its first dot.
static CONFIG_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the config id for every later parse (the first call wins).
pub fn set_config_id(id: &str) {
    let _ = CONFIG_ID.set(id.to_string());
}

fn config_id() -> String {
    CONFIG_ID.get().cloned().unwrap_or_else(pre::default_config_id)
}

/// Reads and parses `path` (and what it includes) and checks it for `backend`. Failing to
/// read the main file is the only `Err`; everything else is a diagnostic.
pub fn load(path: &Path, backend: BackendKind) -> anyhow::Result<Loaded> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read configuration file {}", path.display()))?;
    Ok(parse_text(&path.display().to_string(), &text, path.parent(), backend))
}

/// Parses `text` as if read from `name`; includes resolve against the current directory.
pub fn parse_str(name: &str, text: &str) -> Loaded {
    parse_text(name, text, None, BackendKind::Auto)
}

fn parse_text(name: &str, text: &str, dir: Option<&Path>, backend: BackendKind) -> Loaded {
    let mut sources = Sources::default();
    let mut diagnostics = Vec::new();
    let mut params = pre::Params::new(&config_id());
    let mut files = Files {
        sources: &mut sources,
        diags: &mut diagnostics,
        params: &mut params,
        include_check: 0,
        in_global_defs: false,
    };
    let stmts = file_tree(name, text, dir.unwrap_or(Path::new(".")), 0, &mut files);
    let mut ctx = keyword::Ctx::default();
    let mut config = parse::config(&mut ctx, &stmts);
    diagnostics.extend(ctx.diags);
    let backend = match backend {
        BackendKind::Auto => config.global.lb_backend.unwrap_or(BackendKind::Auto),
        b => b,
    };
    diagnostics.extend(validate::service_defaults(&mut config));
    diagnostics.extend(validate::validate(&config, backend));
    diagnostics.extend(validate::fixed_priority_tracking(&mut config));
    diagnostics.extend(validate::strict_mode_authentication(&mut config));
    validate::sync_group_tracking(&mut config);
    // The effective choice: `--backend` over `lb_backend`, auto when neither says.
    config.global.lb_backend = Some(backend);
    Loaded { config, diagnostics, sources }
}

/// Equal as configured (locations aside): what a reload compares.
pub fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
}

/// What reading a file and its includes accumulates: the texts, the diagnostics, and the
/// parameters defined so far (they carry into included files).
struct Files<'a> {
    sources: &'a mut Sources,
    diags: &'a mut Vec<Diagnostic>,
    params: &'a mut pre::Params,
    /// `include_check`'s checks (`INCLUDE_*`), as set so far in the file being read.
    include_check: u8,
    /// Whether the statements being expanded are global_defs' (where include_check is).
    in_global_defs: bool,
}

/// keepalived's include checks (lib/parser.c): an entry that is not a readable file, a
/// plain path that does not exist, a glob that matches nothing, a brace alternative that
/// matches nothing. lb-daemon always treats a missing plain path (and an unreadable one) as
/// an error; the others follow `include_check` and the include variants.
const INCLUDE_R: u8 = 1;
const INCLUDE_M: u8 = 2;
const INCLUDE_W: u8 = 4;
const INCLUDE_B: u8 = 8;

/// The include keywords and the checks each adds (keepalived's `check_include`).
fn include_kind(keyword: &str) -> Option<u8> {
    Some(match keyword {
        "include" => 0,
        "includer" => INCLUDE_R,
        "includem" => INCLUDE_R | INCLUDE_M,
        "includew" => INCLUDE_R | INCLUDE_M | INCLUDE_W,
        "includeb" => INCLUDE_R | INCLUDE_B,
        "includea" => INCLUDE_R | INCLUDE_M | INCLUDE_W | INCLUDE_B,
        _ => return None,
    })
}

/// `include_check [[+|-]read|match|wildcard_match|brace_match ...]` (keepalived's
/// `include_check_set`): no word sets every check; a bare word sets read and that check, and
/// only as the first word; `+` and `-` add and remove.
fn include_check(stmt: &tree::Stmt, current: u8, diags: &mut Vec<Diagnostic>) -> u8 {
    let mut checks = current;
    if stmt.args().is_empty() {
        return INCLUDE_R | INCLUDE_M | INCLUDE_W | INCLUDE_B;
    }
    for (i, w) in stmt.args().iter().enumerate() {
        let (op, name) = match w.text.split_at_checked(1) {
            Some(("+", rest)) => ('+', rest),
            Some(("-", rest)) => ('-', rest),
            _ => ('=', w.text.as_str()),
        };
        if op == '=' && i > 0 {
            diags.push(Diagnostic::error(w.span, format!("duplicate include_check '{}': use +{0} or -{0}", w.text)));
            continue;
        }
        let flag = match name {
            "read" => INCLUDE_R,
            "match" => INCLUDE_M,
            "wildcard_match" => INCLUDE_W,
            "brace_match" => INCLUDE_B,
            _ => {
                diags.push(Diagnostic::error(
                    w.span,
                    format!("unknown include_check type '{name}': read, match, wildcard_match or brace_match"),
                ));
                continue;
            }
        };
        checks = match op {
            '+' => checks | flag,
            '-' => checks & !flag,
            _ => INCLUDE_R | flag,
        };
    }
    checks
}

/// One file's statements, preprocessed (conditions, parameters, `~SEQ`), with its `include`s
/// replaced by their files' statements. Locations point at the file as written.
fn file_tree(name: &str, text: &str, dir: &Path, depth: usize, f: &mut Files) -> Vec<tree::Stmt> {
    let file = f.sources.add(name.to_string(), text.to_string());
    let pre = pre::process(text, f.params, &dir.display().to_string());
    let at = |line: usize| Span { file, line, col: 1, len: 1 };
    f.diags.extend(pre.errors.iter().map(|(line, e)| Diagnostic::error(at(*line), e.clone())));
    let source_line = |l: usize| pre.lines.get(l.wrapping_sub(1)).copied().unwrap_or(l);
    let mut unterminated = Vec::new();
    let mut tokens = lexer::lex(&pre.text, file, &mut unterminated);
    for t in &mut tokens {
        t.span.line = source_line(t.span.line);
    }
    f.diags.extend(unterminated.into_iter().map(|mut s| {
        s.line = source_line(s.line);
        Diagnostic::error(s, "unterminated quoted string")
    }));
    let stmts = tree::build(&tokens, f.diags);
    // As keepalived: an include_check in this file holds until its end.
    let saved = f.include_check;
    let out = expand(stmts, dir, depth, f);
    f.include_check = saved;
    out
}

fn expand(stmts: Vec<tree::Stmt>, dir: &Path, depth: usize, f: &mut Files) -> Vec<tree::Stmt> {
    let mut out = Vec::new();
    for mut stmt in stmts {
        let keyword = stmt.keyword().text.as_str();
        // Read here, as the lines are read (it governs the includes after it).
        if keyword == "include_check" && f.in_global_defs {
            f.include_check = include_check(&stmt, f.include_check, f.diags);
            continue;
        }
        let Some(kind) = include_kind(keyword) else {
            let outer = std::mem::replace(&mut f.in_global_defs, keyword == "global_defs");
            stmt.block = stmt.block.map(|b| expand(b, dir, depth, f));
            f.in_global_defs = outer;
            out.push(stmt);
            continue;
        };
        let checks = f.include_check | kind;
        if stmt.args().is_empty() {
            f.diags.push(Diagnostic::error(stmt.keyword().span, format!("`{keyword}` needs a file name or glob")));
        }
        if depth >= MAX_INCLUDE_DEPTH {
            f.diags.push(Diagnostic::error(
                stmt.keyword().span,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH}: does a file include itself?"),
            ));
            continue;
        }
        for pattern in stmt.args() {
            for path in resolve(pattern, dir, checks, f.diags) {
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        let sub_dir = path.parent().unwrap_or(dir).to_path_buf();
                        out.extend(file_tree(&path.display().to_string(), &text, &sub_dir, depth + 1, f));
                    }
                    Err(e) => f.diags.push(Diagnostic::error(
                        pattern.span,
                        format!("cannot read included file {}: {e}", path.display()),
                    )),
                }
            }
        }
    }
    out
}

/// Files an `include` names, relative to the including file's directory, checked as
/// keepalived's `open_and_check_glob` and `check_glob_file` do: a directory or an executable
/// file is skipped with a warning (an error with the read check); a glob matching nothing is
/// a warning (an error with wildcard_match, or with match when its directory is missing). A
/// missing plain path is always an error here (keepalived skips it unless match is checked).
/// `{a,b}` alternatives (glob's GLOB_BRACE) are read in their order: one naming a missing
/// file is a warning, an error with brace_match, as in keepalived.
fn resolve(pattern: &tree::Word, dir: &Path, checks: u8, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let alternatives = brace_alternatives(&pattern.text);
    if alternatives == [pattern.text.as_str()] {
        return resolve_one(pattern, &pattern.text, dir, checks, diags);
    }
    // As glibc's glob: every alternative's matches (each sorted) in turn; a plain path that
    // does not exist, or a glob in a missing directory, is a missing file, judged once the
    // whole pattern is (keepalived's open_and_check_glob: the brace_match check).
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for alt in &alternatives {
        let full = dir.join(alt);
        if !is_glob(alt) {
            if full.exists() {
                found.push(full)
            } else {
                missing.push(full.display().to_string())
            }
            continue;
        }
        if full.parent().is_some_and(|d| !d.is_dir()) {
            missing.push(full.display().to_string());
            continue;
        }
        match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => found.extend(paths.filter_map(Result::ok)),
            Err(e) => diags.push(Diagnostic::error(pattern.span, format!("bad include pattern: {e}"))),
        }
    }
    let brace_check = checks & INCLUDE_B != 0;
    match (found.is_empty(), missing.is_empty()) {
        (true, false) => {
            let msg =
                format!("Config files missing '{}': {} (the brace_match check)", pattern.text, missing.join(", "));
            report(diags, pattern, brace_check, msg);
        }
        (true, true) => {
            let msg = format!("No config files matched '{}' (the wildcard_match check)", pattern.text);
            report(diags, pattern, checks & INCLUDE_W != 0, msg);
        }
        (false, false) => {
            let msg =
                format!("Some config files missing '{}': {} (the brace_match check)", pattern.text, missing.join(", "));
            report(diags, pattern, brace_check, msg);
        }
        (false, true) => {}
    }
    if brace_check && !missing.is_empty() {
        return Vec::new();
    }
    readable(pattern, found, checks, diags)
}

/// The patterns `{a,b}` stands for, as glibc's glob with GLOB_BRACE expands them: each
/// alternative in turn, nested braces too (`{a}` is `a`); a pattern with an unclosed brace
/// is itself, whole.
fn brace_alternatives(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else { return vec![pattern.to_string()] };
    // The matching close and the commas at this brace's level.
    let (mut depth, mut commas, mut close) = (0usize, Vec::new(), None);
    for (i, b) in pattern.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            b',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else { return vec![pattern.to_string()] };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    bounds.windows(2).flat_map(|w| brace_alternatives(&format!("{head}{}{tail}", &pattern[w[0] + 1..w[1]]))).collect()
}

fn resolve_one(pattern: &tree::Word, text: &str, dir: &Path, checks: u8, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let full = dir.join(text);
    let found = if is_glob(text) {
        match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths.filter_map(Result::ok).collect::<Vec<_>>(),
            Err(e) => {
                diags.push(Diagnostic::error(pattern.span, format!("bad include pattern: {e}")));
                return Vec::new();
            }
        }
    } else if full.exists() {
        vec![full.clone()]
    } else {
        diags.push(Diagnostic::error(pattern.span, format!("included file {} does not exist", full.display())));
        return Vec::new();
    };
    if found.is_empty() {
        let dir_missing = full.parent().is_some_and(|d| !d.is_dir());
        let msg = format!("include {} matches no file", full.display());
        if dir_missing {
            report(
                diags,
                pattern,
                checks & INCLUDE_M != 0,
                format!("{msg}: its directory is missing (the match check)"),
            );
        } else {
            report(diags, pattern, checks & INCLUDE_W != 0, format!("{msg} (the wildcard_match check)"));
        }
        return Vec::new();
    }
    let mut found = found;
    found.sort();
    readable(pattern, found, checks, diags)
}

/// Whether an include pattern (or one of its brace alternatives) has glob wildcards.
fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// An include check's finding about `pattern`: an error when its check is on, else a warning.
fn report(diags: &mut Vec<Diagnostic>, pattern: &tree::Word, error: bool, msg: String) {
    diags.push(if error { Diagnostic::error(pattern.span, msg) } else { Diagnostic::warning(pattern.span, msg) });
}

/// The matches of an include that are regular non-executable files (keepalived's
/// `check_glob_file`): others are skipped with a warning, an error with the read check.
fn readable(pattern: &tree::Word, found: Vec<PathBuf>, checks: u8, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for p in found {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(&p);
        let plain = meta.as_ref().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 == 0);
        if plain {
            files.push(p);
        } else {
            let msg =
                format!("included {} is not a regular non-executable file: skipped (the read check)", p.display());
            report(diags, pattern, checks & INCLUDE_R != 0, msg);
        }
    }
    files
}

#[cfg(test)]
mod tests;

/// Every script the configuration would run (notify scripts, vrrp_script, quorum and
/// real-server scripts, MISC_CHECK, startup and shutdown scripts), each with whether it
/// names its own user (a vrrp_script's, MISC_CHECK's, startup or shutdown script's) rather
/// than running as the default script user. keepalived's `-t` checks these against
/// `enable_script_security`.
pub fn scripts(cfg: &Config) -> Vec<(&Script, bool)> {
    fn notify(n: &model::Notify) -> impl Iterator<Item = (&Script, bool)> {
        [&n.master, &n.backup, &n.fault, &n.stop, &n.any, &n.master_rx_lower_pri, &n.deleted]
            .into_iter()
            .flatten()
            .map(|s| (s, false))
    }
    let mut out: Vec<(&Script, bool)> =
        cfg.vrrp_scripts.iter().filter_map(|s| Some((s.script.as_ref()?, s.user.is_some()))).collect();
    out.extend(cfg.vrrp_instances.iter().flat_map(|v| notify(&v.notify)));
    out.extend(cfg.vrrp_sync_groups.iter().flat_map(|g| notify(&g.notify)));
    let g = &cfg.global;
    out.extend([&g.startup_script, &g.shutdown_script].into_iter().flatten().map(|(s, u)| (s, u.is_some())));
    for vs in &cfg.virtual_servers {
        out.extend([&vs.quorum_up, &vs.quorum_down].into_iter().flatten().map(|s| (s, false)));
        for rs in &vs.real_servers {
            out.extend([&rs.notify_up, &rs.notify_down].into_iter().flatten().map(|s| (s, false)));
            out.extend(rs.checkers.iter().filter_map(|c| match &c.kind {
                CheckKind::Misc { path, user, .. } => Some((path.as_ref()?, user.is_some())),
                _ => None,
            }));
        }
    }
    out
}
