//! The pre-check of rule regexes: parses the common subset of RE2 and Rust `regex` (see
//! `src/regex.rs` for the syntax) into a [`Node`] tree, refusing everything else with the reason
//! and the character position. Hand-written because no library parses "RE2 and regex-lite agree":
//! each accepts syntax the other refuses or reads differently (src/tests/regex.rs lists them).

use crate::error::{cat, quote};
use crate::number::decimal;

use super::classes::{complement, DIGIT, POSIX, SPACE, WORD};
use super::{MAX_NEST, MAX_PATTERN, MAX_REPEAT};

/// Most repetition operators applied in a row (`a**` is two).
const MAX_STACKED_REPEAT: usize = 8;

/// Parses `pattern`; the error says what is wrong and at which character.
pub(super) fn parse(pattern: &str) -> Result<Node, String> {
    if pattern.chars().count() > MAX_PATTERN {
        let max = decimal(MAX_PATTERN as u64);
        return Err(cat(&["pattern longer than ", &max, " characters"]));
    }
    let mut parser = Parser {
        chars: pattern.chars().collect(),
        pos: 0,
        depth: 0,
        names: Vec::new(),
    };
    let node = parser.alternation(Flags::default())?;
    if parser.pos < parser.chars.len() {
        let at = decimal(parser.pos as u64);
        return Err(cat(&[
            "unopened group: ')' at position ",
            &at,
            " has no '('",
        ]));
    }
    Ok(node)
}

/// A zero-width assertion.
#[derive(Debug, Clone, Copy)]
pub(super) enum Look {
    Start,
    End,
    LineStart,
    LineEnd,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    fold: bool,
    dot_nl: bool,
    multi_line: bool,
}

/// The parsed pattern, in RE2's reading: flags already applied (case folding spelled out in
/// literals and classes), classes as ranges.
#[derive(Debug)]
pub(super) enum Node {
    Empty,
    Char {
        c: char,
        fold: bool,
    },
    Any {
        nl: bool,
    },
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Look(Look),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    /// Names of the groups so far (a name given twice is refused, in RE2 and regex-lite).
    names: Vec<String>,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `what` at the current position: the text of every syntax error.
    fn error(&self, what: &str) -> String {
        cat(&[what, " at position ", &decimal(self.pos as u64)])
    }

    /// `a|b|…` up to an unmatched `)` or the end.
    fn alternation(&mut self, mut flags: Flags) -> Result<Node, String> {
        let mut branches = Vec::new();
        let mut items: Vec<Node> = Vec::new();
        loop {
            match self.peek() {
                None | Some(')') => break,
                Some('|') => {
                    self.pos += 1;
                    branches.push(concat(std::mem::take(&mut items)));
                }
                Some('*' | '+' | '?') => {
                    let (min, max) = match self.peek() {
                        Some('*') => (0, None),
                        Some('+') => (1, None),
                        _ => (0, Some(1)),
                    };
                    self.pos += 1;
                    self.repeat(&mut items, min, max)?;
                }
                Some('{') => {
                    let (min, max) = self.counted()?;
                    self.repeat(&mut items, min, max)?;
                }
                Some('(') => {
                    self.pos += 1;
                    match self.group(&mut flags)? {
                        Some(node) => items.push(node),
                        // A flag group (`(?i)`) is no expression: `a(?i)+` is refused as
                        // in RE2 and Rust `regex`, not read as `a+`.
                        None if matches!(self.peek(), Some('*' | '+' | '?' | '{')) => {
                            return Err(self.error("repetition operator missing expression"));
                        }
                        None => {}
                    }
                }
                Some(_) => items.push(self.atom(flags)?),
            }
        }
        branches.push(concat(items));
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(branches)
        })
    }

    fn repeat(&mut self, items: &mut Vec<Node>, min: u32, max: Option<u32>) -> Result<(), String> {
        let Some(node) = items.pop() else {
            return Err(self.error("repetition operator missing expression"));
        };
        // `a**` is valid; a long run of operators only deepens the program's nesting.
        let mut stacked = 0;
        let mut inner = &node;
        while let Node::Repeat { node, .. } = inner {
            stacked += 1;
            inner = node;
        }
        if stacked >= MAX_STACKED_REPEAT {
            return Err(self.error("too many repetition operators in a row"));
        }
        // Lazy (`*?`) and greedy match the same values.
        self.eat('?');
        items.push(Node::Repeat {
            node: Box::new(node),
            min,
            max,
        });
        Ok(())
    }

    /// `{n}`, `{n,}`, `{n,m}` (at `{`).
    fn counted(&mut self) -> Result<(u32, Option<u32>), String> {
        self.pos += 1;
        let min = self.decimal()?;
        let max = if self.eat(',') {
            if self.peek() == Some('}') {
                None
            } else {
                Some(self.decimal()?)
            }
        } else {
            Some(min)
        };
        if !self.eat('}') {
            return Err(self.error("invalid repetition: expected '}'"));
        }
        if max.is_some_and(|max| max < min) {
            return Err(self.error("invalid repetition range: min is greater than max"));
        }
        Ok((min, max))
    }

    fn decimal(&mut self) -> Result<u32, String> {
        let start = self.pos;
        let mut n: u32 = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            n = n.saturating_mul(10).saturating_add(d);
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("invalid repetition: expected a number"));
        }
        if n > MAX_REPEAT {
            let max = decimal(u64::from(MAX_REPEAT));
            return Err(self.error(&cat(&["repetition count exceeds ", &max])));
        }
        Ok(n)
    }

    /// After `(`: a group, or `None` for a flag setting `(?i)` (which changes `flags`).
    fn group(&mut self, flags: &mut Flags) -> Result<Option<Node>, String> {
        if self.depth >= MAX_NEST {
            let max = decimal(MAX_NEST as u64);
            return Err(self.error(&cat(&["groups nested deeper than ", &max])));
        }
        let mut inner = *flags;
        if self.eat('?') {
            if self.eat('P') || self.peek() == Some('<') {
                if !self.eat('<') {
                    return Err(self.error("invalid group: expected '<' after '(?P'"));
                }
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.pos += 1;
                }
                let name: String = self
                    .chars
                    .get(start..self.pos)
                    .unwrap_or_default()
                    .iter()
                    .collect();
                // A leading digit: RE2 takes it, regex-lite does not.
                if name.is_empty()
                    || name.starts_with(|c: char| c.is_ascii_digit())
                    || !self.eat('>')
                {
                    return Err(self.error("invalid group name"));
                }
                if self.names.contains(&name) {
                    return Err(self.error(&cat(&["duplicate group name ", &name])));
                }
                self.names.push(name);
            } else {
                self.flags(&mut inner)?;
                if self.chars.get(self.pos.wrapping_sub(1)) == Some(&')') {
                    *flags = inner;
                    return Ok(None);
                }
            }
        }
        self.depth += 1;
        let node = self.alternation(inner)?;
        self.depth -= 1;
        if !self.eat(')') {
            return Err(self.error("unclosed group"));
        }
        // A group keeps its repetition apart from one applied to the group.
        Ok(Some(match node {
            Node::Repeat { .. } => Node::Concat(vec![node]),
            node => node,
        }))
    }

    /// After `(?`: flags up to `:` or `)` (consumed). regex-lite refuses an empty `(?)`, a
    /// flag or `-` given twice, and a trailing `-`; so does the pre-check.
    fn flags(&mut self, inner: &mut Flags) -> Result<(), String> {
        let (mut on, mut seen, mut after_dash) = (true, String::new(), false);
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unclosed group flags"));
            };
            self.pos += 1;
            match c {
                '-' if !on => return Err(self.error("repeated '-' in group flags")),
                '-' => (on, after_dash) = (false, true),
                'i' | 's' | 'm' | 'U' if seen.contains(c) => {
                    return Err(self.error(&cat(&["repeated flag ", c.encode_utf8(&mut [0; 4])])))
                }
                'i' | 's' | 'm' | 'U' => {
                    seen.push(c);
                    after_dash = false;
                    match c {
                        'i' => inner.fold = on,
                        's' => inner.dot_nl = on,
                        'm' => inner.multi_line = on,
                        _ => {}
                    }
                }
                ':' | ')' if after_dash => return Err(self.error("group flags end with '-'")),
                ')' if seen.is_empty() => return Err(self.error("empty flag group '(?)'")),
                ':' | ')' => return Ok(()),
                _ => {
                    let mut flag = String::from("unsupported flag ");
                    flag.push_str(&quote(c.encode_utf8(&mut [0; 4])));
                    return Err(self.error(&flag));
                }
            }
        }
    }

    fn atom(&mut self, flags: Flags) -> Result<Node, String> {
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end"));
        };
        self.pos += 1;
        Ok(match c {
            '.' => Node::Any { nl: flags.dot_nl },
            '^' => Node::Look(if flags.multi_line {
                Look::LineStart
            } else {
                Look::Start
            }),
            '$' => Node::Look(if flags.multi_line {
                Look::LineEnd
            } else {
                Look::End
            }),
            '[' => self.class(flags)?,
            '\\' => match self.escape(false)? {
                Escaped::Char(c) => literal(c, flags),
                Escaped::Class(ranges, negated) => Node::Class { ranges, negated },
                Escaped::Look(l) => Node::Look(l),
            },
            c => literal(c, flags),
        })
    }

    /// After `\`. In a class (`in_class`), anchors are not allowed.
    fn escape(&mut self, in_class: bool) -> Result<Escaped, String> {
        let Some(c) = self.peek() else {
            return Err(self.error("incomplete escape"));
        };
        self.pos += 1;
        Ok(match c {
            'd' | 'D' => Escaped::Class(DIGIT.to_vec(), c == 'D'),
            'w' | 'W' => Escaped::Class(WORD.to_vec(), c == 'W'),
            's' | 'S' => Escaped::Class(SPACE.to_vec(), c == 'S'),
            't' => Escaped::Char('\t'),
            'n' => Escaped::Char('\n'),
            'r' => Escaped::Char('\r'),
            'f' => Escaped::Char('\u{c}'),
            'v' => Escaped::Char('\u{b}'),
            'x' => Escaped::Char(self.hex_escape()?),
            'A' if !in_class => Escaped::Look(Look::Start),
            'z' if !in_class => Escaped::Look(Look::End),
            'b' if !in_class => Escaped::Look(Look::WordBoundary),
            'B' if !in_class => Escaped::Look(Look::NotWordBoundary),
            // `\<` and `\>` are word-start and word-end assertions in Rust `regex` but
            // literals in RE2: outside the common subset, so refused like other escapes.
            '<' | '>' => {
                return Err(self.error(&cat(&["unsupported escape \\", c.encode_utf8(&mut [0; 4])])))
            }
            c if c.is_ascii_punctuation() || c == ' ' => Escaped::Char(c),
            c => {
                return Err(self.error(&cat(&["unsupported escape \\", c.encode_utf8(&mut [0; 4])])))
            }
        })
    }

    /// After `\x`: `HH` or `{H…}`.
    fn hex_escape(&mut self) -> Result<char, String> {
        let braced = self.eat('{');
        let start = self.pos;
        let mut code: u32 = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
            if !braced && self.pos - start == 2 {
                break;
            }
            code = code.saturating_mul(16).saturating_add(d);
            self.pos += 1;
        }
        let digits = self.pos - start;
        let ok = if braced {
            digits > 0 && digits <= 8 && self.eat('}')
        } else {
            digits == 2
        };
        match char::from_u32(code) {
            Some(c) if ok => Ok(c),
            _ => Err(self.error("invalid \\x escape")),
        }
    }

    /// After `[`.
    fn class(&mut self, flags: Flags) -> Result<Node, String> {
        let negated = self.eat('^');
        let mut ranges: Vec<(char, char)> = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unclosed character class"));
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            if c == ']' && first {
                self.no_leading_bracket_range()?;
            }
            first = false;
            self.no_set_operator()?;
            if c == '[' && self.chars.get(self.pos + 1) == Some(&':') {
                self.posix(&mut ranges)?;
                continue;
            }
            self.no_nested_class()?;
            let lo = self.class_char()?;
            let lo = match lo {
                Escaped::Char(c) => c,
                Escaped::Class(set, neg) => {
                    ranges.append(&mut if neg { complement(set) } else { set });
                    self.no_range_from_class()?;
                    continue;
                }
                Escaped::Look(_) => return Err(self.error("anchor in a character class")),
            };
            if self.range_follows() {
                self.no_set_operator()?;
                self.pos += 1;
                self.no_nested_class()?;
                let Escaped::Char(hi) = self.class_char()? else {
                    return Err(self.error("invalid range in character class"));
                };
                if hi < lo {
                    return Err(self.error("invalid range in character class: start is after end"));
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        if flags.fold {
            let mut folded = Vec::new();
            for &(lo, hi) in &ranges {
                for (a, b, delta) in [('a', 'z', -32i32), ('A', 'Z', 32)] {
                    let (l, h) = (lo.max(a), hi.min(b));
                    if l <= h {
                        let shift = |c: char| char::from_u32((c as i32 + delta) as u32);
                        if let (Some(l), Some(h)) = (shift(l), shift(h)) {
                            folded.push((l, h));
                        }
                    }
                }
            }
            ranges.append(&mut folded);
        }
        // Unsorted, possibly overlapping: regex-lite sorts and merges.
        Ok(Node::Class { ranges, negated })
    }

    /// Refuses `--`, `&&` and `~~` at the current position of a class: set operations in Rust
    /// `regex` (difference, intersection, symmetric difference), a range or literals in RE2
    /// (`[--a]` is `-` to `a` there), so outside the common subset either way.
    fn no_set_operator(&self) -> Result<(), String> {
        match (self.peek(), self.chars.get(self.pos + 1)) {
            (Some(c @ ('-' | '&' | '~')), Some(d)) if c == *d => {
                let op: String = [c, c].iter().collect();
                Err(self.error(&cat(&[
                    "ambiguous '",
                    &op,
                    "' in a character class (a set operation in Rust regex); escape it",
                ])))
            }
            _ => Ok(()),
        }
    }

    /// Whether a range's `-` follows: not when last (`[a-]`).
    fn range_follows(&self) -> bool {
        self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|c| *c != ']')
    }

    /// Refuses a range from `\d`, `\w`, `\s` or a negation: the literals `-` and `z` after the
    /// class in RE2 (and in this parser before), an error in regex-lite (`[\d-z]`). After
    /// `[:alpha:]` both read a literal `-`.
    fn no_range_from_class(&self) -> Result<(), String> {
        match self.range_follows() {
            true => Err(self.error("invalid range in character class: it starts with a class")),
            false => Ok(()),
        }
    }

    /// Refuses an unescaped `[` in a class (other than `[:name:]`): a literal in RE2, a nested
    /// class in Rust `regex` (`[a[b]c]` is `a`, `[`, `b` then `c]` in RE2, `a`, `b`, `c` there).
    fn no_nested_class(&self) -> Result<(), String> {
        if self.peek() == Some('[') {
            return Err(self.error(
                "ambiguous '[' in a character class (a nested class in Rust regex); escape it",
            ));
        }
        Ok(())
    }

    /// Refuses `[]-x]` and `[^]-x]`: a leading `]` starts the range `]`..`x` in RE2 but is a
    /// literal of its own in Rust `regex`, where `-` and `x` follow as literals.
    fn no_leading_bracket_range(&self) -> Result<(), String> {
        let dash = self.chars.get(self.pos + 1) == Some(&'-');
        match self.chars.get(self.pos + 2) {
            Some(c) if dash && *c != ']' => Err(self.error(
                "ambiguous range after a leading ']' in a character class (a range in RE2, literals in Rust regex); escape it",
            )),
            _ => Ok(()),
        }
    }

    fn class_char(&mut self) -> Result<Escaped, String> {
        let Some(c) = self.peek() else {
            return Err(self.error("unclosed character class"));
        };
        self.pos += 1;
        if c == '\\' {
            self.escape(true)
        } else {
            Ok(Escaped::Char(c))
        }
    }

    /// `[:name:]` inside a class (at the first `[`).
    fn posix(&mut self, ranges: &mut Vec<(char, char)>) -> Result<(), String> {
        let start = self.pos + 2;
        let end = (start..self.chars.len().saturating_sub(1))
            .find(|&i| self.chars.get(i) == Some(&':') && self.chars.get(i + 1) == Some(&']'));
        let Some(end) = end else {
            return Err(self.error("unclosed [: :] class"));
        };
        let mut name = String::new();
        for &c in self.chars.get(start..end).unwrap_or_default() {
            name.push(c);
        }
        let (negated, name) = match name.strip_prefix('^') {
            Some(n) => (true, n.to_string()),
            None => (false, name),
        };
        let Some((_, set)) = POSIX.iter().find(|(n, _)| *n == name) else {
            return Err(self.error(&cat(&["unknown class [:", &name, ":]"])));
        };
        if negated {
            ranges.append(&mut complement(set.to_vec()));
        } else {
            ranges.extend_from_slice(set);
        }
        self.pos = end + 2;
        Ok(())
    }
}

enum Escaped {
    Char(char),
    Class(Vec<(char, char)>, bool),
    Look(Look),
}

fn literal(c: char, flags: Flags) -> Node {
    if flags.fold && c.is_ascii_alphabetic() {
        Node::Char {
            c: c.to_ascii_lowercase(),
            fold: true,
        }
    } else {
        Node::Char { c, fold: false }
    }
}

fn concat(mut items: Vec<Node>) -> Node {
    match items.len() {
        0 => Node::Empty,
        1 => items.pop().unwrap_or(Node::Empty),
        _ => Node::Concat(items),
    }
}
