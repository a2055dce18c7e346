//! What the console's detail pages show (one cab: members, minidump facts, the crashing
//! thread's stack, its text files; one signature: trend, buckets, cabs, a stack; search
//! over the cabs' text, crashing modules, exception codes and signatures), and how a
//! search's words are read, the same on both backends.

use crate::console::{count, CabSummary, Page};
use crate::{MemberRow, MinidumpRow, QueryError};

/// Frames of a stack the console shows at most.
pub const STACK_FRAMES: u32 = 40;

/// What the indexer read in a minidump member, and its signature once walked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DumpFacts {
    /// The indexer's row.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub facts: MinidumpRow,
    /// Its signature, once walked.
    pub signature: Option<String>,
}

/// A frame of a walked stack.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct StackFrame {
    /// 0 is the innermost.
    pub frame: u32,
    /// Module, function and source position when symbols had them.
    pub module: Option<String>,
    /// The function.
    pub function: Option<String>,
    /// The source file.
    pub file: Option<String>,
    /// Its line.
    pub line: Option<u32>,
    /// Offset in the module (hex) when there is no function.
    pub module_offset: Option<String>,
    /// How the walker found it (context, cfi, frame_pointer, scan ...).
    pub trust: String,
}

/// A text member's beginning.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TextExcerpt {
    /// The member.
    pub member: String,
    /// Its first 4,000 characters.
    pub text: String,
    /// Whether there is more.
    pub more: bool,
}

/// One cab with what the indexer and the walker found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CabDetail {
    /// The cab.
    pub cab: CabSummary,
    /// Why indexing failed or was partial.
    pub index_error: Option<String>,
    /// Its members, in directory order.
    pub members: Vec<MemberRow>,
    /// Its minidumps.
    pub dumps: Vec<DumpFacts>,
    /// The crashing thread of its first walked dump, innermost first.
    pub stack: Vec<StackFrame>,
    /// Its text members.
    pub texts: Vec<TextExcerpt>,
}

/// A bucket a signature occurs in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SignatureBucket {
    /// The bucket.
    pub bucket_id: i64,
    /// Its subpath.
    pub subpath: String,
    /// Walked dumps with the signature in it.
    pub crashes: u64,
}

/// One signature's page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SignatureDetail {
    /// The signature.
    pub signature: String,
    /// Walked dumps with it, all time.
    pub crashes: u64,
    /// Per day over the window asked for, oldest first.
    pub trend: Vec<u64>,
    /// The buckets it occurs in, most crashes first (at most 100).
    pub buckets: Vec<SignatureBucket>,
    /// Its newest cabs (at most 20).
    pub cabs: Vec<CabSummary>,
    /// The crashing thread of its newest walked dump.
    pub stack: Vec<StackFrame>,
}

/// Where a search found something in a cab.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SearchHit {
    /// The cab.
    pub cab: CabSummary,
    /// The member.
    pub member: String,
    /// text (a text member), module (the crashing module) or exception (its code).
    pub found_in: String,
    /// The words around the match (text), or the matching value.
    pub excerpt: String,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SearchResults {
    /// Cabs whose text members hold every word.
    pub texts: Page<SearchHit>,
    /// Dumps whose crashing module or exception code is the query.
    pub dumps: Page<SearchHit>,
    /// Signatures containing the query (at most 20).
    pub signatures: Vec<String>,
}

/// The page of search hits `found` (cab, member, excerpt) of the cabs that `cab` still
/// finds on the share, of `total` in all.
pub(crate) fn search_page(
    total: i64,
    found: Vec<(i64, String, String)>,
    found_in: &str,
    cab: impl Fn(i64) -> Result<Option<CabSummary>, QueryError>,
) -> Result<Page<SearchHit>, QueryError> {
    let mut items = Vec::with_capacity(found.len());
    for (cab_id, member, excerpt) in found {
        if let Some(cab) = cab(cab_id)? {
            items.push(SearchHit {
                cab,
                member,
                found_in: found_in.to_owned(),
                excerpt,
            });
        }
    }
    Ok(Page {
        total: count(total),
        items,
    })
}

/// The words of `q` as an FTS5 query: each quoted, all required (no FTS syntax reaches
/// SQLite, so no query is a syntax error).
pub(crate) fn fts_query(q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// An exception code as the index writes it (`0xc0000005`), from `c0000005`,
/// `0xC0000005` and the like.
pub(crate) fn exception_code(q: &str) -> Option<String> {
    let hex = q.trim().trim_start_matches("0x").trim_start_matches("0X");
    (hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("0x{}", hex.to_ascii_lowercase()))
}

pub(crate) fn like_pattern(q: &str) -> String {
    format!(
        "%{}%",
        q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_become_quoted_fts_terms() {
        assert_eq!(fts_query("  "), None);
        assert_eq!(
            fts_query("keyboard \"driver OR"),
            Some("\"keyboard\" \"\"\"driver\" \"OR\"".into())
        );
    }

    #[test]
    fn exception_codes_are_recognised_in_their_usual_spellings() {
        assert_eq!(exception_code("C0000005"), Some("0xc0000005".into()));
        assert_eq!(exception_code("0xc0000005"), Some("0xc0000005".into()));
        assert_eq!(exception_code("ntdll.dll"), None);
        assert_eq!(exception_code("0xc00000"), None);
    }
}
