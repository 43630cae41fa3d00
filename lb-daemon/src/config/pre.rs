//! keepalived's line preprocessing, before the lexer (keepalived.conf(5), "ADVANCED
//! CONFIGURATION"): conditional lines (`@ID`, `@^ID` against the config id), parameters
//! (`$NAME=value`, multi-line with trailing `\`, used as `$NAME` before whitespace or
//! `${NAME}`, replaced recursively at use), the predefined `${_PWD}`, `${_INSTANCE}`,
//! `${_HASH}`, `${_BANG}`, and `~SEQ(var, start, step, end)` / `~SEQx(...)` line repetition.
//!
//! Pure: text in, text out, with the source line each output line came from (so diagnostics
//! point at the file as written).

use std::collections::HashMap;

/// Substitutions within substitutions stop here (a parameter that names itself).
const MAX_DEPTH: usize = 32;
/// Most lines one `~SEQ` may produce.
const MAX_SEQ: i64 = 65_536;

/// The parameters defined so far (they carry over into included files) and the config id.
#[derive(Clone, Debug)]
pub struct Params {
    config_id: String,
    defs: HashMap<String, String>,
}

impl Params {
    pub fn new(config_id: &str) -> Self {
        Self { config_id: config_id.to_string(), defs: HashMap::new() }
    }
}

/// The preprocessed text, the 1-based source line of each of its lines, and errors as
/// (source line, message).
pub struct Output {
    pub text: String,
    pub lines: Vec<usize>,
    pub errors: Vec<(usize, String)>,
}

/// Preprocesses one file's `text`; `pwd` is its directory (`${_PWD}`).
pub fn process(text: &str, params: &mut Params, pwd: &str) -> Output {
    let mut out = Output { text: String::new(), lines: Vec::new(), errors: Vec::new() };
    let mut st = State { params, pwd, multiline: None };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let mut produced = Vec::new();
        if let Err(e) = st.line(raw, 0, &mut produced) {
            out.errors.push((n, e));
        }
        if produced.is_empty() {
            // Keep one (empty) line per source line: line numbers stay as written.
            produced.push(String::new());
        }
        for l in produced {
            out.text.push_str(&l);
            out.text.push('\n');
            out.lines.push(n);
        }
    }
    if let Some((name, _)) = st.multiline.take() {
        out.errors.push((
            text.lines().count().max(1),
            format!("the definition of ${name} ends with `\\` at the end of the file"),
        ));
    }
    out
}

struct State<'a> {
    params: &'a mut Params,
    pwd: &'a str,
    /// A multi-line definition being read: its name and value so far.
    multiline: Option<(String, String)>,
}

impl State<'_> {
    /// Processes one line (from the file, or from a substitution at `depth`), appending the
    /// lines it becomes to `out`.
    fn line(&mut self, raw: &str, depth: usize, out: &mut Vec<String>) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("parameters nested deeper than {MAX_DEPTH}: does one use itself?"));
        }
        if let Some((name, mut value)) = self.multiline.take() {
            let (part, more) = continued(raw);
            if !value.is_empty() {
                value.push('\n');
            }
            value.push_str(part);
            if more {
                self.multiline = Some((name, value));
            } else {
                self.params.defs.insert(name, value);
            }
            return Ok(());
        }
        let trimmed = raw.trim_start();
        // `@ID line` / `@^ID line`: the line counts only when the id matches (or does not).
        if let Some(rest) = trimmed.strip_prefix('@') {
            let (negate, rest) = match rest.strip_prefix('^') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let (id, line) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if (id == self.params.config_id) == negate {
                return Ok(());
            }
            return self.line(line, depth, out);
        }
        if let Some((name, value)) = definition(trimmed) {
            let (value, more) = continued(value);
            if more {
                self.multiline = Some((name.to_string(), value.trim().to_string()));
            } else {
                self.params.defs.insert(name.to_string(), value.trim().to_string());
            }
            return Ok(());
        }
        if let Some(rest) = trimmed.strip_prefix("~SEQ") {
            return self.seq(rest, depth, out);
        }
        if uses_random(raw) {
            return Err("`$_RANDOM` (keepalived's random value, drawn at each read of the config) is not \
                        implemented: a reload would change what it means; write the value"
                .into());
        }
        let replaced = self.substitute(raw);
        if replaced == raw {
            out.push(raw.to_string());
            return Ok(());
        }
        // What a parameter brought may hold conditions, definitions and more parameters.
        for l in replaced.split('\n') {
            self.line(l, depth + 1, out)?;
        }
        Ok(())
    }

    /// `~SEQ(var, start, step, end) rest` (`rest` after "~SEQ"): `rest` once per value.
    fn seq(&mut self, rest: &str, depth: usize, out: &mut Vec<String>) -> Result<(), String> {
        let (hex, rest) = match rest.strip_prefix('x') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let rest = rest.strip_prefix('(').ok_or("`~SEQ` needs `(var, start, step, end)`")?;
        let (args, line) = rest.split_once(')').ok_or("`~SEQ(` is not closed by `)`")?;
        let args: Vec<&str> = args.split(',').map(str::trim).collect();
        let var = args[0];
        if !is_name(var) {
            return Err(format!("`~SEQ` variable `{var}` is not a parameter name"));
        }
        let num = |s: &str| -> Result<i64, String> {
            let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(h) => i64::from_str_radix(h, 16),
                None => s.parse(),
            };
            parsed.map_err(|_| format!("`~SEQ`: `{s}` is not a number"))
        };
        let (start, step, end) = match args.len() {
            2 => {
                let end = num(args[1])?;
                let start = if end < 0 { -1 } else { 1 };
                (start, if end >= start { 1 } else { -1 }, end)
            }
            3 => {
                let (start, end) = (num(args[1])?, num(args[2])?);
                (start, if end >= start { 1 } else { -1 }, end)
            }
            4 => (num(args[1])?, num(args[2])?, num(args[3])?),
            _ => return Err("`~SEQ` needs (var, [start, [step,]] end)".into()),
        };
        if step == 0 || (end - start).signum() * step.signum() < 0 && start != end {
            return Err(format!("`~SEQ({})` never reaches its end", args.join(", ")));
        }
        if (end - start) / step >= MAX_SEQ {
            return Err(format!("`~SEQ` would repeat a line more than {MAX_SEQ} times"));
        }
        let mut v = start;
        while (step > 0 && v <= end) || (step < 0 && v >= end) {
            let text = if hex { format!("{v:x}") } else { v.to_string() };
            self.params.defs.insert(var.to_string(), text);
            self.line(line, depth + 1, out)?;
            v += step;
        }
        Ok(())
    }

    /// `text` with every defined `${NAME}` and `$NAME` (before whitespace or the end)
    /// replaced once; undefined ones stay as written.
    fn substitute(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, used, braced) = match after.strip_prefix('{') {
                Some(b) => match b.find('}') {
                    Some(end) => (&b[..end], end + 2, true),
                    None => ("", 0, true),
                },
                None => {
                    let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                    (&after[..len], len, false)
                }
            };
            let ends_well = braced || after[used..].is_empty() || after[used..].starts_with(char::is_whitespace);
            match self.value(name).filter(|_| used > 0 && ends_well) {
                Some(v) => {
                    out.push_str(&v);
                    rest = &after[used..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn value(&self, name: &str) -> Option<String> {
        match name {
            "_PWD" => Some(self.pwd.to_string()),
            "_INSTANCE" => Some(self.params.config_id.clone()),
            "_HASH" => Some("#".into()),
            "_BANG" => Some("!".into()),
            _ => self.params.defs.get(name).cloned(),
        }
    }
}

/// Whether `line` uses keepalived's `$_RANDOM`, `${_RANDOM}` or `${_RANDOM MIN MAX}`.
fn uses_random(line: &str) -> bool {
    line.match_indices("$_RANDOM").any(|(at, _)| {
        let next = line[at + "$_RANDOM".len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    }) || line.contains("${_RANDOM}")
        || line.contains("${_RANDOM ")
}

/// `$NAME=value` (only whitespace before `$`, nothing between the name and `=`).
fn definition(trimmed: &str) -> Option<(&str, &str)> {
    let rest = trimmed.strip_prefix('$')?;
    let (name, value) = rest.split_once('=')?;
    is_name(name).then_some((name, value))
}

fn is_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A definition line's text without its trailing `\`, and whether one was there.
fn continued(line: &str) -> (&str, bool) {
    let t = line.trim_end();
    match t.strip_suffix('\\') {
        Some(v) => (v.trim_end(), true),
        None => (t, false),
    }
}

/// The default config id, as keepalived's: the host name up to its first dot.
pub fn default_config_id() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.split('.').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, text: &str) -> (String, Vec<usize>) {
        let mut p = Params::new(id);
        let o = process(text, &mut p, "/etc/keepalived");
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        (o.text, o.lines)
    }

    /// The non-empty lines, trimmed.
    fn lines(id: &str, text: &str) -> Vec<String> {
        run(id, text).0.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
    }

    #[test]
    fn conditional_lines_follow_the_config_id() {
        let text = "@main router_id main_router\n@backup router_id backup_router\n@^main 1.2.3.4\n@^backup 1.2.3.5\n";
        assert_eq!(lines("main", text), ["router_id main_router", "1.2.3.5"]);
        assert_eq!(lines("other", text), ["1.2.3.4", "1.2.3.5"]);
    }

    #[test]
    fn parameters_are_replaced_at_use_recursively() {
        let text = "$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n${ADDRESS_BASE}.100/32\n\
                    $ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n";
        assert_eq!(lines("x", text), ["10.2.0.100/32", "10.2.10.100/32"]);
        // `$NAME` only before whitespace; undefined ones stay; predefined ones exist.
        let text = "$P=7\npriority $P\nx $Px ${UNDEF} $UNDEF\npath ${_PWD}/s${_HASH}1\n";
        assert_eq!(lines("x", text), ["priority 7", "x $Px ${UNDEF} $UNDEF", "path /etc/keepalived/s#1"]);
    }

    #[test]
    fn parameters_and_conditions_combine() {
        let text =
            "@main $PRIORITY=240\n@backup $PRIORITY=200\npriority $PRIORITY\n$IF_MAIN=@main\n$IF_MAIN nopreempt\n";
        assert_eq!(lines("main", text), ["priority 240", "nopreempt"]);
        assert_eq!(lines("backup", text), ["priority 200"]);
    }

    #[test]
    fn multi_line_definitions_expand_to_lines_and_nest() {
        let text = "$RS= \\\n real_server 192.0.2.${RS_NUM} 80 { \\\n  weight 1 \\\n }\n\
                    $VS= \\\nvirtual_server 203.0.113.${VS_NUM} 80 { \\\n $RS_NUM=1 \\\n $RS \\\n $RS_NUM=2 \\\n $RS \\\n}\n\
                    $VS_NUM=4\n$VS\n";
        let (text, map) = run("x", text);
        let got: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        assert_eq!(
            got,
            [
                "virtual_server 203.0.113.4 80 {",
                "real_server 192.0.2.1 80 {",
                "weight 1",
                "}",
                "real_server 192.0.2.2 80 {",
                "weight 1",
                "}",
                "}"
            ]
        );
        // Every produced line points at `$VS`, line 13 of the source.
        let used: Vec<usize> = text.lines().zip(&map).filter(|(l, _)| !l.trim().is_empty()).map(|(_, n)| *n).collect();
        assert!(used.iter().all(|&n| n == 13), "{map:?}");
    }

    #[test]
    fn seq_repeats_a_line_in_decimal_or_hex() {
        assert_eq!(
            lines("x", "~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1\n"),
            ["ip_address 10.0.0.1", "ip_address 10.0.1.1", "ip_address 10.0.2.1", "ip_address 10.0.3.1"]
        );
        assert_eq!(
            lines("x", "~SEQx(S, 0x90, 0x10, 0xc0) fe80::20:${S}:1\n"),
            ["fe80::20:90:1", "fe80::20:a0:1", "fe80::20:b0:1", "fe80::20:c0:1"]
        );
        assert_eq!(lines("x", "~SEQ(N, 3) n${N}\n"), ["n1", "n2", "n3"]);
        assert_eq!(lines("x", "~SEQ(A, 1, 2) ~SEQ(B, 1, 2) ${A}.${B}\n"), ["1.1", "1.2", "2.1", "2.2"]);
    }

    #[test]
    fn mistakes_are_errors_on_their_line() {
        let mut p = Params::new("x");
        let o = process("ok\n~SEQ(N, 1, -1, 5) x\n$A=x $A\n$A\n", &mut p, "/");
        assert_eq!(o.errors.iter().map(|e| e.0).collect::<Vec<_>>(), [2, 4], "{:?}", o.errors);
        let o = process("$M= \\\n a \\\n", &mut Params::new("x"), "/");
        assert!(o.errors[0].1.contains("end of the file"), "{:?}", o.errors);
        // keepalived's random value is refused by name; a parameter merely named so is not.
        let o = process(
            "a $_RANDOM\nb ${_RANDOM}\nc ${_RANDOM 1 9}\n$_RANDOMX=1\nd $_RANDOMX\n",
            &mut Params::new("x"),
            "/",
        );
        assert_eq!(o.errors.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3], "{:?}", o.errors);
        assert!(o.errors[0].1.contains("`$_RANDOM`"), "{:?}", o.errors);
    }
}
