//! From a level-1 report to the bucket a CER 1.0 client would use on the share, and the
//! DumpFile path the client uploads the cab to.
//!
//! Rules, in order:
//! 1. `eventtype="BlueScreen"` (any case): the bucket `blue` (R2).
//! 2. An application fault whose signature names the application, its version, the faulting
//!    module, its version and the offset: the R1 subpath `App\AppVer\Mod\ModVer\Offset`, as
//!    a CER 1.0 client writes it, so one crash reported both ways is one bucket. The five
//!    values come from parameters named (any case) `Application Name`/`AppName`,
//!    `Application Version`/`AppVer`, `Fault Module Name`/`ModName`,
//!    `Fault Module Version`/`ModVer`, `Exception Offset`/`Offset`; failing that, for
//!    `APPCRASH` by position (P1, P2, P4, P5, P8) and for `BEX`/`BEX64` (P1, P2, P4, P5, P7).
//!    The offset is rendered as R1 says: hex without `0x`, lowercase, zero-padded to 8
//!    digits (16 when it has more than 8). The result must fit R1 (lengths, offset);
//!    otherwise rule 3 applies.
//! 3. Anything else: `<eventtype>\<p1>\<p2>\...` with the PARAMETER values in document order.
//!
//! Every component is made R3-safe by [`sanitize_component`], and the subpath is kept short
//! enough that `\cabs\<sub>\<guid>.cab` fits in 260 characters (R4) by [`fit_path`].

use cerfs_db::ParamKind;
use cerfs_fs_core::share_path::{self, is_reserved, FORBIDDEN_CHARS};
use sha2::{Digest, Sha256};

use crate::report::{WerReport, WerReportExt};

/// The longest subpath (as `\c1\c2...`) for which `\cabs\<sub>\<36-char guid>.cab` stays
/// within the 260 characters a Windows client accepts (R4).
pub const MAX_SUBPATH_LEN: usize = share_path::MAX_CLIENT_PATH - "\\cabs".len() - 41;

/// Components longer than this are shortened (with a hash, so they stay distinct).
pub const MAX_COMPONENT_LEN: usize = 64;

/// What kind of report a bucket was mapped from; decides the DumpFile folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappedKind {
    /// A kernel fault: `blue`.
    Blue,
    /// An application fault with an R1 signature.
    App,
    /// Any other event.
    Generic,
}

/// The bucket of a report: its kind and its subpath components (R3-safe, R4-sized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketMapping {
    /// What it was mapped from.
    pub kind: MappedKind,
    /// The subpath components (`["blue"]`, `["App", "1.0", "Mod", "1.0", "0000abcd"]`).
    pub components: Vec<String>,
}

impl BucketMapping {
    /// The subpath with backslashes, as crash.log and the store write it.
    pub fn subpath(&self) -> String {
        self.components.join("\\")
    }

    /// The DumpFile url-path for an upload with this `guid` (lowercase, hyphenated):
    ///
    /// - kernel faults: `\PersistedCabs\Blue\<guid>.cab` ([MS-CER2] 4.3);
    /// - application faults: `\PersistedCabs\App\<App>\<AppVer>\<Mod>\<ModVer>\<Offset>\<guid>.cab`;
    /// - other events: `\PersistedCabs\Generic\<eventtype>\<p1>\<p2>...\<guid>` (4.4).
    ///
    /// Components are made URL-safe: every character but `A-Z a-z 0-9 . _ ~ -` becomes `_`
    /// (the path is a ticket: the guid makes it unique, the report row knows the bucket).
    pub fn dump_path(&self, guid: &str) -> String {
        let (folder, components, ext): (&str, &[String], &str) = match self.kind {
            MappedKind::Blue => ("Blue", &[], ".cab"),
            MappedKind::App => ("App", &self.components, ".cab"),
            MappedKind::Generic => ("Generic", &self.components, ""),
        };
        let mut path = format!("\\PersistedCabs\\{folder}");
        for c in components {
            path.push('\\');
            path.push_str(&url_safe(c));
        }
        path.push('\\');
        path.push_str(guid);
        path.push_str(ext);
        path
    }
}

/// The name of the cab under `cabs\<sub>\` for an upload with this `guid`.
pub fn cab_name(guid: &str) -> String {
    format!("{guid}.cab")
}

/// Maps a report to its bucket (see the module documentation).
pub fn map_report(report: &WerReport) -> BucketMapping {
    if report.is_kernel_fault() {
        return BucketMapping {
            kind: MappedKind::Blue,
            components: vec!["blue".into()],
        };
    }
    if let Some(components) = app_signature(report) {
        return BucketMapping {
            kind: MappedKind::App,
            components,
        };
    }
    let raw: Vec<&str> = std::iter::once(report.event_type.as_str())
        .chain(report.primary_values())
        .collect();
    BucketMapping {
        kind: MappedKind::Generic,
        components: fit_path(raw.iter().map(|c| sanitize_component(c)).collect()),
    }
}

/// The five R1 components of an application fault, if the report carries them and they
/// fit R1 once made R3-safe.
fn app_signature(report: &WerReport) -> Option<Vec<String>> {
    let named = |names: &[&str]| {
        report
            .params
            .iter()
            .find(|p| names.iter().any(|n| p.name.trim().eq_ignore_ascii_case(n)))
            .map(|p| p.value.as_str())
    };
    let by_name = [
        named(&["Application Name", "AppName", "App Name"]),
        named(&["Application Version", "AppVer", "App Version"]),
        named(&["Fault Module Name", "ModName", "Module Name"]),
        named(&["Fault Module Version", "ModVer", "Module Version"]),
        named(&["Exception Offset", "Offset", "Fault Offset"]),
    ];
    let values: [&str; 5] = match by_name {
        [Some(a), Some(b), Some(c), Some(d), Some(e)] => [a, b, c, d, e],
        _ => {
            let positions: [usize; 5] = if report.event_type.eq_ignore_ascii_case("APPCRASH") {
                [0, 1, 3, 4, 7]
            } else if report.event_type.eq_ignore_ascii_case("BEX")
                || report.event_type.eq_ignore_ascii_case("BEX64")
            {
                [0, 1, 3, 4, 6]
            } else {
                return None;
            };
            let primary: Vec<&str> = report
                .params
                .iter()
                .filter(|p| p.kind == ParamKind::Primary)
                .map(|p| p.value.as_str())
                .collect();
            let mut out = [""; 5];
            for (slot, at) in out.iter_mut().zip(positions) {
                *slot = primary.get(at)?;
            }
            out
        }
    };
    let offset = render_offset(values[4])?;
    let components = vec![
        sanitize_component(values[0].trim()),
        sanitize_component(values[1].trim()),
        sanitize_component(values[2].trim()),
        sanitize_component(values[3].trim()),
        offset,
    ];
    let refs: Vec<&str> = components.iter().map(String::as_str).collect();
    (share_path::bucket_key(&refs).kind == "app").then_some(components)
}

/// An offset as a CER 1.0 client writes it (R1): hex digits without `0x`, lowercase,
/// zero-padded to 8 digits, or to 16 when it needs more than 8. `None` when it is not hex
/// or needs more than 16 digits.
pub fn render_offset(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digits = v.to_ascii_lowercase();
    if digits.len() <= 8 {
        return Some(format!("{digits:0>8}"));
    }
    let significant = digits.trim_start_matches('0');
    (significant.len() <= 16).then(|| format!("{significant:0>16}"))
}

/// Makes one value a name R3 accepts, deterministically and reversibly:
///
/// - `%` and every byte R3 refuses (non-ASCII, control characters, `< > : " / \ | ? *`)
///   become `%XX` (uppercase hex of the UTF-8 byte);
/// - a trailing `.` or space becomes `%2E` / `%20` (Windows would strip it);
/// - a reserved device name (CON, NUL.txt, COM1, ...) has its first character escaped;
/// - the empty value becomes `%` (no escaped text is a lone `%`).
///
/// Values that are already valid names (and hold no `%`) come out unchanged.
pub fn sanitize_component(value: &str) -> String {
    if value.is_empty() {
        return "%".into();
    }
    let escape = |b: u8| format!("%{b:02X}");
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b == b'%' || !b.is_ascii() || b.is_ascii_control() || FORBIDDEN_CHARS.contains(&b) {
            out.push_str(&escape(b));
        } else {
            out.push(char::from(b));
        }
    }
    if out.ends_with(['.', ' ']) {
        if let Some(last) = out.pop() {
            out.push_str(&escape(last as u8));
        }
    }
    if is_reserved(&out) {
        let first = out.remove(0);
        out.insert_str(0, &escape(first as u8));
    }
    out
}

/// First `n` hex digits of the SHA-256 of `text`.
fn short_hash(text: &str, n: usize) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex.truncate(n);
    hex
}

/// Keeps a generic subpath within R4: a component over [`MAX_COMPONENT_LEN`] characters
/// keeps its first 55 and gets `~` plus 8 hex digits of its hash; if the whole is still
/// longer than [`MAX_SUBPATH_LEN`], the trailing components that do not fit are replaced
/// by one `~` plus 16 hex digits of the hash of the full subpath. Both keep distinct
/// signatures apart.
pub fn fit_path(components: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = components
        .into_iter()
        .map(|c| {
            if c.len() <= MAX_COMPONENT_LEN {
                c
            } else {
                let keep = c.get(..55).unwrap_or(&c);
                format!("{keep}~{}", short_hash(&c, 8))
            }
        })
        .collect();
    let len = |cs: &[String]| share_path::client_path_len(cs.iter().map(String::as_str));
    if len(&out) <= MAX_SUBPATH_LEN {
        return out;
    }
    let tail = format!("~{}", short_hash(&out.join("\\"), 16));
    while !out.is_empty() && len(&out) + tail.len() + 1 > MAX_SUBPATH_LEN {
        out.pop();
    }
    out.push(tail);
    out
}

/// A component as it appears in a DumpFile path: URL-safe characters only.
fn url_safe(component: &str) -> String {
    let s: String = component
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.as_str() {
        "." | ".." => s.replace('.', "_"),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn offsets_render_like_a_cer_1_0_client() {
        assert_eq!(render_offset("0001b0a9").as_deref(), Some("0001b0a9"));
        assert_eq!(render_offset("0x0001B0A9").as_deref(), Some("0001b0a9"));
        assert_eq!(render_offset("1b0a9").as_deref(), Some("0001b0a9"));
        assert_eq!(render_offset("0").as_deref(), Some("00000000"));
        assert_eq!(
            render_offset("000000000001b0a9").as_deref(),
            Some("000000000001b0a9")
        );
        assert_eq!(
            render_offset("123456789").as_deref(),
            Some("0000000123456789")
        );
        assert_eq!(
            render_offset("00000000000000000001b0a9").as_deref(),
            Some("000000000001b0a9")
        );
        assert_eq!(render_offset("12345678123456781").as_deref(), None);
        assert_eq!(render_offset("").as_deref(), None);
        assert_eq!(render_offset("0x").as_deref(), None);
        assert_eq!(render_offset("12g4").as_deref(), None);
        assert_eq!(render_offset("-1").as_deref(), None);
    }

    #[test]
    fn sanitized_components_pass_r3_and_stay_distinct() {
        let cases = [
            ("Test.exe", "Test.exe"),
            ("1.0.0.0", "1.0.0.0"),
            ("a:b", "a%3Ab"),
            ("a*b", "a%2Ab"),
            ("a%b", "a%25b"),
            ("100%", "100%25"),
            ("caf\u{e9}", "caf%C3%A9"),
            ("tab\there", "tab%09here"),
            ("x/y\\z", "x%2Fy%5Cz"),
            ("ends.", "ends%2E"),
            ("ends ", "ends%20"),
            (".", "%2E"),
            ("..", ".%2E"),
            ("CON", "%43ON"),
            ("nul.txt", "%6Eul.txt"),
            ("COM1", "%43OM1"),
            ("COM10", "COM10"),
            ("", "%"),
        ];
        let mut seen = std::collections::HashSet::new();
        for (raw, want) in cases {
            let got = sanitize_component(raw);
            assert_eq!(got, want, "{raw:?}");
            assert!(
                share_path::check_component(got.as_bytes()).is_ok(),
                "{raw:?} -> {got:?}"
            );
            assert!(seen.insert(got), "{raw:?} collides");
        }
    }

    #[test]
    fn long_subpaths_are_folded_to_fit_r4() {
        let long: Vec<String> = (0..40).map(|i| format!("param-{i:02}-xxxxxxxx")).collect();
        let fitted = fit_path(long.clone());
        let len = share_path::client_path_len(fitted.iter().map(String::as_str));
        assert!(len <= MAX_SUBPATH_LEN, "{len}");
        assert_eq!(fitted[0], long[0]);
        assert!(fitted.last().unwrap().starts_with('~'));
        let mut other = long.clone();
        other[39] = "different".into();
        assert_ne!(fit_path(other), fitted, "distinct tails stay distinct");
        let huge = fit_path(vec!["e".into(), "v".repeat(300)]);
        assert_eq!(huge[1].len(), 64);
        assert!(huge[1].starts_with(&"v".repeat(55)));
        for c in &huge {
            assert!(share_path::check_component(c.as_bytes()).is_ok(), "{c}");
        }
        let short = vec!["MikeTest".to_string(), "1000".into()];
        assert_eq!(fit_path(short.clone()), short);
    }

    #[test]
    fn dump_paths_are_url_safe() {
        let m = BucketMapping {
            kind: MappedKind::Generic,
            components: vec!["Mike Test".into(), "a%3Ab".into(), "..".into()],
        };
        assert_eq!(
            m.dump_path("g"),
            r"\PersistedCabs\Generic\Mike_Test\a_3Ab\__\g"
        );
        let blue = BucketMapping {
            kind: MappedKind::Blue,
            components: vec!["blue".into()],
        };
        assert_eq!(blue.dump_path("g"), r"\PersistedCabs\Blue\g.cab");
    }
}
