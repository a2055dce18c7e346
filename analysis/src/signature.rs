//! Crash signatures, built from the crashing thread's frames the way Socorro builds them:
//! frames matching an *irrelevant* rule are skipped while nothing is kept yet, frames
//! matching a *prefix* rule are kept and the walk goes on, the first other frame is kept
//! and ends it. The rules are data ([`SignatureRules`]), with defaults in
//! `signature_rules/*.txt`, stored and edited by the admin (`cerfs signature-rules`).

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Frames of the crashing thread looked at (inline frames count).
pub const FRAMES_CONSIDERED: usize = 40;
/// Longest signature; a longer one is cut and ends in `...`.
pub const MAX_SIGNATURE: usize = 255;

const DEFAULT_IRRELEVANT: &str = include_str!("signature_rules/irrelevant.txt");
const DEFAULT_PREFIX: &str = include_str!("signature_rules/prefix.txt");

/// The rules signatures are built with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRules {
    /// Regular expressions (one per line, `#` comments) of frames skipped at the top.
    pub irrelevant: String,
    /// Regular expressions of frames kept before the walk goes on.
    pub prefix: String,
    /// Frames joined at most.
    pub max_frames: usize,
}

impl Default for SignatureRules {
    fn default() -> Self {
        SignatureRules {
            irrelevant: DEFAULT_IRRELEVANT.to_owned(),
            prefix: DEFAULT_PREFIX.to_owned(),
            max_frames: 8,
        }
    }
}

/// A rule that is not a valid regular expression.
#[derive(Debug, thiserror::Error)]
#[error("{list} rule on line {line}, {rule:?}: {error}")]
pub struct RuleError {
    /// `irrelevant` or `prefix`.
    pub list: &'static str,
    /// Line number in its list (1-based).
    pub line: usize,
    /// The rule.
    pub rule: String,
    /// What is wrong with it.
    pub error: String,
}

/// Rules compiled for use.
#[derive(Debug, Clone)]
pub struct Signer {
    irrelevant: Option<Regex>,
    prefix: Option<Regex>,
    max_frames: usize,
}

fn compile(list: &'static str, text: &str) -> Result<Option<Regex>, RuleError> {
    let mut parts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let rule = line.trim();
        if rule.is_empty() || rule.starts_with('#') {
            continue;
        }
        if let Err(e) = Regex::new(rule) {
            return Err(RuleError {
                list,
                line: i + 1,
                rule: rule.to_owned(),
                error: e.to_string(),
            });
        }
        parts.push(format!("(?:{rule})"));
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let whole = format!("^(?:{})$", parts.join("|"));
    Regex::new(&whole).map(Some).map_err(|e| RuleError {
        list,
        line: 0,
        rule: String::new(),
        error: e.to_string(),
    })
}

impl Signer {
    /// Compiles `rules`.
    ///
    /// # Errors
    /// A rule is not a valid regular expression.
    pub fn new(rules: &SignatureRules) -> Result<Signer, RuleError> {
        Ok(Signer {
            irrelevant: compile("irrelevant", &rules.irrelevant)?,
            prefix: compile("prefix", &rules.prefix)?,
            max_frames: rules.max_frames.max(1),
        })
    }

    /// The signature of a crashing thread whose frames, top first, normalize to `frames`
    /// (see [`normalize`]).
    pub fn sign(&self, frames: &[String]) -> String {
        let matches = |re: &Option<Regex>, f: &str| re.as_ref().is_some_and(|re| re.is_match(f));
        let mut kept: Vec<&str> = Vec::new();
        for frame in frames.iter().take(FRAMES_CONSIDERED) {
            if kept.is_empty() && matches(&self.irrelevant, frame) {
                continue;
            }
            kept.push(frame);
            if kept.len() >= self.max_frames || !matches(&self.prefix, frame) {
                break;
            }
        }
        if kept.is_empty() {
            return if frames.is_empty() {
                "EMPTY: no frame data available".to_owned()
            } else {
                "EMPTY: every frame is irrelevant".to_owned()
            };
        }
        let signature = kept.join(" | ");
        if signature.len() <= MAX_SIGNATURE {
            return signature;
        }
        let mut cut = MAX_SIGNATURE - 3;
        while !signature.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &signature[..cut])
    }
}

/// A frame as signatures see it: the function without its parameter list and with runs of
/// white space folded; a frame without a function is `module@0xoffset` (lower-case hex);
/// one without a module `@0xaddress`.
pub fn normalize(
    function: Option<&str>,
    module: Option<&str>,
    module_offset: Option<u64>,
    address: u64,
) -> String {
    match (function, module) {
        (Some(f), _) => strip_parameters(f),
        (None, Some(m)) => format!("{m}@{:#x}", module_offset.unwrap_or(0)),
        (None, None) => format!("@{address:#x}"),
    }
}

/// `ns::f(int, char*) const` → `ns::f`; template arguments stay (`std::vector<int>::at`).
fn strip_parameters(function: &str) -> String {
    let mut depth = 0i32;
    let mut end = function.len();
    for (i, c) in function.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            // `operator()` keeps its parentheses: they follow "operator" directly.
            '(' if depth == 0 && !function[..i].ends_with("operator") => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    function[..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frames(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn irrelevant_frames_are_skipped_and_prefixes_go_on() {
        let signer = Signer::new(&SignatureRules::default()).unwrap();
        assert_eq!(
            signer.sign(&frames(&[
                "KiUserExceptionDispatcher",
                "RaiseException",
                "_CxxThrowException",
                "app::Parser::fail",
                "main",
            ])),
            "app::Parser::fail"
        );
        assert_eq!(
            signer.sign(&frames(&[
                "RtlFreeHeap",
                "free",
                "app::Buffer::release",
                "main"
            ])),
            "RtlFreeHeap | free | app::Buffer::release"
        );
        assert_eq!(
            signer.sign(&frames(&["ntdll.dll@0x1a2b", "app.exe@0x4f00", "main"])),
            "ntdll.dll@0x1a2b | app.exe@0x4f00"
        );
        assert_eq!(signer.sign(&[]), "EMPTY: no frame data available");
        assert_eq!(
            signer.sign(&frames(&["RaiseException"])),
            "EMPTY: every frame is irrelevant"
        );
        // An irrelevant frame below a kept one stays.
        assert_eq!(
            signer.sign(&frames(&["malloc", "RaiseException", "main"])),
            "malloc | RaiseException"
        );
    }

    #[test]
    fn signatures_are_bounded() {
        let rules = SignatureRules {
            prefix: ".*".into(),
            max_frames: 3,
            ..SignatureRules::default()
        };
        let signer = Signer::new(&rules).unwrap();
        assert_eq!(signer.sign(&frames(&["a", "b", "c", "d"])), "a | b | c");
        let long = "x".repeat(300);
        let signed = signer.sign(&frames(&[&long]));
        assert_eq!(signed.len(), MAX_SIGNATURE);
        assert!(signed.ends_with("..."));
    }

    #[test]
    fn frames_are_normalized() {
        assert_eq!(
            normalize(Some("ns::f(int, char *) const"), Some("a.dll"), Some(5), 0),
            "ns::f"
        );
        assert_eq!(
            normalize(Some("std::vector<int>::at(unsigned int)"), None, None, 0),
            "std::vector<int>::at"
        );
        assert_eq!(
            normalize(Some("Foo::operator()(int)"), None, None, 0),
            "Foo::operator()"
        );
        assert_eq!(
            normalize(None, Some("app.exe"), Some(0x1a2b), 0),
            "app.exe@0x1a2b"
        );
        assert_eq!(normalize(None, None, None, 0xdead), "@0xdead");
    }

    #[test]
    fn a_bad_rule_is_named() {
        let rules = SignatureRules {
            prefix: "ok\n(unclosed\n".into(),
            ..SignatureRules::default()
        };
        let e = Signer::new(&rules).unwrap_err();
        assert_eq!((e.list, e.line), ("prefix", 2));
    }
}
