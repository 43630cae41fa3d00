//! A url's `regex` as keepalived 2.2.7 runs it (check_http.c `prepare_regex`, `check_regex`),
//! through PCRE2's own API: compiled with `regex_options`' flags and JIT-compiled for hard
//! partial matching, then matched with `PCRE2_PARTIAL_HARD`. A hard partial match (one that
//! reaches the end of the data, as `$` or a trailing `\s*` does) is kept for more data in
//! keepalived and never settled at the end of the stream, so it counts as no match.

use std::ptr::{self, NonNull};

use pcre2_sys::*;

/// keepalived's `regex_options` names and the PCRE2 compile flag each sets (check_http.c).
pub const OPTIONS: &[(&str, u32)] = &[
    ("allow_empty_class", PCRE2_ALLOW_EMPTY_CLASS),
    ("alt_bsux", PCRE2_ALT_BSUX),
    ("auto_callout", PCRE2_AUTO_CALLOUT),
    ("caseless", PCRE2_CASELESS),
    ("dollar_endonly", PCRE2_DOLLAR_ENDONLY),
    ("dotall", PCRE2_DOTALL),
    ("dupnames", PCRE2_DUPNAMES),
    ("extended", PCRE2_EXTENDED),
    ("firstline", PCRE2_FIRSTLINE),
    ("match_unset_backref", PCRE2_MATCH_UNSET_BACKREF),
    ("multiline", PCRE2_MULTILINE),
    ("never_ucp", PCRE2_NEVER_UCP),
    ("never_utf", PCRE2_NEVER_UTF),
    ("no_auto_capture", PCRE2_NO_AUTO_CAPTURE),
    ("no_auto_possess", PCRE2_NO_AUTO_POSSESS),
    ("no_dotstar_anchor", PCRE2_NO_DOTSTAR_ANCHOR),
    ("no_start_optimize", PCRE2_NO_START_OPTIMIZE),
    ("ucp", PCRE2_UCP),
    ("ungreedy", PCRE2_UNGREEDY),
    ("utf", PCRE2_UTF),
    ("never_backslash_c", PCRE2_NEVER_BACKSLASH_C),
    ("alt_circumflex", PCRE2_ALT_CIRCUMFLEX),
    ("alt_verbnames", PCRE2_ALT_VERBNAMES),
    ("use_offset_limit", PCRE2_USE_OFFSET_LIMIT),
];

/// A compiled, JIT-compiled pattern.
pub struct Pattern {
    code: NonNull<pcre2_code_8>,
}

// SAFETY: a compiled PCRE2 pattern is read-only once compiled (and JIT-compiled); PCRE2
// documents it as shareable between threads. Match data and JIT stacks are per call.
unsafe impl Send for Pattern {}
unsafe impl Sync for Pattern {}

impl Drop for Pattern {
    fn drop(&mut self) {
        // SAFETY: `code` came from pcre2_compile_8 and is freed once, here.
        unsafe { pcre2_code_free_8(self.code.as_ptr()) };
    }
}

/// What one match found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A complete match starting at this offset.
    At(usize),
    /// No match, or only a hard partial one.
    Nothing,
}

fn message(code: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: PCRE2 writes at most `buf.len()` bytes, NUL-terminated, and returns the length.
    let n = unsafe { pcre2_get_error_message_8(code, buf.as_mut_ptr(), buf.len()) };
    String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned()
}

impl Pattern {
    /// keepalived's `prepare_regex`: compile with `options`, then JIT-compile for hard partial
    /// matching (keepalived drops the regex when either fails; the config refuses it here).
    pub fn compile(pattern: &[u8], options: u32) -> Result<Pattern, String> {
        let (mut err, mut at) = (0i32, 0usize);
        // SAFETY: the pointer and length describe `pattern`; no compile context.
        let code =
            unsafe { pcre2_compile_8(pattern.as_ptr(), pattern.len(), options, &mut err, &mut at, ptr::null_mut()) };
        let code = NonNull::new(code).ok_or_else(|| format!("at offset {at}: {}", message(err)))?;
        let p = Pattern { code };
        // SAFETY: `code` is a valid compiled pattern.
        let rc = unsafe { pcre2_jit_compile_8(p.code.as_ptr(), PCRE2_JIT_PARTIAL_HARD) };
        if rc != 0 {
            return Err(format!("JIT compilation failed: {}", message(rc)));
        }
        Ok(p)
    }

    /// keepalived's `check_regex` over `subject` from `start`, with a JIT stack of
    /// `stack = (start, max)` bytes when `regex_stack` gives one (PCRE2's default otherwise).
    pub fn find(&self, subject: &[u8], start: usize, stack: Option<(usize, usize)>) -> Result<Found, String> {
        // SAFETY: `code` is valid; each object created here is freed below, on every path.
        unsafe {
            let data = pcre2_match_data_create_from_pattern_8(self.code.as_ptr(), ptr::null_mut());
            if data.is_null() {
                return Err("no memory for match data".into());
            }
            let (mut context, mut jit) = (ptr::null_mut(), ptr::null_mut());
            if let Some((first, max)) = stack {
                jit = pcre2_jit_stack_create_8(first, max, ptr::null_mut());
                context = pcre2_match_context_create_8(ptr::null_mut());
                if jit.is_null() || context.is_null() {
                    free(data, context, jit);
                    return Err(format!("cannot make a JIT stack of {first}..{max} bytes"));
                }
                pcre2_jit_stack_assign_8(context, None, jit.cast());
            }
            let rc = pcre2_jit_match_8(
                self.code.as_ptr(),
                subject.as_ptr(),
                subject.len(),
                start,
                PCRE2_PARTIAL_HARD,
                data,
                context,
            );
            let found = if rc >= 0 {
                Ok(Found::At(*pcre2_get_ovector_pointer_8(data)))
            } else if rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL {
                Ok(Found::Nothing)
            } else {
                Err(message(rc))
            };
            free(data, context, jit);
            found
        }
    }
}

/// # Safety
/// Each pointer is null or came from its PCRE2 constructor, and is not used again.
unsafe fn free(data: *mut pcre2_match_data_8, context: *mut pcre2_match_context_8, jit: *mut pcre2_jit_stack_8) {
    // SAFETY: as the caller promises; PCRE2's free functions accept null.
    unsafe {
        pcre2_match_data_free_8(data);
        pcre2_match_context_free_8(context);
        pcre2_jit_stack_free_8(jit);
    }
}

/// keepalived's `alloc_strvec_quoted_escaped` on one word: `\xHH`, `\cX`, octal `\NNN`, the C
/// escapes (`\a \b \E \f \n \r \t \v`), any other `\c` is `c`, and single quotes quote too.
/// `None` for a trailing lone backslash (keepalived: "Missing escape char at end").
pub fn unescape(word: &str) -> Option<Vec<u8>> {
    let s = word.as_bytes();
    let s = match s {
        [b'\'', inner @ .., b'\''] => inner,
        _ => s,
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        i += 1;
        let c = *s.get(i)?;
        match c {
            b'x' if s.get(i + 1).is_some_and(u8::is_ascii_hexdigit) => {
                i += 1;
                let mut v = 0u8;
                while let Some(d) = s.get(i).and_then(|b| (*b as char).to_digit(16)) {
                    v = v.wrapping_shl(4) | d as u8;
                    i += 1;
                }
                out.push(v);
            }
            b'c' if i + 1 < s.len() => {
                out.push(s[i + 1] & 0x1f);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = 0u8;
                let mut n = 0;
                while n < 3 && s.get(i).is_some_and(|b| (b'0'..=b'7').contains(b)) {
                    v = v.wrapping_shl(3).wrapping_add(s[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(v);
            }
            _ => {
                out.push(match c {
                    b'a' => 0x07,
                    b'b' => 0x08,
                    b'E' => 0x1b,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => 0x0b,
                    other => other,
                });
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(pattern: &str, subject: &str) -> Found {
        Pattern::compile(pattern.as_bytes(), 0).unwrap().find(subject.as_bytes(), 0, None).unwrap()
    }

    /// Hard partial matching: what reaches the end of the data is not (yet) a match.
    #[test]
    fn a_match_reaching_the_end_is_partial() {
        assert_eq!(found("ok", "it is ok!"), Found::At(6));
        assert_eq!(found("ok$", "it is ok"), Found::Nothing);
        assert_eq!(found("ok\\s*", "it is ok"), Found::Nothing);
        assert_eq!(found("ok\\s*!", "it is ok !"), Found::At(6));
        assert_eq!(found("nothing", "it is ok"), Found::Nothing);
    }

    #[test]
    fn words_unescape_as_keepalived_reads_them() {
        assert_eq!(unescape(r"^(OK|ok)\s*$").unwrap(), b"^(OK|ok)s*$");
        assert_eq!(unescape(r"\\d+").unwrap(), b"\\d+");
        assert_eq!(unescape(r"a\x41\101\n\cA'").unwrap(), b"aAA\n\x01'");
        assert_eq!(unescape("'x y'").unwrap(), b"x y");
        assert!(unescape("trailing\\").is_none());
    }
}
