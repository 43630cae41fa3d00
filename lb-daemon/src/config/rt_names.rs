//! iproute2's name tables (`/etc/iproute2/rt_tables`, `rt_dsfield`, `rt_realms`, `rt_protos`,
//! `rt_scopes`, `group`) as keepalived 2.2.7 reads them for routes and rules (lib/rttables.c):
//! a number (decimal, `0x` hex or `0` octal) is itself; a name is looked up in the file, then
//! in keepalived's built-in names for ids the file does not name. Only the file itself is read
//! (not `rt_tables.d/`), as keepalived does. Files are read once, when a name first needs one.

use std::{collections::HashMap, path::PathBuf};

/// One of the name tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Names {
    Tables,
    Dsfield,
    Realms,
    Protos,
    Scopes,
    Groups,
}

impl Names {
    fn file(self) -> &'static str {
        match self {
            Names::Tables => "rt_tables",
            Names::Dsfield => "rt_dsfield",
            Names::Realms => "rt_realms",
            Names::Protos => "rt_protos",
            Names::Scopes => "rt_scopes",
            Names::Groups => "group",
        }
    }

    /// The largest id keepalived accepts.
    fn max(self) -> u32 {
        match self {
            Names::Tables => u32::MAX,
            Names::Groups => i32::MAX as u32,
            _ => 255,
        }
    }

    /// keepalived's built-in names (`rttable_default`, `rtprot_default`, `rtscope_default`).
    fn defaults(self) -> &'static [(u32, &'static str)] {
        match self {
            Names::Tables => &[(253, "default"), (254, "main"), (255, "local")],
            Names::Protos => &[
                (0, "none"),
                (1, "redirect"),
                (2, "kernel"),
                (3, "boot"),
                (4, "static"),
                (8, "gated"),
                (9, "ra"),
                (10, "mrt"),
                (11, "zebra"),
                (12, "bird"),
                (42, "babel"),
                (13, "dnrouted"),
                (14, "xorp"),
                (15, "ntk"),
                (16, "dhcp"),
            ],
            Names::Scopes => &[(0, "global"), (255, "nowhere"), (254, "host"), (253, "link"), (200, "site")],
            _ => &[],
        }
    }
}

/// strtoul with base 0, the whole word: decimal, `0x` hex or `0` octal.
pub fn parse_number(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// The (id, name) lines of one file: exactly two words (after a `#` or `!` comment is cut),
/// an id of at most `max` first; anything else is skipped (keepalived's `read_file`).
pub fn parse_file(text: &str, max: u32) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', '!']).next().unwrap_or_default();
            let words: Vec<&str> = line.split_whitespace().collect();
            let [id, name] = words[..] else { return None };
            let id = parse_number(id).filter(|v| *v <= u64::from(max))?;
            Some((id as u32, name.to_string()))
        })
        .collect()
}

/// The tables of one directory (`/etc/iproute2` unless a test says otherwise).
pub struct RtNames {
    dir: PathBuf,
    loaded: HashMap<Names, Vec<(u32, String)>>,
}

impl Default for RtNames {
    fn default() -> Self {
        Self::new("/etc/iproute2")
    }
}

impl RtNames {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), loaded: HashMap::new() }
    }

    /// The id `word` stands for in table `t`, or `None` (keepalived's `find_entry`).
    pub fn find(&mut self, t: Names, word: &str) -> Option<u32> {
        if let Some(v) = parse_number(word) {
            return u32::try_from(v).ok().filter(|v| *v <= t.max());
        }
        let dir = &self.dir;
        let list = self.loaded.entry(t).or_insert_with(|| {
            let mut list =
                std::fs::read_to_string(dir.join(t.file())).map(|s| parse_file(&s, t.max())).unwrap_or_default();
            for (id, name) in t.defaults() {
                if !list.iter().any(|(i, _)| i == id) {
                    list.push((*id, (*name).to_string()));
                }
            }
            list
        });
        list.iter().find(|(_, n)| n == word).map(|(id, _)| *id)
    }
}

/// For tests: a private directory of iproute2 name files, removed on drop.
#[cfg(test)]
pub struct TempNames(pub std::path::PathBuf);

#[cfg(test)]
impl TempNames {
    pub fn new(files: &[(&str, &str)]) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!("lb-rtnames-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        for (name, text) in files {
            std::fs::write(p.join(name), text).unwrap();
        }
        TempNames(p)
    }
}

#[cfg(test)]
impl Drop for TempNames {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_two_words_with_an_id_in_range() {
        let text =
            "# comment\n255\tlocal\n100 web # trailing\n0x65 hex\n010 octal\n1 two words here\n-1 neg\n300 big\nx y\n";
        assert_eq!(
            parse_file(text, 255),
            [(255, "local".into()), (100, "web".into()), (101, "hex".into()), (8, "octal".into())]
        );
    }

    #[test]
    fn numbers_are_themselves_and_names_come_from_the_file_then_the_defaults() {
        let d = TempNames::new(&[("rt_tables", "100 web\n254 primary\n"), ("rt_protos", "12 mybird\n")]);
        let mut n = RtNames::new(&d.0);
        assert_eq!(n.find(Names::Tables, "web"), Some(100));
        assert_eq!(n.find(Names::Tables, "0x10"), Some(16));
        // The file names 254 itself: keepalived's built-in `main` is not added for it.
        assert_eq!(n.find(Names::Tables, "primary"), Some(254));
        assert_eq!(n.find(Names::Tables, "main"), None);
        assert_eq!(n.find(Names::Tables, "local"), Some(255));
        assert_eq!(n.find(Names::Tables, "nosuch"), None);
        assert_eq!(n.find(Names::Protos, "mybird"), Some(12));
        assert_eq!(n.find(Names::Protos, "bird"), None, "12 is named by the file");
        assert_eq!(n.find(Names::Protos, "static"), Some(4));
        assert_eq!(n.find(Names::Protos, "256"), None, "protocols are 0-255");
        // No file: the built-in names only.
        assert_eq!(n.find(Names::Scopes, "link"), Some(253));
        assert_eq!(n.find(Names::Dsfield, "0x10"), Some(16));
        assert_eq!(n.find(Names::Dsfield, "lowdelay"), None);
    }
}
