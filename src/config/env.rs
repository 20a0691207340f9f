//! `${NAME}` interpolation of environment variables inside config strings.

/// Why a string's `${NAME}`s cannot be replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("unclosed `${{` in string")]
    Unclosed,
    #[error("`${{{0}}}` is not a valid environment variable name")]
    BadName(String),
    #[error("environment variable {0} is not set")]
    NotSet(String),
}

/// Replaces each `${NAME}` in `text` using `lookup`. `$${` stands for a literal `${`.
/// Fails on the first variable that is not set, or an unclosed `${`.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or(EnvError::Unclosed)?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EnvError::BadName(name.to_string()));
            }
            let value = lookup(name).ok_or_else(|| EnvError::NotSet(name.to_string()))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn replaces_variables() {
        assert_eq!(
            interpolate("Bearer ${TOKEN}!", env).as_deref(),
            Ok("Bearer s3cret!")
        );
        assert_eq!(interpolate("a$b", env).as_deref(), Ok("a$b"));
        assert_eq!(interpolate("$${TOKEN}", env).as_deref(), Ok("${TOKEN}"));
        assert_eq!(interpolate("", env).as_deref(), Ok(""));
    }

    #[test]
    fn names_the_missing_variable() {
        let err = interpolate("${NOPE}", env).unwrap_err();
        assert_eq!(err.to_string(), "environment variable NOPE is not set");
        assert_eq!(
            interpolate("${TOKEN", env).unwrap_err().to_string(),
            "unclosed `${` in string"
        );
        assert_eq!(
            interpolate("${A-B}", env).unwrap_err().to_string(),
            "`${A-B}` is not a valid environment variable name"
        );
    }
}
