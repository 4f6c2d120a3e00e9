//! Jenkins label expressions and label sets.
//!
//! A Jenkins job (or Pipeline `node`/`agent` block) asks for an agent with a
//! *label expression* such as `linux && (docker || podman) && !arm64`; an
//! agent carries a *label set* such as `linux docker x86_64`. This module
//! parses both exactly the way Jenkins core does (`hudson.model.Label`,
//! `hudson.model.labels.*`, `hudson.util.QuotedStringTokenizer`) and
//! evaluates expressions against sets.
//!
//! ```
//! use jenkins_cloud_core::label::{LabelExpr, LabelSet};
//!
//! let expr: LabelExpr = "linux && (docker || podman) && !arm64".parse()?;
//! let agent = LabelSet::parse("linux docker x86_64");
//! assert!(expr.matches(&agent));
//! assert_eq!(expr.to_string(), "linux&&(docker||podman)&&!arm64");
//! # Ok::<(), jenkins_cloud_core::label::LabelParseError>(())
//! ```
//!
//! # Syntax
//!
//! * **Atoms**: any run of characters other than space, tab and `&|!<>()"'`;
//!   `-` is part of an atom unless followed by `>` (so `a-b` is one atom and
//!   `a->b` is an implication). A newline is an atom character, as in
//!   Jenkins. Atoms may also be written as double-quoted literals with the
//!   escapes `\b \t \n \f \r \" \' \\`.
//! * **Operators**, from highest to lowest precedence: `!`, `&&`, `||`,
//!   `->`, `<->`, plus parentheses. `&&`, `||` and `<->` chain
//!   left-associatively; `->` does **not** chain (`a -> b -> c` is an error,
//!   because `(a->b)->c` and `a->(b->c)` differ). `!` applies only to an atom
//!   or a parenthesised expression (`!!a` is an error, write `!(!a)`).
//! * Matching is case-sensitive.

mod parse;
mod quote;
mod serde_impl;
mod set;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use parse::{LabelParseError, MAX_PAREN_DEPTH, MAX_TREE_DEPTH};
pub use serde_impl::blank_as_none;
pub use set::{LabelSet, LabelSetIter};

/// A parsed Jenkins label expression (Jenkins' `hudson.model.Label` tree).
///
/// The tree mirrors Jenkins' `LabelExpression` classes one to one, including
/// [`Paren`](LabelExpr::Paren) nodes for the parentheses the user wrote, so
/// that [`Display`](fmt::Display) reproduces Jenkins' canonical
/// `Label.getName()`. Consequently equality is structural: `(a)` and `a`
/// are different expressions (as they are different labels in Jenkins),
/// even though they match the same agents.
///
/// ```
/// use jenkins_cloud_core::label::LabelExpr;
///
/// let e: LabelExpr = "foo || (bar&&zot)".parse()?;
/// assert_eq!(
///     e,
///     LabelExpr::atom("foo").or(LabelExpr::atom("bar").and(LabelExpr::atom("zot")).paren())
/// );
/// assert_eq!(e.to_string(), "foo||(bar&&zot)");
/// # Ok::<(), jenkins_cloud_core::label::LabelParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelExpr {
    /// A single label (Jenkins' `LabelAtom`), stored unquoted and unescaped.
    Atom(String),
    /// `!e`: matches when `e` does not.
    Not(Box<LabelExpr>),
    /// `l && r`.
    And(Box<LabelExpr>, Box<LabelExpr>),
    /// `l || r`.
    Or(Box<LabelExpr>, Box<LabelExpr>),
    /// `l -> r`, i.e. `!l || r`.
    Implies(Box<LabelExpr>, Box<LabelExpr>),
    /// `l <-> r`: matches when both sides match or both do not.
    Iff(Box<LabelExpr>, Box<LabelExpr>),
    /// `(e)`: parentheses written by the user; no effect on matching.
    Paren(Box<LabelExpr>),
}

/// Operator precedence, loosest binding last (Jenkins'
/// `LabelOperatorPrecedence`: `ATOM, NOT, AND, OR, IMPLIES, IFF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Atom,
    Not,
    And,
    Or,
    Implies,
    Iff,
}

impl LabelExpr {
    /// An atom with the given (unquoted) name.
    ///
    /// ```
    /// use jenkins_cloud_core::label::LabelExpr;
    /// assert_eq!(LabelExpr::atom("a b").to_string(), "\"a b\"");
    /// ```
    pub fn atom(name: impl Into<String>) -> LabelExpr {
        LabelExpr::Atom(name.into())
    }

    /// `self && rhs` (Jenkins' `Label.and`).
    pub fn and(self, rhs: LabelExpr) -> LabelExpr {
        LabelExpr::And(Box::new(self), Box::new(rhs))
    }

    /// `self || rhs` (Jenkins' `Label.or`).
    pub fn or(self, rhs: LabelExpr) -> LabelExpr {
        LabelExpr::Or(Box::new(self), Box::new(rhs))
    }

    /// `self -> rhs` (Jenkins' `Label.implies`).
    pub fn implies(self, rhs: LabelExpr) -> LabelExpr {
        LabelExpr::Implies(Box::new(self), Box::new(rhs))
    }

    /// `self <-> rhs` (Jenkins' `Label.iff`).
    pub fn iff(self, rhs: LabelExpr) -> LabelExpr {
        LabelExpr::Iff(Box::new(self), Box::new(rhs))
    }

    /// `(self)` (Jenkins' `Label.paren`).
    pub fn paren(self) -> LabelExpr {
        LabelExpr::Paren(Box::new(self))
    }

    /// Parses a label expression the way Jenkins treats a job's label field:
    /// the input is trimmed (Java `String.trim()`, i.e. all characters up to
    /// U+0020, including newlines, are removed at both ends) and a blank
    /// input means "no label restriction" (the job can run on any node) and
    /// yields `Ok(None)`.
    ///
    /// Jenkins' own `Label.parseExpression("")` throws, which is what
    /// [`str::parse`] does here; the configuration code paths
    /// (`Util.fixEmptyAndTrim` before parsing) are what this method mirrors.
    /// Error positions refer to the untrimmed input.
    ///
    /// ```
    /// use jenkins_cloud_core::label::LabelExpr;
    ///
    /// assert_eq!(LabelExpr::parse_optional(" \n\t")?, None);
    /// assert_eq!(LabelExpr::parse_optional(" linux\n")?, Some(LabelExpr::atom("linux")));
    /// assert_eq!(LabelExpr::parse_optional("  a &&").unwrap_err().position(), 6);
    /// # Ok::<(), jenkins_cloud_core::label::LabelParseError>(())
    /// ```
    pub fn parse_optional(input: &str) -> Result<Option<LabelExpr>, LabelParseError> {
        let chars: Vec<char> = input.chars().collect();
        let is_java_space = |c: &&char| **c <= ' ';
        let start = chars.iter().take_while(is_java_space).count();
        if start == chars.len() {
            return Ok(None);
        }
        let end = chars.len() - chars.iter().rev().take_while(is_java_space).count();
        parse::parse_range(input, chars, start, end).map(Some)
    }

    /// Interprets a label string the way `Jenkins.getLabel(String)` does,
    /// which is how Jenkins reads a job's stored label: the whole string is
    /// first unquoted if it is enclosed in matching `"` or `'` quotes
    /// (`QuotedStringTokenizer.unquote`), then parsed; if it does not parse,
    /// it is taken *laxly* as a single atom, for compatibility with labels
    /// such as `lucene.zones.apache.org (Solaris 10)`. Never fails.
    ///
    /// Where Jenkins would throw (an incomplete `\u` escape inside the outer
    /// quotes), the input is taken verbatim instead.
    ///
    /// ```
    /// use jenkins_cloud_core::label::LabelExpr;
    ///
    /// let lax = LabelExpr::parse_lax("lucene.zones.apache.org (Solaris 10)");
    /// assert_eq!(lax, LabelExpr::atom("lucene.zones.apache.org (Solaris 10)"));
    /// assert_eq!(lax.to_string(), "\"lucene.zones.apache.org (Solaris 10)\"");
    /// assert_eq!(LabelExpr::parse_lax("\"abc def\""), LabelExpr::atom("abc def"));
    /// assert_eq!(LabelExpr::parse_lax("a && b").to_string(), "a&&b");
    /// ```
    pub fn parse_lax(input: &str) -> LabelExpr {
        let unquoted = quote::java_unquote(input).unwrap_or_else(|| input.to_owned());
        match unquoted.parse() {
            Ok(expr) => expr,
            Err(_) => LabelExpr::Atom(unquoted),
        }
    }

    /// Whether an agent with the given labels satisfies this expression.
    ///
    /// `a -> b` is `!a || b` and `a <-> b` is `a == b`; comparison of atoms
    /// is exact and case-sensitive. Remember that in Jenkins every node also
    /// carries its own name as a label (the *self label*); add it to the set
    /// if that should count. Does not allocate, and evaluates chains of
    /// `&&`, `||`, `->` and `<->` without recursion along the chain.
    ///
    /// ```
    /// use jenkins_cloud_core::label::{LabelExpr, LabelSet};
    ///
    /// let e: LabelExpr = "windows -> vs2022".parse()?;
    /// assert!(e.matches(&LabelSet::parse("linux")));
    /// assert!(e.matches(&LabelSet::parse("windows vs2022")));
    /// assert!(!e.matches(&LabelSet::parse("windows")));
    /// # Ok::<(), jenkins_cloud_core::label::LabelParseError>(())
    /// ```
    pub fn matches(&self, labels: &LabelSet) -> bool {
        // value(self) == value(cur) ^ flip; the loop walks down left operands.
        let mut cur = self;
        let mut flip = false;
        loop {
            match cur {
                LabelExpr::Atom(name) => return labels.contains(name) ^ flip,
                LabelExpr::Paren(inner) => cur = inner,
                LabelExpr::Not(inner) => {
                    flip = !flip;
                    cur = inner;
                }
                LabelExpr::And(l, r) => {
                    if !r.matches(labels) {
                        return flip;
                    }
                    cur = l;
                }
                LabelExpr::Or(l, r) => {
                    if r.matches(labels) {
                        return !flip;
                    }
                    cur = l;
                }
                LabelExpr::Implies(l, r) => {
                    if r.matches(labels) {
                        return !flip;
                    }
                    // !l || false == !l
                    flip = !flip;
                    cur = l;
                }
                LabelExpr::Iff(l, r) => {
                    // (l == r) == l ^ !r
                    flip ^= !r.matches(labels);
                    cur = l;
                }
            }
        }
    }

    /// The distinct atoms of the expression, in order of first appearance
    /// from left to right (Jenkins' `Label.listAtoms()`, which returns a set).
    ///
    /// ```
    /// use jenkins_cloud_core::label::LabelExpr;
    ///
    /// let e: LabelExpr = "linux && (docker || !linux)".parse()?;
    /// assert_eq!(e.atoms(), vec!["linux", "docker"]);
    /// # Ok::<(), jenkins_cloud_core::label::LabelParseError>(())
    /// ```
    pub fn atoms(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                LabelExpr::Atom(name) => {
                    if !out.contains(&name.as_str()) {
                        out.push(name);
                    }
                }
                LabelExpr::Not(inner) | LabelExpr::Paren(inner) => stack.push(inner),
                LabelExpr::And(l, r)
                | LabelExpr::Or(l, r)
                | LabelExpr::Implies(l, r)
                | LabelExpr::Iff(l, r) => {
                    stack.push(r);
                    stack.push(l);
                }
            }
        }
        out
    }

    fn precedence(&self) -> Prec {
        match self {
            LabelExpr::Atom(_) | LabelExpr::Paren(_) => Prec::Atom,
            LabelExpr::Not(_) => Prec::Not,
            LabelExpr::And(..) => Prec::And,
            LabelExpr::Or(..) => Prec::Or,
            LabelExpr::Implies(..) => Prec::Implies,
            LabelExpr::Iff(..) => Prec::Iff,
        }
    }

    /// The operator text and operands of a binary node.
    fn as_binary(&self) -> Option<(&'static str, Prec, &LabelExpr, &LabelExpr)> {
        match self {
            LabelExpr::And(l, r) => Some(("&&", Prec::And, l, r)),
            LabelExpr::Or(l, r) => Some(("||", Prec::Or, l, r)),
            LabelExpr::Implies(l, r) => Some(("->", Prec::Implies, l, r)),
            LabelExpr::Iff(l, r) => Some(("<->", Prec::Iff, l, r)),
            _ => None,
        }
    }
}

/// Writes `e` in parentheses when `wrap`, otherwise as is.
fn write_operand(f: &mut fmt::Formatter<'_>, e: &LabelExpr, wrap: bool) -> fmt::Result {
    if wrap {
        f.write_str("(")?;
        fmt::Display::fmt(e, f)?;
        f.write_str(")")
    } else {
        fmt::Display::fmt(e, f)
    }
}

/// The canonical text of the expression: Jenkins' `Label.getExpression()`,
/// which for expressions is also `Label.getName()`/`toString()`.
///
/// No spaces; parentheses the user wrote are kept; atoms are quoted with
/// escapes where Jenkins' `LabelAtom.escape` quotes them (empty names, the
/// characters ``?*/\%!@#$^&|<>[]:;``, space, parentheses, control
/// characters, names `.`/`..` or ending in `.`) and additionally when they
/// contain `"` or `'` (Jenkins prints those bare, which does not parse back).
/// For every expression produced by the parser the output parses back to an
/// equal expression.
///
/// Note that Jenkins' `getName()` of a lone *atom* is its raw unquoted name;
/// this prints the quoted form (`getExpression()`) so that it always parses.
///
/// For trees built by hand that the grammar cannot produce, parentheses are
/// added where Jenkins would print something unparseable or differently
/// grouped (`!` of a non-atom, `->` inside `->`, a right operand of the same
/// precedence); parsing such output yields the tree with explicit
/// [`Paren`](LabelExpr::Paren) nodes. (Jenkins prints `!!x` for
/// `x.not().not()`, which its own parser rejects; this prints `!(!x)`.)
///
/// ```
/// use jenkins_cloud_core::label::LabelExpr;
///
/// let e: LabelExpr = "  ( foo || bar )  && zot".parse()?;
/// assert_eq!(e.to_string(), "(foo||bar)&&zot");
/// let x = LabelExpr::atom("x");
/// assert_eq!(x.clone().or(x.clone()).and(x.clone()).to_string(), "(x||x)&&x");
/// assert_eq!((!!x).to_string(), "!(!x)");
/// # Ok::<(), jenkins_cloud_core::label::LabelParseError>(())
/// ```
impl fmt::Display for LabelExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelExpr::Atom(name) => quote::write_atom_expression(f, name),
            LabelExpr::Paren(inner) => write_operand(f, inner, true),
            LabelExpr::Not(inner) => {
                f.write_str("!")?;
                write_operand(f, inner, inner.precedence() != Prec::Atom)
            }
            _ => {
                // Walk down the left spine iteratively so that long chains
                // such as `a||b||…||z` do not recurse once per operand.
                let mut spine = Vec::new();
                let mut cur = self;
                let (leftmost, wrap_leftmost) = loop {
                    match cur.as_binary() {
                        Some((op, prec, l, r)) => {
                            spine.push((op, prec, r));
                            let wrap = l.precedence() > prec
                                || (prec == Prec::Implies && l.precedence() == prec);
                            if wrap {
                                break (l, true);
                            }
                            cur = l;
                        }
                        None => break (cur, false),
                    }
                };
                write_operand(f, leftmost, wrap_leftmost)?;
                for (op, prec, r) in spine.iter().rev() {
                    f.write_str(op)?;
                    write_operand(f, r, r.precedence() >= *prec)?;
                }
                Ok(())
            }
        }
    }
}

/// Parses with Jenkins' `Label.parseExpression` grammar. Blank input is an
/// error (as in Jenkins); use [`LabelExpr::parse_optional`] for fields where
/// blank means "any node".
///
/// ```
/// use jenkins_cloud_core::label::LabelExpr;
///
/// assert!("".parse::<LabelExpr>().is_err());
/// assert!("a -> b -> c".parse::<LabelExpr>().is_err());
/// assert!("(a -> b) -> c".parse::<LabelExpr>().is_ok());
/// ```
impl FromStr for LabelExpr {
    type Err = LabelParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let chars: Vec<char> = s.chars().collect();
        let end = chars.len();
        parse::parse_range(s, chars, 0, end)
    }
}

/// `!e`, like Jenkins' `Label.not()`.
impl std::ops::Not for LabelExpr {
    type Output = LabelExpr;

    fn not(self) -> LabelExpr {
        LabelExpr::Not(Box::new(self))
    }
}
