//! A small regular expression engine for rule conditions: whole-value matching in time linear
//! in the input (an NFA simulation over a compiled program, no backtracking), so no pattern can
//! make a request slow however hostile the value (`(a+)+b` against 50 000 `a`s is linear).
//! Programs of up to 64 instructions without line or word assertions (most rule patterns) run
//! bit-parallel; the others on a Pike VM.
//!
//! The syntax is the common subset of RE2 / Rust `regex` (which Envoy and Istio use):
//! literals and `\`-escaped punctuation (not `\<` `\>`, word assertions in Rust `regex`);
//! `.`; classes `[a-z0-9_]`, `[^…]`, `[[:alpha:]]` (no set operators `--` `&&` `~~`);
//! `\d \w \s` and their negations (ASCII); `\t \n \r \f \v \xHH \x{H…}`; anchors `^ $ \A \z`
//! and word boundaries `\b \B`; groups `(…)`, `(?:…)`, `(?P<name>…)`, `(?<name>…)`;
//! alternation `|`; repetition `* + ? {n} {n,} {n,m}` (lazy forms accepted); flags `i`
//! (ASCII case-insensitive), `s` (`.` matches `\n`), `m` (`^`/`$` at line ends) and `U`
//! (no effect on a yes/no match), as `(?flags)` or `(?flags:…)`. Backreferences and
//! look-around do not exist here (nor in RE2). Limits: [`MAX_NEST`] levels of nesting,
//! repetition counts up to [`MAX_REPEAT`], [`MAX_PROGRAM`] compiled instructions, patterns of
//! [`MAX_PATTERN`] characters.
//!
//! The engine was written for this project to keep the Wasm module small; its answers are
//! checked against the `regex-lite` crate in the tests.

use std::cell::Cell;
use std::fmt;

use crate::error::{cat, decimal};

/// Deepest nesting of groups accepted.
pub const MAX_NEST: usize = 64;
/// Largest `n` in `{n}`, `{n,}`, `{n,m}`.
pub const MAX_REPEAT: u32 = 1000;
/// Longest pattern accepted, in characters.
pub const MAX_PATTERN: usize = 8192;
/// Most repetition operators applied in a row (`a**` is two).
const MAX_STACKED_REPEAT: usize = 8;
/// Largest compiled program, in instructions.
pub const MAX_PROGRAM: usize = 20_000;

/// A compiled pattern that matches whole values.
pub struct Regex {
    program: Vec<Inst>,
    /// Programs of at most 64 instructions without line or word assertions: the same
    /// automaton run bit-parallel (one bit per instruction), a few instructions per character
    /// and live thread instead of the Pike VM's thread lists.
    bits: Option<Box<BitProgram>>,
    /// Thread lists reused between matches (taken while matching, so re-entrance is safe).
    cache: Cell<Option<Threads>>,
}

/// Epsilon closures as bit sets over the program, computed once at compile time. Bit `i` is
/// instruction `i`; only consuming instructions and `Match` are kept in a closure.
#[derive(Debug)]
struct BitProgram {
    /// From instruction `pc` (after a character was consumed, so `^`/`\A` fail), when more
    /// input follows.
    inner: [u64; 64],
    /// The same at the end of the input (`$`/`\z` hold).
    last: [u64; 64],
    /// From the start: of a non-empty input, and of the empty input.
    start: u64,
    start_empty: u64,
    /// The `Match` instruction.
    accept: u64,
    /// For each ASCII character, the instructions that consume it (others are tested one by
    /// one).
    ascii: [u64; 128],
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Regex")
            .field("program", &self.program)
            .finish_non_exhaustive()
    }
}

impl Regex {
    /// Compiles `pattern`; the error says what is wrong and at which character.
    pub fn new(pattern: &str) -> Result<Regex, String> {
        if pattern.chars().count() > MAX_PATTERN {
            let max = decimal(MAX_PATTERN as u64);
            return Err(cat(&["pattern longer than ", &max, " characters"]));
        }
        let mut parser = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            depth: 0,
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
        let mut program = Vec::new();
        emit(&node, &mut program)?;
        program.push(Inst::Match);
        Ok(Regex {
            bits: BitProgram::new(&program).map(Box::new),
            program,
            cache: Cell::new(None),
        })
    }

    /// Whether the pattern matches all of `text`.
    pub fn is_full_match(&self, text: &str) -> bool {
        match &self.bits {
            Some(bits) => self.run_bits(bits, text),
            None => self.is_full_match_pike_vm(text),
        }
    }

    /// The bit-parallel run: the set of live threads is a `u64`; each character keeps the
    /// threads whose instruction consumes it and adds the closures of their successors.
    fn run_bits(&self, bits: &BitProgram, text: &str) -> bool {
        let mut chars = text.chars();
        let Some(mut ch) = chars.next() else {
            return bits.start_empty & bits.accept != 0;
        };
        let mut live = bits.start;
        loop {
            let after = chars.next();
            let closures = if after.is_some() {
                &bits.inner
            } else {
                &bits.last
            };
            let mut rest = match bits.ascii.get(ch as usize) {
                Some(consumers) => live & consumers,
                None => self.consumers(live, ch),
            };
            let mut next = 0u64;
            while rest != 0 {
                let pc = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                next |= closures.get(pc + 1).copied().unwrap_or(0);
            }
            live = next;
            match after {
                _ if live == 0 => return false,
                Some(c) => ch = c,
                None => return live & bits.accept != 0,
            }
        }
    }

    /// The threads of `live` whose instruction consumes `ch`.
    fn consumers(&self, live: u64, ch: char) -> u64 {
        let mut out = 0;
        let mut rest = live;
        while rest != 0 {
            let pc = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if self.program.get(pc).is_some_and(|inst| inst.consumes(ch)) {
                out |= 1 << pc;
            }
        }
        out
    }

    /// Whether matches run bit-parallel (see [`Regex::is_full_match_pike_vm`]).
    #[doc(hidden)]
    pub fn is_bit_parallel(&self) -> bool {
        self.bits.is_some()
    }

    /// The Pike VM: any program. Public for the fuzz target, which checks that both runs agree.
    #[doc(hidden)]
    pub fn is_full_match_pike_vm(&self, text: &str) -> bool {
        let mut threads = self
            .cache
            .take()
            .unwrap_or_else(|| Threads::new(self.program.len()));
        let matched = self.run(text, &mut threads);
        self.cache.set(Some(threads));
        matched
    }

    fn run(&self, text: &str, t: &mut Threads) -> bool {
        let (mut current, mut next, stack) = (&mut t.a, &mut t.b, &mut t.stack);
        current.clear();
        let mut chars = text.chars();
        let mut c = chars.next();
        self.add(current, stack, 0, None, c);
        loop {
            if current.dense.is_empty() {
                return false;
            }
            let Some(ch) = c else {
                return current
                    .dense
                    .iter()
                    .any(|pc| matches!(self.program.get(*pc as usize), Some(Inst::Match)));
            };
            let after = chars.next();
            next.clear();
            for i in 0..current.dense.len() {
                let Some(&pc) = current.dense.get(i) else {
                    break;
                };
                let Some(inst) = self.program.get(pc as usize) else {
                    continue;
                };
                if inst.consumes(ch) {
                    self.add(next, stack, pc + 1, Some(ch), after);
                }
            }
            std::mem::swap(&mut current, &mut next);
            c = after;
        }
    }

    /// Adds the thread at `pc` and everything reachable from it without consuming input, at
    /// the position between `prev` and `next`.
    fn add(
        &self,
        set: &mut SparseSet,
        stack: &mut Vec<u32>,
        pc: u32,
        prev: Option<char>,
        next: Option<char>,
    ) {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if !set.insert(pc) {
                continue;
            }
            match self.program.get(pc as usize) {
                Some(Inst::Jump(to)) => stack.push(*to),
                Some(Inst::Split(a, b)) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Some(Inst::Look(look)) if look.holds(prev, next) => stack.push(pc + 1),
                _ => {}
            }
        }
    }
}

impl BitProgram {
    /// `None` if the program is longer than 64 instructions or asserts line starts or ends or
    /// word boundaries (they depend on the characters around, not only on the position).
    fn new(program: &[Inst]) -> Option<BitProgram> {
        if program.len() > 64
            || program.iter().any(|inst| {
                matches!(
                    inst,
                    Inst::Look(
                        Look::LineStart
                            | Look::LineEnd
                            | Look::WordBoundary
                            | Look::NotWordBoundary
                    )
                )
            })
        {
            return None;
        }
        let mut bits = BitProgram {
            inner: [0; 64],
            last: [0; 64],
            start: closure(program, 0, true, false),
            start_empty: closure(program, 0, true, true),
            accept: 0,
            ascii: [0; 128],
        };
        for (c, consumers) in (0u8..).zip(bits.ascii.iter_mut()) {
            for (pc, inst) in program.iter().enumerate() {
                if inst.consumes(char::from(c)) {
                    *consumers |= 1 << pc;
                }
            }
        }
        for pc in 0..program.len() {
            *bits.inner.get_mut(pc)? = closure(program, pc, false, false);
            *bits.last.get_mut(pc)? = closure(program, pc, false, true);
            if matches!(program.get(pc), Some(Inst::Match)) {
                bits.accept |= 1 << pc;
            }
        }
        Some(bits)
    }
}

/// The consuming instructions and `Match` reachable from `pc` without input, `^`/`\A` holding
/// if `at_start`, `$`/`\z` if `at_end` (a program of at most 64 instructions).
fn closure(program: &[Inst], pc: usize, at_start: bool, at_end: bool) -> u64 {
    let (mut seen, mut out) = (0u64, 0u64);
    let mut stack = vec![pc];
    while let Some(pc) = stack.pop() {
        if pc >= 64 || seen & (1 << pc) != 0 {
            continue;
        }
        seen |= 1 << pc;
        match program.get(pc) {
            Some(Inst::Jump(to)) => stack.push(*to as usize),
            Some(Inst::Split(a, b)) => {
                stack.push(*b as usize);
                stack.push(*a as usize);
            }
            Some(Inst::Look(Look::Start)) if at_start => stack.push(pc + 1),
            Some(Inst::Look(Look::End)) if at_end => stack.push(pc + 1),
            Some(Inst::Look(_)) | None => {}
            Some(_) => out |= 1 << pc,
        }
    }
    out
}

#[derive(Debug)]
struct Threads {
    a: SparseSet,
    b: SparseSet,
    stack: Vec<u32>,
}

impl Threads {
    fn new(n: usize) -> Threads {
        Threads {
            a: SparseSet::new(n),
            b: SparseSet::new(n),
            stack: Vec::with_capacity(n),
        }
    }
}

/// A set of program counters with O(1) insert and clear.
#[derive(Debug)]
struct SparseSet {
    dense: Vec<u32>,
    sparse: Vec<u32>,
}

impl SparseSet {
    fn new(n: usize) -> SparseSet {
        SparseSet {
            dense: Vec::with_capacity(n),
            sparse: vec![0; n],
        }
    }

    fn clear(&mut self) {
        self.dense.clear();
    }

    /// Inserts `pc`; false if it was already there (or out of range).
    fn insert(&mut self, pc: u32) -> bool {
        let Some(slot) = self.sparse.get_mut(pc as usize) else {
            return false;
        };
        let at = *slot as usize;
        if self.dense.get(at) == Some(&pc) {
            return false;
        }
        *slot = self.dense.len() as u32;
        self.dense.push(pc);
        true
    }
}

#[derive(Debug, Clone)]
enum Inst {
    /// One character (already folded to lowercase when `fold`).
    Char {
        c: char,
        fold: bool,
    },
    /// Any character; `nl`: `\n` too.
    Any {
        nl: bool,
    },
    /// Sorted, non-overlapping ranges.
    Class {
        ranges: Box<[(char, char)]>,
        negated: bool,
    },
    Look(Look),
    Split(u32, u32),
    Jump(u32),
    Match,
}

impl Inst {
    fn consumes(&self, ch: char) -> bool {
        match self {
            Inst::Char { c, fold } => {
                *c == ch || (*fold && ch.is_ascii_uppercase() && *c == ch.to_ascii_lowercase())
            }
            Inst::Any { nl } => *nl || ch != '\n',
            Inst::Class { ranges, negated } => {
                let inside = ranges
                    .binary_search_by(|(lo, hi)| {
                        if *hi < ch {
                            std::cmp::Ordering::Less
                        } else if *lo > ch {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Equal
                        }
                    })
                    .is_ok();
                inside != *negated
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Look {
    Start,
    End,
    LineStart,
    LineEnd,
    WordBoundary,
    NotWordBoundary,
}

impl Look {
    fn holds(self, prev: Option<char>, next: Option<char>) -> bool {
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        match self {
            Look::Start => prev.is_none(),
            Look::End => next.is_none(),
            Look::LineStart => prev.is_none_or(|c| c == '\n'),
            Look::LineEnd => next.is_none_or(|c| c == '\n'),
            Look::WordBoundary => word(prev) != word(next),
            Look::NotWordBoundary => word(prev) == word(next),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    fold: bool,
    dot_nl: bool,
    multi_line: bool,
}

#[derive(Debug)]
enum Node {
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
                if self.pos == start || !self.eat('>') {
                    return Err(self.error("invalid group name"));
                }
            } else {
                let mut on = true;
                loop {
                    let Some(c) = self.peek() else {
                        return Err(self.error("unclosed group flags"));
                    };
                    self.pos += 1;
                    match c {
                        '-' => on = false,
                        'i' => inner.fold = on,
                        's' => inner.dot_nl = on,
                        'm' => inner.multi_line = on,
                        'U' => {}
                        ':' => break,
                        ')' => {
                            *flags = inner;
                            return Ok(None);
                        }
                        _ => {
                            let mut flag = String::from("unsupported flag ");
                            flag.push_str(&crate::json::quote(c.encode_utf8(&mut [0; 4])));
                            return Err(self.error(&flag));
                        }
                    }
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
            let lo = self.class_char()?;
            let lo = match lo {
                Escaped::Char(c) => c,
                Escaped::Class(set, neg) => {
                    ranges.append(&mut if neg { complement(set) } else { set });
                    continue;
                }
                Escaped::Look(_) => return Err(self.error("anchor in a character class")),
            };
            // A range `lo-hi`, unless the '-' is last (`[a-]`).
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|c| *c != ']') {
                self.no_set_operator()?;
                self.pos += 1;
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
        Ok(Node::Class {
            ranges: normalize(ranges),
            negated,
        })
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

const DIGIT: [(char, char); 1] = [('0', '9')];
const WORD: [(char, char); 4] = [('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
const SPACE: [(char, char); 2] = [('\t', '\r'), (' ', ' ')];

/// The `[:name:]` classes (ASCII, as in RE2).
const POSIX: [(&str, &[(char, char)]); 14] = [
    ("alnum", &[('0', '9'), ('A', 'Z'), ('a', 'z')]),
    ("alpha", &[('A', 'Z'), ('a', 'z')]),
    ("ascii", &[('\0', '\u{7f}')]),
    ("blank", &[('\t', '\t'), (' ', ' ')]),
    ("cntrl", &[('\0', '\u{1f}'), ('\u{7f}', '\u{7f}')]),
    ("digit", &DIGIT),
    ("graph", &[('!', '~')]),
    ("lower", &[('a', 'z')]),
    ("print", &[(' ', '~')]),
    ("punct", &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')]),
    ("space", &SPACE),
    ("upper", &[('A', 'Z')]),
    ("word", &WORD),
    ("xdigit", &[('0', '9'), ('A', 'F'), ('a', 'f')]),
];

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

/// Sorted, merged ranges.
fn normalize(mut ranges: Vec<(char, char)>) -> Vec<(char, char)> {
    // Insertion sort: classes hold few ranges, and std's sort would add kilobytes of code.
    for i in 1..ranges.len() {
        let mut j = i;
        while j > 0 && ranges.get(j - 1) > ranges.get(j) {
            ranges.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut out: Vec<(char, char)> = Vec::with_capacity(ranges.len());
    for &(lo, hi) in &ranges {
        match out.last_mut() {
            Some(last) if (lo as u32) <= (last.1 as u32).saturating_add(1) => {
                last.1 = last.1.max(hi)
            }
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The characters not in `set`.
fn complement(set: Vec<(char, char)>) -> Vec<(char, char)> {
    let mut out = Vec::new();
    let mut next: u32 = 0;
    for &(lo, hi) in &normalize(set) {
        if (lo as u32) > next {
            push_range(&mut out, next, lo as u32 - 1);
        }
        next = hi as u32 + 1;
    }
    push_range(&mut out, next, char::MAX as u32);
    out
}

/// Pushes `lo..=hi` minus the surrogate gap (not characters).
fn push_range(out: &mut Vec<(char, char)>, lo: u32, hi: u32) {
    for (a, b) in [(lo, hi.min(0xD7FF)), (lo.max(0xE000), hi)] {
        if let (Some(a), Some(b)) = (char::from_u32(a), char::from_u32(b)) {
            if a <= b {
                out.push((a, b));
            }
        }
    }
}

fn emit(node: &Node, p: &mut Vec<Inst>) -> Result<(), String> {
    if p.len() > MAX_PROGRAM {
        let max = decimal(MAX_PROGRAM as u64);
        return Err(cat(&[
            "pattern too large: more than ",
            &max,
            " instructions once compiled",
        ]));
    }
    match node {
        Node::Empty => {}
        Node::Char { c, fold } => p.push(Inst::Char { c: *c, fold: *fold }),
        Node::Any { nl } => p.push(Inst::Any { nl: *nl }),
        Node::Class { ranges, negated } => p.push(Inst::Class {
            ranges: ranges.clone().into_boxed_slice(),
            negated: *negated,
        }),
        Node::Look(l) => p.push(Inst::Look(*l)),
        Node::Concat(items) => {
            for n in items {
                emit(n, p)?;
            }
        }
        Node::Alt(branches) => {
            // split L1, next; L1: a; jump end; next: split L2, …; last branch falls through.
            let mut jumps = Vec::new();
            for (i, b) in branches.iter().enumerate() {
                if i + 1 < branches.len() {
                    let split = p.len();
                    p.push(Inst::Split(split as u32 + 1, 0));
                    emit(b, p)?;
                    jumps.push(p.len());
                    p.push(Inst::Jump(0));
                    let next = p.len() as u32;
                    if let Some(Inst::Split(_, b)) = p.get_mut(split) {
                        *b = next;
                    }
                } else {
                    emit(b, p)?;
                }
            }
            let end = p.len() as u32;
            for &j in &jumps {
                if let Some(Inst::Jump(to)) = p.get_mut(j) {
                    *to = end;
                }
            }
        }
        Node::Repeat { node, min, max } => {
            for _ in 0..*min {
                emit(node, p)?;
            }
            match max {
                None => {
                    // L: split body, end; body; jump L
                    let split = p.len();
                    p.push(Inst::Split(split as u32 + 1, 0));
                    emit(node, p)?;
                    p.push(Inst::Jump(split as u32));
                    let end = p.len() as u32;
                    if let Some(Inst::Split(_, b)) = p.get_mut(split) {
                        *b = end;
                    }
                }
                Some(max) => {
                    // Each optional copy: split body, end.
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(p.len());
                        p.push(Inst::Split(p.len() as u32 + 1, 0));
                        emit(node, p)?;
                    }
                    let end = p.len() as u32;
                    for &s in &splits {
                        if let Some(Inst::Split(_, b)) = p.get_mut(s) {
                            *b = end;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
