//! Templates: the strings of a command spec with `{param}` and `{trial}`
//! placeholders, parsed once and rendered per trial.

use super::TRIAL_PLACEHOLDER;
use crate::error::Problem;
use crate::space::Config;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Param(String),
    Trial,
}

/// A string with `{param}` and `{trial}` placeholders (`{{` and `}}` are
/// literal braces).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parse `text`; the error says which brace is unmatched or which
    /// placeholder is empty.
    pub(super) fn parse(text: &str) -> std::result::Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => {
                                return Err(format!(
                                    "`{{` without a matching `}}` in `{text}`; write `{{{{` for a literal brace"
                                ));
                            }
                            Some(ch) => name.push(ch),
                        }
                    }
                    let name = name.trim();
                    if name.is_empty() {
                        return Err(format!("empty placeholder `{{}}` in `{text}`; name a parameter or `{{trial}}`"));
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(if name == TRIAL_PLACEHOLDER { Piece::Trial } else { Piece::Param(name.to_string()) });
                }
                '}' => {
                    return Err(format!("`}}` without a matching `{{` in `{text}`; write `}}}}` for a literal brace"));
                }
                _ => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Template { pieces })
    }

    /// Push a problem for every placeholder that names no parameter.
    pub(super) fn check(&self, names: &[&str], path: &str, problems: &mut Vec<Problem>) {
        for piece in &self.pieces {
            match piece {
                Piece::Param(p) if !names.contains(&p.as_str()) => {
                    const SHOWN: usize = 30;
                    let mut valid: Vec<String> = std::iter::once(TRIAL_PLACEHOLDER)
                        .chain(names.iter().copied())
                        .take(SHOWN)
                        .map(|n| format!("{{{n}}}"))
                        .collect();
                    if names.len() + 1 > SHOWN {
                        valid.push(format!("and {} more parameters", names.len() + 1 - SHOWN));
                    }
                    problems.push(Problem::new(
                        path,
                        format!("unknown placeholder `{{{p}}}`; valid: {}", valid.join(", ")),
                    ));
                }
                Piece::Trial if names.contains(&TRIAL_PLACEHOLDER) => problems.push(Problem::new(
                    path,
                    "`{trial}` is ambiguous: a parameter is also named `trial`; rename the parameter",
                )),
                _ => {}
            }
        }
    }

    /// The text for one configuration; an inactive parameter renders empty.
    pub(super) fn render(&self, config: &Config, trial: u64) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Lit(s) => out.push_str(s),
                Piece::Param(p) => {
                    if let Some(v) = config.get(p) {
                        out.push_str(&v.to_string());
                    }
                }
                Piece::Trial => out.push_str(&trial.to_string()),
            }
        }
        out
    }
}
