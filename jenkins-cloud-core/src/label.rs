//! TEMPORARY STAND-IN for the label module (the real parser is being written in
//! parallel and will replace this file on merge). Same public API, simplified:
//! supports atoms, `!`, `&&`, `||`, `->`, `<->`, parentheses; no quoting.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Jenkins label expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelExpr {
    /// A label.
    Atom(String),
    /// `!e`
    Not(Box<LabelExpr>),
    /// `a&&b`
    And(Box<LabelExpr>, Box<LabelExpr>),
    /// `a||b`
    Or(Box<LabelExpr>, Box<LabelExpr>),
    /// `a->b`
    Implies(Box<LabelExpr>, Box<LabelExpr>),
    /// `a<->b`
    Iff(Box<LabelExpr>, Box<LabelExpr>),
    /// `(e)`
    Paren(Box<LabelExpr>),
}

/// A label expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label expression `{input}`: {message} at position {position}")]
pub struct LabelParseError {
    /// The input.
    pub input: String,
    /// Character offset.
    pub position: usize,
    /// What went wrong.
    pub message: String,
}

struct P<'a> {
    t: Vec<(usize, String)>,
    i: usize,
    input: &'a str,
}

impl P<'_> {
    fn err(&self, m: &str) -> LabelParseError {
        LabelParseError {
            input: self.input.into(),
            position: self.t.get(self.i).map(|x| x.0).unwrap_or(self.input.len()),
            message: m.into(),
        }
    }
    fn peek(&self) -> Option<&str> {
        self.t.get(self.i).map(|x| x.1.as_str())
    }
    fn iff(&mut self) -> Result<LabelExpr, LabelParseError> {
        let mut l = self.imp()?;
        while self.peek() == Some("<->") {
            self.i += 1;
            l = LabelExpr::Iff(Box::new(l), Box::new(self.imp()?));
        }
        Ok(l)
    }
    fn imp(&mut self) -> Result<LabelExpr, LabelParseError> {
        let l = self.or()?;
        if self.peek() == Some("->") {
            self.i += 1;
            return Ok(LabelExpr::Implies(Box::new(l), Box::new(self.or()?)));
        }
        Ok(l)
    }
    fn or(&mut self) -> Result<LabelExpr, LabelParseError> {
        let mut l = self.and()?;
        while self.peek() == Some("||") {
            self.i += 1;
            l = LabelExpr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<LabelExpr, LabelParseError> {
        let mut l = self.not()?;
        while self.peek() == Some("&&") {
            self.i += 1;
            l = LabelExpr::And(Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<LabelExpr, LabelParseError> {
        match self.peek() {
            Some("!") => {
                self.i += 1;
                Ok(LabelExpr::Not(Box::new(self.not()?)))
            }
            Some("(") => {
                self.i += 1;
                let e = self.iff()?;
                if self.peek() != Some(")") {
                    return Err(self.err("expected `)`"));
                }
                self.i += 1;
                Ok(LabelExpr::Paren(Box::new(e)))
            }
            Some(t) if !["&&", "||", "->", "<->", ")"].contains(&t) => {
                let t = t.to_owned();
                self.i += 1;
                Ok(LabelExpr::Atom(t))
            }
            _ => Err(self.err("expected a label")),
        }
    }
}

impl FromStr for LabelExpr {
    type Err = LabelParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut t = Vec::new();
        let c: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < c.len() {
            let rest: String = c[i..].iter().take(3).collect();
            if c[i].is_whitespace() {
                i += 1;
            } else if rest.starts_with("<->") {
                t.push((i, "<->".into()));
                i += 3;
            } else if ["&&", "||", "->"].iter().any(|o| rest.starts_with(o)) {
                t.push((i, rest[..2].to_owned()));
                i += 2;
            } else if c[i] == '!' || c[i] == '(' || c[i] == ')' {
                t.push((i, c[i].to_string()));
                i += 1;
            } else {
                let start = i;
                while i < c.len()
                    && !c[i].is_whitespace()
                    && !"&|!<>()\"'".contains(c[i])
                    && !(c[i] == '-' && c.get(i + 1) == Some(&'>'))
                {
                    i += 1;
                }
                if i == start {
                    return Err(LabelParseError { input: s.into(), position: i, message: "unexpected character".into() });
                }
                t.push((start, c[start..i].iter().collect()));
            }
        }
        let mut p = P { t, i: 0, input: s };
        let e = p.iff()?;
        if p.i != p.t.len() {
            return Err(p.err("unexpected token"));
        }
        Ok(e)
    }
}

impl LabelExpr {
    /// Parses; `None` for blank input.
    pub fn parse_optional(s: &str) -> Result<Option<LabelExpr>, LabelParseError> {
        if s.trim().is_empty() { Ok(None) } else { s.parse().map(Some) }
    }
    /// Whether a node with `labels` satisfies the expression.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        match self {
            LabelExpr::Atom(a) => labels.contains(a),
            LabelExpr::Not(e) => !e.matches(labels),
            LabelExpr::And(a, b) => a.matches(labels) && b.matches(labels),
            LabelExpr::Or(a, b) => a.matches(labels) || b.matches(labels),
            LabelExpr::Implies(a, b) => !a.matches(labels) || b.matches(labels),
            LabelExpr::Iff(a, b) => a.matches(labels) == b.matches(labels),
            LabelExpr::Paren(e) => e.matches(labels),
        }
    }
    /// The atoms.
    pub fn atoms(&self) -> Vec<&str> {
        match self {
            LabelExpr::Atom(a) => vec![a.as_str()],
            LabelExpr::Not(e) | LabelExpr::Paren(e) => e.atoms(),
            LabelExpr::And(a, b) | LabelExpr::Or(a, b) | LabelExpr::Implies(a, b) | LabelExpr::Iff(a, b) => {
                let mut v = a.atoms();
                v.extend(b.atoms());
                v
            }
        }
    }
}

impl fmt::Display for LabelExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelExpr::Atom(a) => f.write_str(a),
            LabelExpr::Not(e) => write!(f, "!{e}"),
            LabelExpr::And(a, b) => write!(f, "{a}&&{b}"),
            LabelExpr::Or(a, b) => write!(f, "{a}||{b}"),
            LabelExpr::Implies(a, b) => write!(f, "{a}->{b}"),
            LabelExpr::Iff(a, b) => write!(f, "{a}<->{b}"),
            LabelExpr::Paren(e) => write!(f, "({e})"),
        }
    }
}

impl Serialize for LabelExpr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LabelExpr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The labels of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet(Vec<String>);

impl LabelSet {
    /// Splits a label string on whitespace.
    pub fn parse(s: &str) -> LabelSet {
        s.split_whitespace().map(str::to_owned).collect()
    }
    /// Whether `label` is in the set.
    pub fn contains(&self, label: &str) -> bool {
        self.0.iter().any(|l| l == label)
    }
    /// The labels.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<String> for LabelSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        let mut v: Vec<String> = iter.into_iter().collect();
        v.sort();
        v.dedup();
        LabelSet(v)
    }
}

impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl Serialize for LabelSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LabelSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LabelSet::parse(&String::deserialize(d)?))
    }
}
