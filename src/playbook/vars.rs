//! Variables in task fields: `{{ name }}`, substituted per host from the
//! inventory, the playbook, `-e`, registered results and gathered facts.
//! One syntax, no expressions: a field either names defined variables or
//! is refused before any host is contacted.
//!
//! `{{ name }}` pastes the value as it is: right for a value that *is*
//! command text written by the playbook's author (a health check). A value
//! that comes from `-e`, the inventory, a fact or a registered output goes
//! into a command as `{{ name | quote }}`, one shell word, so that
//! `-e 'msg=x; rm -rf /'` stays text.

pub use crate::model::{valid_name, Vars};
use crate::ssh::shell_quote;

/// Facts gathered once per host (and again after a reboot), by these names.
pub const FACTS: [&str; 4] = ["host.name", "host.hostname", "host.kernel", "host.boot_id"];

/// Why a template cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without a matching `}}`, or an empty or ill-formed name.
    #[error("{0}")]
    Syntax(String),
    #[error("variable `{0}` is not defined")]
    Undefined(String),
}

/// One `{{ name }}` or `{{ name | quote }}` of a template.
struct Reference<'a> {
    name: &'a str,
    /// `| quote`: the value is shell-quoted as one word.
    quote: bool,
}

/// A template cut at its references.
struct Template<'a> {
    /// The literal text before each reference, and the reference.
    parts: Vec<(&'a str, Reference<'a>)>,
    /// The text after the last reference.
    tail: &'a str,
}

fn parse(text: &str) -> Result<Template<'_>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError::Syntax("`{{` is never closed by `}}`".into()))?;
        let inside = &after[..end];
        let (name, filter) = match inside.split_once('|') {
            Some((name, filter)) => (name.trim(), Some(filter.trim())),
            None => (inside.trim(), None),
        };
        if !valid_name(name) {
            return Err(TemplateError::Syntax(format!(
                "`{{{{{inside}}}}}` is not a variable name (letters, digits, `_`, `-` and `.`)"
            )));
        }
        let quote = match filter {
            None => false,
            Some("quote") => true,
            Some(other) => {
                return Err(TemplateError::Syntax(format!(
                    "unknown filter `{other}` in `{{{{{inside}}}}}`; the one filter is `quote`"
                )))
            }
        };
        parts.push((&rest[..start], Reference { name, quote }));
        rest = &after[end + 2..];
    }
    Ok(Template { parts, tail: rest })
}

/// The variable names `text` refers to, in order.
pub fn references(text: &str) -> Result<Vec<String>, TemplateError> {
    let template = parse(text)?;
    Ok(template
        .parts
        .iter()
        .map(|(_, r)| r.name.to_string())
        .collect())
}

/// `text` with every `{{ name }}` replaced by its value, and every
/// `{{ name | quote }}` by the value quoted as one shell word.
pub fn expand(text: &str, vars: &Vars) -> Result<String, TemplateError> {
    let template = parse(text)?;
    let mut out = String::with_capacity(text.len());
    for (literal, reference) in template.parts {
        out.push_str(literal);
        let value = vars
            .get(reference.name)
            .ok_or_else(|| TemplateError::Undefined(reference.name.to_string()))?;
        match reference.quote {
            true => out.push_str(&shell_quote(value)),
            false => out.push_str(value),
        }
    }
    out.push_str(template.tail);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_lists_names() {
        let vars = Vars::from([
            ("a".into(), "1".into()),
            ("host.kernel".into(), "6.1".into()),
        ]);
        assert_eq!(expand("x{{a}}y{{ host.kernel }}", &vars).unwrap(), "x1y6.1");
        assert_eq!(references("{{a}} {{ b_c }}").unwrap(), ["a", "b_c"]);
        assert_eq!(expand("plain ${x}", &vars).unwrap(), "plain ${x}");
    }

    #[test]
    fn quote_makes_one_shell_word() {
        let vars = Vars::from([("msg".into(), "hi; touch /tmp/x '".into())]);
        assert_eq!(
            expand("echo {{ msg | quote }}", &vars).unwrap(),
            r"echo 'hi; touch /tmp/x '\'''"
        );
        assert_eq!(references("{{msg|quote}}").unwrap(), ["msg"]);
        assert!(matches!(
            references("{{ msg | upper }}"),
            Err(TemplateError::Syntax(_))
        ));
    }

    #[test]
    fn refuses_undefined_and_bad_syntax() {
        let vars = Vars::new();
        assert_eq!(
            expand("{{ nope }}", &vars),
            Err(TemplateError::Undefined("nope".into()))
        );
        assert!(matches!(references("{{ a"), Err(TemplateError::Syntax(_))));
        assert!(matches!(
            references("{{ a b }}"),
            Err(TemplateError::Syntax(_))
        ));
    }
}
