//! Variables in task fields: `{{ name }}`, substituted per host from the
//! inventory, the playbook, `-e`, registered results and gathered facts.
//! One syntax, no expressions: a field either names defined variables or
//! is refused before any host is contacted.

use std::collections::BTreeMap;

/// Name → value for one host at one point of the playbook.
pub type Vars = BTreeMap<String, String>;

/// Facts gathered once per host (and again after a reboot), by these names.
pub const FACTS: [&str; 4] = ["host.name", "host.hostname", "host.kernel", "host.boot_id"];

/// Why a template cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `{{` without a matching `}}`, or an empty or ill-formed name.
    Syntax(String),
    Undefined(String),
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Syntax(why) => f.write_str(why),
            TemplateError::Undefined(name) => write!(f, "variable `{name}` is not defined"),
        }
    }
}

/// The variable names `text` refers to, in order.
pub fn references(text: &str) -> Result<Vec<String>, TemplateError> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError::Syntax("`{{` is never closed by `}}`".into()))?;
        let name = after[..end].trim();
        if !valid_name(name) {
            return Err(TemplateError::Syntax(format!(
                "`{{{{{}}}}}` is not a variable name (letters, digits, `_`, `-` and `.`)",
                &after[..end]
            )));
        }
        names.push(name.to_string());
        rest = &after[end + 2..];
    }
    Ok(names)
}

/// `text` with every `{{ name }}` replaced by its value.
pub fn expand(text: &str, vars: &Vars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError::Syntax("`{{` is never closed by `}}`".into()))?;
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| TemplateError::Undefined(name.to_string()))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `name` can be a variable: for templates, `vars:` keys and `-e`.
pub fn valid_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
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
