//! Text a guest (or an input file's name) controls, made safe to store,
//! print and write as lines.
//!
//! Everything a scorer says — `run()`/`init()` error messages, item errors,
//! panic text, log lines — enters the host through [`guest_text`]: cut to a
//! byte bound on a character boundary (so one 100 MB error message cannot
//! become 100 MB in every report and on the terminal, once per try) and
//! with control characters escaped (so a newline cannot forge a log line
//! attributed to another mini-batch, and an ESC/OSC sequence cannot redraw
//! the user's terminal). [`escape_controls`] alone is applied again where
//! text reaches a terminal, so names that never passed through a guest
//! (input file names) are shown safely too.

use std::borrow::Cow;
use std::fmt::Write;

/// The most bytes of a mini-batch failure message (`run()`/`init()`
/// error, trap or panic text) the host keeps.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The most bytes of one item error message the host keeps.
pub const MAX_ITEM_ERROR_BYTES: usize = 1024;

/// The most bytes of one guest log line the host keeps.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

/// Whether `c` must not reach a terminal or a line-oriented file as is:
/// C0 and C1 controls, DEL, and the Unicode characters that reorder or
/// hide text (bidi overrides and isolates, line/paragraph separators).
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as an escape (`\n`, `\t`,
/// `\u{1b}`); borrowed when there is none.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Room kept for the note that says how much was cut.
const NOTE_ROOM: usize = 56;

/// Guest text as the host keeps it: control characters escaped, then cut
/// (on a character boundary, never inside an escape) so that with a note
/// saying how much was cut it is at most `max` bytes. Applying it again
/// changes nothing.
pub fn guest_text(s: &str, max: usize) -> String {
    // Escape only what can be kept: a 100 MB message costs no 100 MB copy.
    let head = prefix(s, max);
    let escaped = escape_controls(head);
    let cut_input = s.len() - head.len();
    if cut_input == 0 && escaped.len() <= max {
        return escaped.into_owned();
    }
    let kept = cut_escaped(&escaped, max.saturating_sub(NOTE_ROOM));
    let dropped = s.len() - unescaped_len(head, kept.len());
    format!("{kept}... [{dropped} more bytes cut by the host]")
}

/// The longest prefix of escaped text of at most `max` bytes that does not
/// end inside an escape sequence.
fn cut_escaped(escaped: &str, max: usize) -> &str {
    let p = prefix(escaped, max);
    // An escape is `\n`-style (2 bytes) or `\u{...}` (at most 10 bytes):
    // back up to before a partial one.
    if let Some(pos) = p.rfind('\\') {
        let tail = &p[pos..];
        let complete = match tail.as_bytes().get(1) {
            Some(b'u') => tail.ends_with('}'),
            Some(_) => tail.len() >= 2,
            None => false,
        };
        if !complete {
            return &p[..pos];
        }
    }
    p
}

/// How many bytes of the raw text `raw` the first `escaped_len` bytes of
/// its escaped form stand for.
fn unescaped_len(raw: &str, escaped_len: usize) -> usize {
    let mut used = 0;
    let mut raw_len = 0;
    let mut buf = [0u8; 4];
    for c in raw.chars() {
        let w = match c {
            '\n' | '\r' | '\t' => 2,
            c if is_unsafe(c) => format!("\\u{{{:x}}}", c as u32).len(),
            c => c.encode_utf8(&mut buf).len(),
        };
        if used + w > escaped_len {
            break;
        }
        used += w;
        raw_len += c.len_utf8();
    }
    raw_len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept text and the number in its note.
    fn split(t: &str) -> (&str, usize) {
        let (kept, note) = t.rsplit_once("... [").unwrap();
        (kept, note.split(' ').next().unwrap().parse().unwrap())
    }

    #[test]
    fn cuts_on_a_char_boundary_and_says_how_much() {
        let s = "é".repeat(5000); // 10,000 bytes, 2 per char
        let t = guest_text(&s, 4095);
        assert!(t.len() <= 4095, "{}", t.len());
        assert!(t.ends_with(" more bytes cut by the host]"), "{}", &t[t.len() - 60..]);
        let (kept, dropped) = split(&t);
        assert!(kept.chars().all(|c| c == 'é') && kept.len() > 4000);
        assert_eq!(kept.len() + dropped, 10_000);
        assert_eq!(guest_text("short", 10), "short");
        // Idempotent: bounding twice is bounding once.
        assert_eq!(guest_text(&t, 4095), t);
    }

    #[test]
    fn escapes_line_breaks_and_terminal_sequences() {
        assert_eq!(guest_text("a\nb\r\x1b]0;pwned\x07\u{202e}z", 100), "a\\nb\\r\\u{1b}]0;pwned\\u{7}\\u{202e}z");
        assert_eq!(escape_controls("plain text"), Cow::Borrowed("plain text"));
        assert!(!guest_text(&"\n".repeat(10_000), 50).contains('\n'));
    }

    #[test]
    fn never_cuts_inside_an_escape() {
        // 10 + 1 + 60 bytes; 13 bytes of room would end inside `\u{1b}`.
        let s = format!("{}\x1b{}", "a".repeat(10), "z".repeat(60));
        let t = guest_text(&s, NOTE_ROOM + 13);
        assert!(t.starts_with("aaaaaaaaaa..."), "{t}");
        assert_eq!(split(&t).1, 61);
        let t = guest_text(&"\n".repeat(40), NOTE_ROOM + 5);
        assert!(t.starts_with("\\n\\n..."), "{t}");
        assert!(t.ends_with("[38 more bytes cut by the host]"), "{t}");
    }
}
