//! Quoting of atoms: Jenkins' `LabelAtom.escape`/`needsEscape`,
//! `QuotedStringTokenizer.quote` and `QuotedStringTokenizer.unquote`.

use std::fmt;

/// Characters rejected by `Jenkins.checkGoodName`.
const UNSAFE_NAME_CHARS: &str = "?*/\\%!@#$^&|<>[]:;";

/// Java's `String.trim()`: strips every character up to U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Whether an atom must be written as a quoted literal in an expression.
///
/// This is `LabelAtom.needsEscape` (a name failing `Jenkins.checkGoodName`,
/// or containing space, tab, newline or parentheses) extended with `"` and
/// `'`, which Jenkins leaves bare although its lexer cannot read them.
pub(super) fn needs_escape(name: &str) -> bool {
    let trimmed = java_trim(name);
    name.is_empty()
        || trimmed == "."
        || trimmed == ".."
        || trimmed.ends_with('.')
        || name.chars().any(|c| {
            // `char::is_control` is exactly Java's `Character.isISOControl`
            // (U+0000–U+001F and U+007F–U+009F).
            c.is_control()
                || UNSAFE_NAME_CHARS.contains(c)
                || matches!(c, ' ' | '(' | ')' | '\t' | '\n' | '"' | '\'')
        })
}

/// Writes an atom as it appears in an expression (`LabelAtom.getExpression`).
pub(super) fn write_atom_expression(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if !needs_escape(name) {
        return f.write_str(name);
    }
    // QuotedStringTokenizer.quote(String)
    f.write_str("\"")?;
    for c in name.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{c}' => f.write_str("\\f")?,
            '\u{8}' => f.write_str("\\b")?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("\"")
}

/// `QuotedStringTokenizer.unquote`: if `s` is enclosed in matching `"` or
/// `'`, strips them and resolves the escapes `\n \r \t \f \b \uXXXX` (any
/// other escaped character stands for itself; a trailing lone backslash is
/// dropped). Returns `None` where Jenkins throws (an incomplete or invalid
/// `\u` escape) or the escape does not denote a character.
pub(super) fn java_unquote(s: &str) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n < 2 {
        return Some(s.to_owned());
    }
    let (first, last) = (chars[0], chars[n - 1]);
    if first != last || (first != '"' && first != '\'') {
        return Some(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut escape = false;
    let mut i = 1;
    while i < n - 1 {
        let c = chars[i];
        if escape {
            escape = false;
            match c {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'f' => out.push('\u{c}'),
                'b' => out.push('\u{8}'),
                'u' => {
                    if i + 4 >= n - 1 {
                        return None;
                    }
                    let mut code = 0u32;
                    for &h in &chars[i + 1..=i + 4] {
                        code = code * 16 + h.to_digit(16)?;
                    }
                    out.push(char::from_u32(code)?);
                    i += 4;
                }
                c => out.push(c),
            }
        } else if c == '\\' {
            escape = true;
        } else {
            out.push(c);
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_escape_follows_label_atom_rules() {
        for bare in [
            "foo",
            "32bit.dot",
            "a-b",
            "-",
            "x86_64",
            "ünïcødé",
            "a\u{a0}b",
            "a.b",
        ] {
            assert!(!needs_escape(bare), "{bare:?}");
        }
        for quoted in [
            "", ".", "..", "a.", "a b", "a(b", "a)b", "a\tb", "a\nb", "a\u{1}b", "a\u{85}b", "a?b",
            "a*b", "a/b", "a\\b", "a%b", "a!b", "a@b", "a#b", "a$b", "a^b", "a&b", "a|b", "a<b",
            "a>b", "a[b", "a]b", "a:b", "a;b", "a\"b", "a'b", "a. ",
        ] {
            assert!(needs_escape(quoted), "{quoted:?}");
        }
    }

    #[test]
    fn unquote_matches_quoted_string_tokenizer() {
        assert_eq!(java_unquote("abc").as_deref(), Some("abc"));
        assert_eq!(java_unquote("\"").as_deref(), Some("\""));
        assert_eq!(java_unquote("\"abc'").as_deref(), Some("\"abc'"));
        assert_eq!(java_unquote("\"a b\"").as_deref(), Some("a b"));
        assert_eq!(java_unquote("'a b'").as_deref(), Some("a b"));
        assert_eq!(
            java_unquote(r#""a\"b\\c\n\x""#).as_deref(),
            Some("a\"b\\c\nx")
        );
        assert_eq!(java_unquote(r#""\u0041b""#).as_deref(), Some("Ab"));
        assert_eq!(java_unquote(r#""\u004""#), None);
        assert_eq!(java_unquote(r#""\u00zz1""#), None);
        assert_eq!(java_unquote(r#""ab\""#).as_deref(), Some("ab"));
    }
}
