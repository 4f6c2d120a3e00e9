//! Lexer and parser for label expressions.
//!
//! This is a hand-written equivalent of Jenkins core's ANTLR grammar
//! (`core/src/main/antlr4/hudson/model/labels/LabelExpressionLexer.g4` and
//! `LabelExpressionParser.g4`):
//!
//! ```text
//! expr  : term1 EOF ;
//! term1 : term2 (IFF term2)* ;          // `<->`, chainable, left-associative
//! term2 : term3 (IMPLIES term3)? ;      // `->`, NOT chainable
//! term3 : term4 (OR term4)* ;           // `||`
//! term4 : term5 (AND term5)* ;          // `&&`
//! term5 : term6 | NOT term6 ;           // `!` applies to an atom or a parenthesis only
//! term6 : LPAREN term1 RPAREN | ATOM | STRINGLITERAL ;
//! ```
//!
//! The parser is the recursive-descent reading of this grammar with the
//! recursion replaced by an explicit stack of [`Frame`]s, one per open
//! parenthesis, so that no input can overflow the call stack.
//!
//! Whitespace (`WS`) is only space and tab; every other character that is not
//! one of `&|!<>()"'` (and `-` when followed by `>`) belongs to an atom, so a
//! newline is an atom character, exactly as in Jenkins.

use std::fmt::Write as _;

use super::LabelExpr;

/// Maximum nesting depth of parentheses accepted by the parser.
///
/// Jenkins has no explicit limit (the JVM stack is the limit); this crate
/// rejects deeper input with a [`LabelParseError`] instead of risking a
/// stack overflow.
pub const MAX_PAREN_DEPTH: usize = 256;

/// Maximum depth of the expression tree accepted by the parser.
///
/// Every operator adds one level, so a flat chain `n1 || n2 || … || nK` has
/// depth `K`; chains of up to 1024 operands are accepted. Deeper input is
/// rejected with a [`LabelParseError`].
pub const MAX_TREE_DEPTH: usize = 1024;

/// Longest excerpt of the input repeated in an error message.
const MAX_EXCERPT_CHARS: usize = 120;

/// A label expression could not be parsed.
///
/// The message names the input, the 0-based *character* (Unicode scalar
/// value) offset of the problem, what was expected and what was found:
///
/// ```
/// use jenkins_cloud_core::label::LabelExpr;
///
/// let err = "a && ".parse::<LabelExpr>().unwrap_err();
/// assert_eq!(err.position(), 5);
/// assert_eq!(
///     err.to_string(),
///     "label expression `a && `: expected a label, `!` or `(` at position 5, found end of input"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label expression `{}`: {}", .0.excerpt, .0.message)]
pub struct LabelParseError(Box<ErrorDetail>);

/// Boxed so that `Result<_, LabelParseError>` stays one pointer wide.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorDetail {
    input: String,
    excerpt: String,
    position: usize,
    expected: String,
    found: String,
    message: String,
}

impl LabelParseError {
    fn new(input: &str, position: usize, expected: String, found: String) -> Self {
        let message = format!("expected {expected} at position {position}, found {found}");
        LabelParseError(Box::new(ErrorDetail {
            input: input.to_owned(),
            excerpt: excerpt(input),
            position,
            expected,
            found,
            message,
        }))
    }

    /// The complete input that failed to parse.
    pub fn input(&self) -> &str {
        &self.0.input
    }

    /// 0-based character offset (not byte offset) of the problem in
    /// [`input`](Self::input). Equal to the number of characters of the input
    /// when the problem is an unexpected end of input.
    pub fn position(&self) -> usize {
        self.0.position
    }

    /// What the parser expected at [`position`](Self::position), e.g.
    /// ``"a label, `!` or `(`"``.
    pub fn expected(&self) -> &str {
        &self.0.expected
    }

    /// What the parser found instead, e.g. ``"`)`"`` or `"end of input"`.
    pub fn found(&self) -> &str {
        &self.0.found
    }
}

/// Renders `text` for an error message: control characters escaped, long
/// text shortened.
fn excerpt(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_EXCERPT_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Internal failure (boxed to keep `PResult` small), completed into a
/// [`LabelParseError`] by [`parse_range`].
struct Fail {
    position: usize,
    expected: String,
    found: String,
}

type PResult<T> = Result<T, Box<Fail>>;

fn fail<T>(position: usize, expected: impl Into<String>, found: impl Into<String>) -> PResult<T> {
    Err(Box::new(Fail {
        position,
        expected: expected.into(),
        found: found.into(),
    }))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    And,
    Or,
    Not,
    Implies,
    Iff,
    LParen,
    RParen,
    /// A bare atom or an unquoted string literal.
    Atom(String),
    Eof,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

/// Characters that can never be part of a bare atom (`IDENTIFIER_PART`).
fn is_atom_char(c: char) -> bool {
    !matches!(
        c,
        '&' | '|' | '!' | '<' | '>' | '(' | ')' | ' ' | '\t' | '"' | '\'' | '-'
    )
}

const EXPECT_OPERAND: &str = "a label, `!` or `(`";
const EXPECT_OPERAND_AFTER_NOT: &str = "a label or `(`";
const EXPECT_ANY_TOKEN: &str = "a label, an operator or a parenthesis";

/// A parsed operand or partial expression and the depth of its tree.
type Sub = (LabelExpr, usize);

/// The left operand of a binary operator whose right operand is still being
/// parsed, with the operator's span (for depth errors).
struct Pending {
    lhs: Sub,
    op: (usize, usize),
}

/// Parser state for one level of parentheses (or the whole input): the
/// partially built operands of every precedence level of the grammar, i.e.
/// what the recursive-descent functions `term1` … `term5` hold on their
/// stacks. Keeping them in an explicit `Vec` means deeply nested input
/// cannot overflow the call stack.
#[derive(Default)]
struct Frame {
    /// Position of the `(` that opened this level; `None` for the top level.
    open: Option<usize>,
    /// A `!` waiting for its operand.
    not: Option<(usize, usize)>,
    and: Option<Pending>,
    or: Option<Pending>,
    implies: Option<Pending>,
    iff: Option<Pending>,
}

struct Parser {
    chars: Vec<char>,
    /// Lexer cursor.
    pos: usize,
    /// Exclusive end of the part of `chars` being parsed.
    end: usize,
}

/// Parses `input[start..end]` (character offsets); error positions are
/// relative to the start of `input`.
pub(super) fn parse_range(
    input: &str,
    chars: Vec<char>,
    start: usize,
    end: usize,
) -> Result<LabelExpr, LabelParseError> {
    let mut parser = Parser {
        chars,
        pos: start,
        end,
    };
    parser
        .parse()
        .map_err(|f| LabelParseError::new(input, f.position, f.expected, f.found))
}

impl Parser {
    fn char_at(&self, i: usize) -> Option<char> {
        if i < self.end {
            Some(self.chars[i])
        } else {
            None
        }
    }

    /// Human-readable rendering of `chars[start..end]` in backticks.
    fn quote_text(&self, start: usize, end: usize) -> String {
        let text: String = self.chars[start..end.min(self.end)].iter().collect();
        format!("`{}`", excerpt(&text))
    }

    fn describe(&self, token: &Token) -> String {
        match token.tok {
            Tok::Eof => "end of input".to_owned(),
            _ => self.quote_text(token.start, token.end),
        }
    }

    fn lex(&mut self) -> PResult<Token> {
        while matches!(self.char_at(self.pos), Some(' ' | '\t')) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(c) = self.char_at(start) else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
                end: start,
            });
        };
        let next = self.char_at(start + 1);
        let (tok, len) = match c {
            '&' if next == Some('&') => (Tok::And, 2),
            '|' if next == Some('|') => (Tok::Or, 2),
            '&' | '|' => {
                return fail(
                    start,
                    format!("`{c}{c}`"),
                    self.quote_text(start, start + 1),
                )
            }
            '!' => (Tok::Not, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '-' if next == Some('>') => (Tok::Implies, 2),
            '<' => {
                if next == Some('-') && self.char_at(start + 2) == Some('>') {
                    (Tok::Iff, 3)
                } else {
                    let seen = if next == Some('-') { 2 } else { 1 };
                    return fail(start, "`<->`", self.quote_text(start, start + seen));
                }
            }
            '>' => return fail(start, EXPECT_ANY_TOKEN, "`>`"),
            '\'' => {
                return fail(
                    start,
                    EXPECT_ANY_TOKEN,
                    "`'` (single quotes are not supported; quote labels with `\"`)",
                )
            }
            '"' => return self.lex_string(start),
            _ => {
                // ATOM: ({LA(2) != '>'}? '-' | IDENTIFIER_PART)+
                let mut i = start;
                while let Some(c) = self.char_at(i) {
                    let ok = if c == '-' {
                        self.char_at(i + 1) != Some('>')
                    } else {
                        is_atom_char(c)
                    };
                    if !ok {
                        break;
                    }
                    i += 1;
                }
                let text = self.chars[start..i].iter().collect();
                (Tok::Atom(text), i - start)
            }
        };
        self.pos = start + len;
        Ok(Token {
            tok,
            start,
            end: self.pos,
        })
    }

    /// STRINGLITERAL: `"` ( `\` [btnfr"'\\] | ~[\\"\r\n] )* `"`, unquoted the
    /// way `QuotedStringTokenizer.unquote` does it.
    fn lex_string(&mut self, start: usize) -> PResult<Token> {
        let closing = || format!("`\"` closing the quoted label opened at position {start}");
        let mut value = String::new();
        let mut i = start + 1;
        loop {
            match self.char_at(i) {
                None => return fail(i, closing(), "end of input"),
                Some('"') => break,
                Some('\r' | '\n') => {
                    return fail(
                        i,
                        format!("{} (write line breaks as `\\n`)", closing()),
                        "a line break",
                    )
                }
                Some('\\') => {
                    let unescaped = match self.char_at(i + 1) {
                        Some('b') => '\u{8}',
                        Some('t') => '\t',
                        Some('n') => '\n',
                        Some('f') => '\u{c}',
                        Some('r') => '\r',
                        Some(c @ ('"' | '\'' | '\\')) => c,
                        None => return fail(i + 1, closing(), "end of input"),
                        Some(_) => return fail(
                            i,
                            "one of the escapes `\\b` `\\t` `\\n` `\\f` `\\r` `\\\"` `\\'` `\\\\`",
                            self.quote_text(i, i + 2),
                        ),
                    };
                    value.push(unescaped);
                    i += 2;
                }
                Some(c) => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        self.pos = i + 1;
        Ok(Token {
            tok: Tok::Atom(value),
            start,
            end: self.pos,
        })
    }

    /// Builds `make(lhs, rhs)` if there is a pending left operand, checking
    /// the depth limit; otherwise returns `rhs`.
    fn combine(
        &self,
        pending: Option<Pending>,
        rhs: Sub,
        make: fn(LabelExpr, LabelExpr) -> LabelExpr,
    ) -> PResult<Sub> {
        let Some(Pending { lhs, op }) = pending else {
            return Ok(rhs);
        };
        let depth = self.deeper(op, lhs.1, rhs.1)?;
        Ok((make(lhs.0, rhs.0), depth))
    }

    /// Depth of a node whose children have depths `a` and `b`.
    fn deeper(&self, op: (usize, usize), a: usize, b: usize) -> PResult<usize> {
        let depth = 1 + a.max(b);
        if depth > MAX_TREE_DEPTH {
            return fail(
                op.0,
                format!("an expression at most {MAX_TREE_DEPTH} operators deep"),
                format!("{} nesting deeper than that", self.quote_text(op.0, op.1)),
            );
        }
        Ok(depth)
    }

    /// Folds the pending operands of `frame` with its last operand `v`
    /// (the end of a `term1`).
    fn finish(&self, frame: &mut Frame, v: Sub) -> PResult<Sub> {
        let v = self.combine(frame.and.take(), v, LabelExpr::and)?;
        let v = self.combine(frame.or.take(), v, LabelExpr::or)?;
        let v = self.combine(frame.implies.take(), v, LabelExpr::implies)?;
        self.combine(frame.iff.take(), v, LabelExpr::iff)
    }

    fn parse(&mut self) -> PResult<LabelExpr> {
        let mut frames = vec![Frame::default()];
        loop {
            // Operand position: term5 = `!`? term6.
            let token = self.lex()?;
            let frame = frames.last_mut().expect("never empty");
            let mut v: Sub = match token.tok {
                Tok::Not if frame.not.is_none() => {
                    frame.not = Some((token.start, token.end));
                    continue;
                }
                Tok::Not => {
                    return fail(
                        token.start,
                        EXPECT_OPERAND_AFTER_NOT,
                        "`!` (a double negation needs parentheses: `!(!a)`)",
                    )
                }
                Tok::LParen => {
                    if frames.len() > MAX_PAREN_DEPTH {
                        return fail(
                            token.start,
                            format!("at most {MAX_PAREN_DEPTH} nested parentheses"),
                            "`(` nesting deeper than that",
                        );
                    }
                    frames.push(Frame {
                        open: Some(token.start),
                        ..Frame::default()
                    });
                    continue;
                }
                Tok::Atom(name) => (LabelExpr::Atom(name), 1),
                _ => {
                    let expected = if frame.not.is_some() {
                        EXPECT_OPERAND_AFTER_NOT
                    } else {
                        EXPECT_OPERAND
                    };
                    return fail(token.start, expected, self.describe(&token));
                }
            };
            // Operator position, after a complete term6 `v`.
            loop {
                let frame = frames.last_mut().expect("never empty");
                if let Some(op) = frame.not.take() {
                    v = (LabelExpr::Not(Box::new(v.0)), self.deeper(op, v.1, 0)?);
                }
                let token = self.next_operator(frame)?;
                let op = (token.start, token.end);
                match token.tok {
                    Tok::And => {
                        let lhs = self.combine(frame.and.take(), v, LabelExpr::and)?;
                        frame.and = Some(Pending { lhs, op });
                    }
                    Tok::Or => {
                        let t = self.combine(frame.and.take(), v, LabelExpr::and)?;
                        let lhs = self.combine(frame.or.take(), t, LabelExpr::or)?;
                        frame.or = Some(Pending { lhs, op });
                    }
                    Tok::Implies => {
                        let t = self.combine(frame.and.take(), v, LabelExpr::and)?;
                        let lhs = self.combine(frame.or.take(), t, LabelExpr::or)?;
                        frame.implies = Some(Pending { lhs, op });
                    }
                    Tok::Iff => {
                        let t = self.combine(frame.and.take(), v, LabelExpr::and)?;
                        let t = self.combine(frame.or.take(), t, LabelExpr::or)?;
                        let t = self.combine(frame.implies.take(), t, LabelExpr::implies)?;
                        let lhs = self.combine(frame.iff.take(), t, LabelExpr::iff)?;
                        frame.iff = Some(Pending { lhs, op });
                    }
                    Tok::RParen => {
                        let mut closed = frames.pop().expect("never empty");
                        let open = closed.open.expect("checked by next_operator");
                        let inner = self.finish(&mut closed, v)?;
                        let depth = self.deeper((open, open + 1), inner.1, 0)?;
                        v = (LabelExpr::Paren(Box::new(inner.0)), depth);
                        continue;
                    }
                    _ => {
                        debug_assert_eq!(token.tok, Tok::Eof);
                        let mut top = frames.pop().expect("never empty");
                        return Ok(self.finish(&mut top, v)?.0);
                    }
                }
                break;
            }
        }
    }

    /// Reads the token after a complete operand and checks that it may
    /// follow there: a binary operator (`->` only once per level), `)`
    /// closing an open parenthesis, or the end of input at the top level.
    fn next_operator(&mut self, frame: &Frame) -> PResult<Token> {
        let token = self.lex()?;
        let in_paren = frame.open.is_some();
        let had_implies = frame.implies.is_some();
        let ok = match token.tok {
            Tok::And | Tok::Or | Tok::Iff => true,
            Tok::Implies => !had_implies,
            Tok::RParen => in_paren,
            Tok::Eof => !in_paren,
            _ => false,
        };
        if ok {
            return Ok(token);
        }
        let ops = if had_implies {
            "`&&`, `||` or `<->`"
        } else {
            "`&&`, `||`, `->` or `<->`"
        };
        let close = if in_paren { "`)`" } else { "end of input" };
        let found = match token.tok {
            Tok::Implies => format!(
                "{} (`->` cannot be chained; add parentheses such as `(a -> b) -> c`)",
                self.describe(&token)
            ),
            Tok::RParen => format!("{} without a matching `(`", self.describe(&token)),
            _ => self.describe(&token),
        };
        fail(
            token.start,
            format!("an operator ({ops}) or {close}"),
            found,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_all(s: &str) -> Result<Vec<Tok>, usize> {
        let chars: Vec<char> = s.chars().collect();
        let end = chars.len();
        let mut p = Parser { chars, pos: 0, end };
        let mut out = Vec::new();
        loop {
            match p.lex() {
                Ok(Token { tok: Tok::Eof, .. }) => return Ok(out),
                Ok(t) => out.push(t.tok),
                Err(f) => return Err(f.position),
            }
        }
    }

    fn atom(s: &str) -> Tok {
        Tok::Atom(s.to_owned())
    }

    #[test]
    fn lexer_dash_rules_follow_the_antlr_predicate() {
        assert_eq!(lex_all("a-b"), Ok(vec![atom("a-b")]));
        assert_eq!(
            lex_all("a->b"),
            Ok(vec![atom("a"), Tok::Implies, atom("b")])
        );
        assert_eq!(
            lex_all("a-->b"),
            Ok(vec![atom("a-"), Tok::Implies, atom("b")])
        );
        assert_eq!(
            lex_all("a->-b"),
            Ok(vec![atom("a"), Tok::Implies, atom("-b")])
        );
        assert_eq!(lex_all("--a----b-c-"), Ok(vec![atom("--a----b-c-")]));
        assert_eq!(lex_all("-<"), Err(1));
        assert_eq!(lex_all("a<->b"), Ok(vec![atom("a"), Tok::Iff, atom("b")]));
    }

    #[test]
    fn lexer_whitespace_is_only_space_and_tab() {
        assert_eq!(lex_all(" \ta \t"), Ok(vec![atom("a")]));
        assert_eq!(lex_all("a\nb"), Ok(vec![atom("a\nb")]));
        assert_eq!(lex_all("a\u{a0}b"), Ok(vec![atom("a\u{a0}b")]));
    }

    #[test]
    fn lexer_string_literals_unescape() {
        assert_eq!(lex_all(r#""a b""#), Ok(vec![atom("a b")]));
        assert_eq!(
            lex_all(r#""\b\t\n\f\r\"\'\\""#),
            Ok(vec![atom("\u{8}\t\n\u{c}\r\"'\\")])
        );
        assert_eq!(lex_all(r#""""#), Ok(vec![atom("")]));
        assert_eq!(lex_all(r#""\u0041""#), Err(1));
        assert_eq!(lex_all("\"a\nb\""), Err(2));
        assert_eq!(lex_all("\"abc"), Err(4));
        assert_eq!(lex_all("\"abc\\"), Err(5));
    }

    #[test]
    fn excerpt_escapes_controls_and_truncates() {
        assert_eq!(excerpt("a\nb"), "a\\nb");
        let long = "x".repeat(500);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), MAX_EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
    }
}
