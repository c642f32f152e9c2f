//! `when:` a task's condition, in a language small enough to read at 3 a.m.:
//!
//! ```text
//! changed: install the new module        did that task change this host
//! {{ host.kernel }} == 6.1.0-18-amd64     a variable equals a value
//! {{ role }} != "build host"              or does not (quotes keep spaces)
//! not ...   ... and ...   ... or ...   ( ... )
//! ```
//!
//! `not` binds tighter than `and`, `and` tighter than `or`. A condition is
//! parsed and its task names resolved when the playbook loads, so a typo is
//! a FILE:LINE error before any host is contacted, not a skipped reboot.

use std::fmt;

use super::vars::{expand, TemplateError, Vars};
use super::Phase;

/// A task's `when:` as written (for messages) and as parsed.
#[derive(Debug, Clone)]
pub struct When {
    pub text: String,
    pub condition: Condition,
}

impl When {
    pub fn parse(text: &str) -> Result<When, String> {
        Ok(When {
            text: text.trim().to_string(),
            condition: Condition::parse(text)?,
        })
    }
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `changed: NAME`: the task at (phase, index) changed this host.
    Changed {
        name: String,
        at: Option<(Phase, usize)>,
    },
    /// `LEFT == RIGHT` (`equal`) or `LEFT != RIGHT`.
    Compare {
        left: Operand,
        right: Operand,
        equal: bool,
    },
    Not(Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

/// One side of a comparison: a template (`{{ var }}`, expanded per host)
/// or a literal word or quoted string.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Template(String),
    Literal(String),
}

/// What a condition needs of its host to be decided.
pub trait Facts {
    fn vars(&self) -> &Vars;
    /// Whether the task at (phase, index) changed this host in this run.
    fn changed(&self, phase: Phase, index: usize) -> bool;
}

impl Condition {
    /// Parses `text`; the error says what was expected where.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let condition = parser.or()?;
        match parser.peek() {
            None => Ok(condition),
            Some(token) => Err(format!(
                "when: expected `and`, `or` or the end, found `{token}`"
            )),
        }
    }

    /// Resolves every `changed: NAME` with `find`, which knows the tasks
    /// before this one.
    pub fn resolve(
        &mut self,
        find: &impl Fn(&str) -> Option<(Phase, usize)>,
    ) -> Result<(), String> {
        match self {
            Condition::Changed { name, at } => {
                *at = Some(find(name).ok_or_else(|| {
                    format!("when: `changed: {name}` names no task before this one")
                })?);
                Ok(())
            }
            Condition::Compare { .. } => Ok(()),
            Condition::Not(inner) => inner.resolve(find),
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.resolve(find)?;
                b.resolve(find)
            }
        }
    }

    /// The templates in it, for the check that every variable is defined.
    pub fn templates(&self) -> Vec<&str> {
        match self {
            Condition::Changed { .. } => Vec::new(),
            Condition::Compare { left, right, .. } => [left, right]
                .into_iter()
                .filter_map(|operand| match operand {
                    Operand::Template(text) => Some(text.as_str()),
                    Operand::Literal(_) => None,
                })
                .collect(),
            Condition::Not(inner) => inner.templates(),
            Condition::And(a, b) | Condition::Or(a, b) => {
                let mut all = a.templates();
                all.extend(b.templates());
                all
            }
        }
    }

    /// Whether the condition holds on the host `facts` describe.
    pub fn holds(&self, facts: &impl Facts) -> Result<bool, TemplateError> {
        Ok(match self {
            Condition::Changed { at, .. } => {
                at.is_some_and(|(phase, index)| facts.changed(phase, index))
            }
            Condition::Compare { left, right, equal } => {
                (left.value(facts.vars())? == right.value(facts.vars())?) == *equal
            }
            Condition::Not(inner) => !inner.holds(facts)?,
            Condition::And(a, b) => a.holds(facts)? && b.holds(facts)?,
            Condition::Or(a, b) => a.holds(facts)? || b.holds(facts)?,
        })
    }
}

impl Operand {
    fn value(&self, vars: &Vars) -> Result<String, TemplateError> {
        match self {
            Operand::Template(text) => Ok(expand(text, vars)?.trim().to_string()),
            Operand::Literal(text) => Ok(text.clone()),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Changed { name, .. } => write!(f, "changed: {name}"),
            Condition::Compare { left, right, equal } => {
                let op = if *equal { "==" } else { "!=" };
                write!(f, "{left} {op} {right}")
            }
            Condition::Not(inner) => write!(f, "not ({inner})"),
            Condition::And(a, b) => write!(f, "({a}) and ({b})"),
            Condition::Or(a, b) => write!(f, "({a}) or ({b})"),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Template(text) => f.write_str(text),
            Operand::Literal(text) if text.is_empty() || text.contains(' ') => {
                write!(f, "\"{text}\"")
            }
            Operand::Literal(text) => f.write_str(text),
        }
    }
}

/// A word of a condition.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Template(String),
    Open,
    Close,
    Equal,
    NotEqual,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(word) => f.write_str(word),
            Token::Quoted(text) => write!(f, "\"{text}\""),
            Token::Template(text) => f.write_str(text),
            Token::Open => f.write_str("("),
            Token::Close => f.write_str(")"),
            Token::Equal => f.write_str("=="),
            Token::NotEqual => f.write_str("!="),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while let Some(c) = rest.chars().next() {
        let (token, length) = match c {
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '=' | '!' if rest[1..].starts_with('=') => (
                if c == '=' {
                    Token::Equal
                } else {
                    Token::NotEqual
                },
                2,
            ),
            '"' => {
                let end = rest[1..].find('"').ok_or("when: a `\"` is never closed")?;
                (Token::Quoted(rest[1..1 + end].to_string()), end + 2)
            }
            '{' if rest.starts_with("{{") => {
                let end = rest
                    .find("}}")
                    .ok_or("when: `{{` is never closed by `}}`")?;
                (Token::Template(rest[..end + 2].to_string()), end + 2)
            }
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || "()\"".contains(c) || rest_is_op(c))
                    .unwrap_or(rest.len())
                    .max(c.len_utf8());
                (Token::Word(rest[..end].to_string()), end)
            }
        };
        tokens.push(token);
        rest = rest[length..].trim_start();
    }
    Ok(tokens)
}

/// `=` and `!` end a word only as the start of `==` or `!=`; a word such
/// as `a=b` is rare enough in a condition to ask for quotes.
fn rest_is_op(c: char) -> bool {
    c == '=' || c == '!'
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Word(w)) if w == word);
        if found {
            self.at += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Condition::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Condition, String> {
        if self.keyword("not") {
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            return match self.next() {
                Some(Token::Close) => Ok(inner),
                other => Err(format!("when: expected `)`, found {}", found(other))),
            };
        }
        if self.keyword("changed:") {
            return self.changed();
        }
        self.comparison()
    }

    /// `changed: NAME`: the name runs to the next `and`, `or`, `)` or the
    /// end, or is one quoted string.
    fn changed(&mut self) -> Result<Condition, String> {
        let mut words = Vec::new();
        while let Some(token) = self.peek() {
            match token {
                Token::Quoted(text) if words.is_empty() => {
                    words.push(text.clone());
                    self.at += 1;
                    break;
                }
                Token::Word(word) if word != "and" && word != "or" => {
                    words.push(word.clone());
                    self.at += 1;
                }
                _ => break,
            }
        }
        match words.is_empty() {
            true => Err("when: expected a task name after `changed:`".into()),
            false => Ok(Condition::Changed {
                name: words.join(" "),
                at: None,
            }),
        }
    }

    fn comparison(&mut self) -> Result<Condition, String> {
        let left = self.operand()?;
        let equal = match self.next() {
            Some(Token::Equal) => true,
            Some(Token::NotEqual) => false,
            other => {
                return Err(format!(
                    "when: expected `==` or `!=` after `{left}`, found {}",
                    found(other)
                ))
            }
        };
        let right = self.operand()?;
        Ok(Condition::Compare { left, right, equal })
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Token::Template(text)) => Ok(Operand::Template(text)),
            Some(Token::Quoted(text)) => Ok(Operand::Literal(text)),
            Some(Token::Word(word)) if !["and", "or", "not"].contains(&word.as_str()) => {
                Ok(Operand::Literal(word))
            }
            other => Err(format!(
                "when: expected `changed: TASK`, a `{{{{ variable }}}}`, a value or `(`, found {}",
                found(other)
            )),
        }
    }
}

fn found(token: Option<Token>) -> String {
    match token {
        Some(token) => format!("`{token}`"),
        None => "the end".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Host {
        vars: Vars,
        changed: Vec<(Phase, usize)>,
    }

    impl Facts for Host {
        fn vars(&self) -> &Vars {
            &self.vars
        }
        fn changed(&self, phase: Phase, index: usize) -> bool {
            self.changed.contains(&(phase, index))
        }
    }

    fn host() -> Host {
        Host {
            vars: [("host.kernel", "6.1.0-18"), ("role", "build host")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into_iter()
                .collect(),
            changed: vec![(Phase::Tasks, 0)],
        }
    }

    fn holds(text: &str) -> bool {
        let mut condition = Condition::parse(text).unwrap();
        let find = |name: &str| (name == "install the new module").then_some((Phase::Tasks, 0));
        condition.resolve(&find).unwrap();
        condition.holds(&host()).unwrap()
    }

    #[test]
    fn changed_comparisons_and_logic() {
        assert!(holds("changed: install the new module"));
        assert!(holds("changed: \"install the new module\""));
        assert!(holds("{{ host.kernel }} == 6.1.0-18"));
        assert!(holds("{{ role }} == \"build host\""));
        assert!(!holds("{{ role }} != \"build host\""));
        assert!(holds("not {{ host.kernel }} == 5.10"));
        assert!(holds(
            "changed: install the new module and {{ host.kernel }} != 5.10"
        ));
        assert!(holds(
            "{{ host.kernel }} == 5.10 or changed: install the new module"
        ));
        assert!(!holds(
            "not (changed: install the new module or {{ role }} == x)"
        ));
        // `and` binds tighter than `or`.
        assert!(holds(
            "{{ role }} == x and {{ role }} == y or {{ role }} != z"
        ));
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        let error = |text: &str| Condition::parse(text).unwrap_err();
        assert!(error("{{ role }} = x").contains("expected `==` or `!=`"));
        assert!(error("changed:").contains("expected a task name"));
        assert!(error("(changed: a").contains("expected `)`"));
        assert!(error("{{ role }} == x y").contains("found `y`"));
        assert!(error("\"open == x").contains("never closed"));
        assert!(error("").contains("found the end"));
        let mut unknown = Condition::parse("changed: nothing").unwrap();
        let find = |_: &str| None;
        assert!(unknown
            .resolve(&find)
            .unwrap_err()
            .contains("names no task"));
    }
}
