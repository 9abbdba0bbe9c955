//! The one rule for study names, applied wherever a name enters knobs: a spec file, the
//! HTTP API, the storage. A name becomes a folder under the output folder (plots and
//! recommendations) and a word on a command line, so it must not be able to name another
//! folder or look like an option.

/// Longest study name, in characters.
pub const MAX_STUDY_NAME: usize = 200;

/// Why `name` cannot name a study, or `Ok`.
pub fn check_study_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_STUDY_NAME {
        return Err(format!("must be 1 to {MAX_STUDY_NAME} characters (got {chars})"));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` would name a folder outside the output folder; use letters, digits, `-`, `_`"));
    }
    if name.starts_with('-') {
        return Err("must not start with `-` (it would read as an option on a command line)".into());
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\') || c.is_control()) {
        return Err(format!("must not contain {c:?} (no path separators or control characters)"));
    }
    if name.trim() != name {
        return Err("must not start or end with whitespace".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_or_confuse_are_refused() {
        for bad in
            ["", ".", "..", "-x", "--resume", "a/b", "../x", "a\\b", "a\nb", "a\0b", " a", "a ", &"x".repeat(201)]
        {
            assert!(check_study_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["quickstart", "pg-tuning_2026.12", "a..b", ".hidden", "séance", &"é".repeat(200)] {
            assert_eq!(check_study_name(good), Ok(()), "{good:?}");
        }
    }
}
