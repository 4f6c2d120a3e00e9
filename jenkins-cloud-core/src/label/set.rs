//! The set of labels an agent carries.

use std::fmt;

/// Delimiters of `QuotedStringTokenizer`'s default configuration.
fn is_delim(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// `QuotedStringTokenizer.ESCAPABLE_CHARS`: a backslash before any other
/// character is kept literally (so Windows paths survive).
fn is_escapable(c: char) -> bool {
    matches!(c, '\\' | '"' | '\'' | ' ')
}

/// The labels of an agent (Jenkins' `Set<LabelAtom>` from `Label.parse`).
///
/// Stored as a sorted, de-duplicated `Vec<String>`: agents carry a handful of
/// labels, so a binary search over a contiguous vector is as fast as hashing
/// for [`contains`](Self::contains) (which [`LabelExpr::matches`](super::LabelExpr::matches) calls in
/// the planner's hot loop), needs no hashing of the probe and no allocation,
/// and gives a deterministic order for [`Display`](fmt::Display) and
/// equality, like Jenkins' `TreeSet`.
///
/// In Jenkins every node also carries its own name as a label (the *self
/// label*, `Node.getSelfLabel()`), and plugins may add dynamic labels. This
/// type does not add the node name automatically: callers that want the
/// self label to match should [`insert`](Self::insert) it.
///
/// ```
/// use jenkins_cloud_core::label::{LabelExpr, LabelSet};
///
/// let mut labels = LabelSet::parse("linux  docker\t\"big disk\"");
/// assert_eq!(labels.len(), 3);
/// assert!(labels.contains("big disk"));
/// labels.insert("agent-0042"); // the self label
/// let e: LabelExpr = "agent-0042 || windows".parse()?;
/// assert!(e.matches(&labels));
/// assert_eq!(labels.to_string(), "agent-0042 \"big disk\" docker linux");
/// # Ok::<(), jenkins_cloud_core::label::LabelParseError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet {
    /// Sorted by `str` order, no duplicates.
    labels: Vec<String>,
}

impl LabelSet {
    /// An empty set.
    pub fn new() -> LabelSet {
        LabelSet::default()
    }

    /// Splits a node's label string into labels, as Jenkins' `Label.parse`
    /// does with `QuotedStringTokenizer`: tokens are separated by space, tab,
    /// CR and LF; double- or single-quoted parts may contain separators
    /// (`"big disk"`), quotes can start in the middle of a token
    /// (`a"b c"` is the label `ab c`), a backslash escapes `\`, `"`, `'`
    /// and space and is kept before any other character (`C:\tools` stays
    /// as is), an unterminated quote runs to the end, and `""` is the empty
    /// label. Never fails.
    ///
    /// (Jenkins first checks whether the whole string is the name of an
    /// existing label atom; that depends on the controller's state and is
    /// not reproduced.)
    ///
    /// ```
    /// use jenkins_cloud_core::label::LabelSet;
    ///
    /// let s = LabelSet::parse(r#"one two 'three four' C:\tools a\ b"#);
    /// let v: Vec<&str> = s.iter().collect();
    /// assert_eq!(v, ["C:\\tools", "a b", "one", "three four", "two"]);
    /// ```
    pub fn parse(label_string: &str) -> LabelSet {
        let mut tokens = Vec::new();
        let mut token = String::new();
        let mut has_token = false;
        // 0: between tokens, 1: in a bare token, 2: in '…', 3: in "…"
        let mut state = 0u8;
        let mut escape = false;
        for c in label_string.chars() {
            if state != 0 {
                has_token = true;
            }
            if escape {
                escape = false;
                if !is_escapable(c) {
                    token.push('\\');
                }
                token.push(c);
                continue;
            }
            match (state, c) {
                (0, c) if is_delim(c) => {}
                (0 | 1, '\'') => state = 2,
                (0 | 1, '"') => state = 3,
                (0, c) => {
                    // a backslash at the start of a token is literal
                    token.push(c);
                    has_token = true;
                    state = 1;
                }
                (1, c) if is_delim(c) => {
                    tokens.push(std::mem::take(&mut token));
                    has_token = false;
                    state = 0;
                }
                (2, '\'') | (3, '"') => state = 1,
                (_, '\\') => escape = true,
                (_, c) => token.push(c),
            }
        }
        if has_token {
            tokens.push(token);
        }
        tokens.into_iter().collect()
    }

    /// Whether the set contains the label `name` (exact, case-sensitive).
    /// Does not allocate.
    pub fn contains(&self, name: &str) -> bool {
        self.labels
            .binary_search_by(|l| l.as_str().cmp(name))
            .is_ok()
    }

    /// Adds a label; returns `false` if it was already present.
    pub fn insert(&mut self, name: impl Into<String>) -> bool {
        let name = name.into();
        match self.labels.binary_search(&name) {
            Ok(_) => false,
            Err(at) => {
                self.labels.insert(at, name);
                true
            }
        }
    }

    /// The labels in sorted order.
    pub fn iter(&self) -> LabelSetIter<'_> {
        LabelSetIter {
            inner: self.labels.iter(),
        }
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Iterator over the labels of a [`LabelSet`], in sorted order.
#[derive(Debug, Clone)]
pub struct LabelSetIter<'a> {
    inner: std::slice::Iter<'a, String>,
}

impl<'a> Iterator for LabelSetIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.inner.next().map(String::as_str)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for LabelSetIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back().map(String::as_str)
    }
}

impl ExactSizeIterator for LabelSetIter<'_> {}

impl<'a> IntoIterator for &'a LabelSet {
    type Item = &'a str;
    type IntoIter = LabelSetIter<'a>;

    fn into_iter(self) -> LabelSetIter<'a> {
        self.iter()
    }
}

impl FromIterator<String> for LabelSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> LabelSet {
        let mut labels: Vec<String> = iter.into_iter().collect();
        labels.sort_unstable();
        labels.dedup();
        LabelSet { labels }
    }
}

impl<'a> FromIterator<&'a str> for LabelSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> LabelSet {
        iter.into_iter().map(str::to_owned).collect()
    }
}

impl Extend<String> for LabelSet {
    fn extend<I: IntoIterator<Item = String>>(&mut self, iter: I) {
        self.labels.extend(iter);
        self.labels.sort_unstable();
        self.labels.dedup();
    }
}

/// Whether a label must be quoted in a label string to survive
/// [`LabelSet::parse`].
fn needs_quotes(label: &str) -> bool {
    label.is_empty()
        || label
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
}

/// Space-separated labels in sorted order, each quoted when needed so that
/// [`LabelSet::parse`] reads back the same set: labels that are empty or
/// contain whitespace, quotes or backslashes are written as `"…"` with `"`
/// and `\` escaped by a backslash.
impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if !needs_quotes(label) {
                f.write_str(label)?;
                continue;
            }
            f.write_str("\"")?;
            for c in label.chars() {
                if matches!(c, '"' | '\\') {
                    f.write_str("\\")?;
                }
                fmt::Write::write_char(f, c)?;
            }
            f.write_str("\"")?;
        }
        Ok(())
    }
}
