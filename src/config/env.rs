//! `${NAME}` interpolation of environment variables inside config strings.

/// Replaces each `${NAME}` in `text` using `lookup`. `$${` stands for a literal `${`.
/// Fails with a message naming the first variable that is not set, or an unclosed `${`.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unclosed `${` in string".to_string())?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable name"
                ));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
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
        assert!(err.contains("NOPE"), "{err}");
        assert!(interpolate("${TOKEN", env).is_err());
        assert!(interpolate("${A-B}", env).is_err());
    }
}
