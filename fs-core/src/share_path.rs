//! Share paths: R3 name rules, the R4 length limit and bucket subpaths (R1, R2).

use cerfs_db::BucketKey;

/// Longest path a Windows client accepts, counted as `\cabs\...` under the share root (R4).
pub const MAX_CLIENT_PATH: usize = 260;

/// Characters Windows forbids in a name (R3, [MSDN-FILE]); control characters are checked apart.
pub const FORBIDDEN_CHARS: &[u8] = b"<>:\"/\\|?*";

/// Device names Windows reserves, alone or with any extension (R3).
pub const RESERVED_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Why a path component was refused (R3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty component.
    #[error("empty name")]
    Empty,
    /// `.` or `..`, which name the directory itself or its parent.
    #[error("`.` and `..` are not names")]
    Dot,
    /// A byte outside ASCII (R3: CER paths are ASCII only).
    #[error("byte 0x{0:02X} is not ASCII (CER names are ASCII only)")]
    NotAscii(u8),
    /// A control character (0x00-0x1F or 0x7F), which Windows forbids in names.
    #[error("control character 0x{0:02X} is not allowed in a name")]
    ControlChar(u8),
    /// One of `< > : " / \ | ? *`, which Windows forbids in names.
    #[error("character `{0}` is not allowed in a name")]
    ForbiddenChar(char),
    /// A reserved device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9), possibly with an extension.
    #[error("`{0}` is a reserved device name on Windows")]
    ReservedName(String),
    /// A name ending in `.` or space, which Windows strips, so a client could not reach it.
    #[error("a name must not end with `.` or a space")]
    TrailingDotOrSpace,
}

/// Checks one component against R3 and returns it as text.
///
/// Besides R3 this refuses `.`/`..` and names ending in a dot or space (Windows silently
/// strips those, so the client would address another name).
pub fn check_component(name: &[u8]) -> Result<&str, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == b"." || name == b".." {
        return Err(NameError::Dot);
    }
    for &b in name {
        if !b.is_ascii() {
            return Err(NameError::NotAscii(b));
        }
        if b.is_ascii_control() {
            return Err(NameError::ControlChar(b));
        }
        if FORBIDDEN_CHARS.contains(&b) {
            return Err(NameError::ForbiddenChar(char::from(b)));
        }
    }
    // All ASCII by now, so this cannot fail; map rather than unwrap all the same.
    let text = std::str::from_utf8(name).map_err(|_| NameError::NotAscii(0x80))?;
    if is_reserved(text) {
        return Err(NameError::ReservedName(text.to_owned()));
    }
    if text.ends_with(['.', ' ']) {
        return Err(NameError::TrailingDotOrSpace);
    }
    Ok(text)
}

/// Whether Windows treats `name` as a device: the part before the first dot (trailing
/// spaces ignored, as Windows does) is a reserved name in any case.
pub fn is_reserved(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(base))
}

/// Length of the path as the client sees it: `\` before each component.
pub fn client_path_len<'a>(components: impl IntoIterator<Item = &'a str>) -> usize {
    components.into_iter().map(|c| c.len() + 1).sum()
}

/// Whether `s` has between `min` and `max` characters.
fn len_in(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.chars().count())
}

/// R1: an offset is hex digits without `0x`, 8 (32-bit) or 16 (64-bit) of them.
fn is_offset(s: &str) -> bool {
    matches!(s.len(), 8 | 16) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The bucket a subpath (components below `cabs/`, `status/` or `counts/`) names.
///
/// `blue` (R2 kernel fault) and `shutdown` (R2) match in any case; five components that fit
/// R1 make an `app` bucket; anything else is `generic`. The subpath keeps the text as given.
pub fn bucket_key(components: &[&str]) -> BucketKey {
    let subpath = components.join("\\");
    let (kind, app) = match components {
        [one] if one.eq_ignore_ascii_case("blue") => ("blue", None),
        [one] if one.eq_ignore_ascii_case("shutdown") => ("shutdown", None),
        [app, app_ver, module, mod_ver, offset]
            if len_in(app, 1, 64)
                && len_in(app_ver, 1, 24)
                && len_in(module, 1, 64)
                && len_in(mod_ver, 1, 24)
                && is_offset(offset) =>
        {
            let parts = [app, app_ver, module, mod_ver, offset].map(|s| (*s).to_owned());
            ("app", Some(parts))
        }
        _ => ("generic", None),
    };
    BucketKey {
        subpath,
        kind: kind.into(),
        app,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_accepted() {
        for name in [
            "TestApplication",
            "1.0.0.0",
            "00000000",
            "d5je031w.cab",
            "hits.log",
            "blue",
            "a b",
            "x-y_z~!@#$%^&()+=,;'[]{}`",
            "CONSOLE",
            "COM10",
            "LPT0x",
            "nul_",
            ".hidden",
            "a..b",
        ] {
            assert_eq!(check_component(name.as_bytes()), Ok(name), "{name}");
        }
    }

    #[test]
    fn empty_and_dots_refused() {
        assert_eq!(check_component(b""), Err(NameError::Empty));
        assert_eq!(check_component(b"."), Err(NameError::Dot));
        assert_eq!(check_component(b".."), Err(NameError::Dot));
    }

    #[test]
    fn non_ascii_refused() {
        assert_eq!(
            check_component("caf\u{e9}".as_bytes()),
            Err(NameError::NotAscii(0xC3))
        );
        assert_eq!(check_component(b"caf\xe9"), Err(NameError::NotAscii(0xE9)));
        assert_eq!(check_component(b"\xff"), Err(NameError::NotAscii(0xFF)));
    }

    #[test]
    fn control_chars_refused() {
        for b in (0u8..0x20).chain([0x7F]) {
            let name = [b'a', b, b'b'];
            assert_eq!(check_component(&name), Err(NameError::ControlChar(b)));
        }
    }

    #[test]
    fn forbidden_chars_refused() {
        for &b in FORBIDDEN_CHARS {
            let name = [b'x', b];
            assert_eq!(
                check_component(&name),
                Err(NameError::ForbiddenChar(char::from(b)))
            );
        }
    }

    #[test]
    fn reserved_names_refused_in_any_case_and_with_extension() {
        for name in [
            "CON", "con", "Prn", "aux", "NUL", "nul.txt", "COM1", "COM1.cab", "com9", "LPT1",
            "Lpt9.x.y", "NUL.", "nul .txt", "CON..",
        ] {
            assert!(
                matches!(check_component(name.as_bytes()), Err(NameError::ReservedName(ref n)) if n == name),
                "{name}"
            );
        }
    }

    #[test]
    fn trailing_dot_or_space_refused() {
        assert_eq!(check_component(b"abc."), Err(NameError::TrailingDotOrSpace));
        assert_eq!(check_component(b"abc "), Err(NameError::TrailingDotOrSpace));
        assert_eq!(check_component(b"..."), Err(NameError::TrailingDotOrSpace));
        assert_eq!(check_component(b" "), Err(NameError::TrailingDotOrSpace));
    }

    #[test]
    fn messages_say_what_is_wrong() {
        assert_eq!(
            NameError::ForbiddenChar('?').to_string(),
            "character `?` is not allowed in a name"
        );
        assert_eq!(
            NameError::NotAscii(0xE9).to_string(),
            "byte 0xE9 is not ASCII (CER names are ASCII only)"
        );
        assert_eq!(
            NameError::ReservedName("nul.txt".into()).to_string(),
            "`nul.txt` is a reserved device name on Windows"
        );
    }

    #[test]
    fn client_path_len_counts_a_backslash_per_component() {
        assert_eq!(client_path_len([]), 0);
        assert_eq!(client_path_len(["cabs", "blue", "x.cab"]), 16);
        let app = [
            "counts",
            "TestApplication",
            "1.0.0.0",
            "TestModule",
            "1.0.0.0",
            "00000000",
            "count.txt",
        ];
        let windows = r"\counts\TestApplication\1.0.0.0\TestModule\1.0.0.0\00000000\count.txt";
        assert_eq!(client_path_len(app), windows.len());
    }

    #[test]
    fn bucket_key_app() {
        let k = bucket_key(&[
            "TestApplication",
            "1.0.0.0",
            "TestModule",
            "1.0.0.0",
            "00000000",
        ]);
        assert_eq!(k.kind, "app");
        assert_eq!(
            k.subpath,
            r"TestApplication\1.0.0.0\TestModule\1.0.0.0\00000000"
        );
        assert_eq!(
            k.app,
            Some(
                [
                    "TestApplication",
                    "1.0.0.0",
                    "TestModule",
                    "1.0.0.0",
                    "00000000"
                ]
                .map(String::from)
            )
        );
        let k = bucket_key(&["a.exe", "1", "b.dll", "2", "0000abcd12345678"]);
        assert_eq!(k.kind, "app");
        let k = bucket_key(&["a.exe", "1", "b.dll", "2", "0000ABCD"]);
        assert_eq!(k.kind, "app");
    }

    #[test]
    fn bucket_key_app_limits() {
        let a64 = "a".repeat(64);
        let a65 = "a".repeat(65);
        let v24 = "1".repeat(24);
        let v25 = "1".repeat(25);
        let kind = |c: [&str; 5]| bucket_key(&c).kind;
        assert_eq!(kind([&a64, &v24, &a64, &v24, "00000000"]), "app");
        assert_eq!(kind([&a65, "1", "m", "1", "00000000"]), "generic");
        assert_eq!(kind(["a", &v25, "m", "1", "00000000"]), "generic");
        assert_eq!(kind(["a", "1", &a65, "1", "00000000"]), "generic");
        assert_eq!(kind(["a", "1", "m", &v25, "00000000"]), "generic");
        // Offsets: full width only, hex only, no 0x.
        assert_eq!(kind(["a", "1", "m", "1", "0000000"]), "generic");
        assert_eq!(kind(["a", "1", "m", "1", "000000000"]), "generic");
        assert_eq!(kind(["a", "1", "m", "1", "0x000000"]), "generic");
        assert_eq!(kind(["a", "1", "m", "1", "0000000g"]), "generic");
        assert_eq!(kind(["a", "1", "m", "1", "000000000000000"]), "generic");
        assert_eq!(kind(["", "1", "m", "1", "00000000"]), "generic");
        assert!(bucket_key(&["a", "1", "m", "1", "0000000g"]).app.is_none());
    }

    #[test]
    fn bucket_key_blue_shutdown_generic() {
        let k = bucket_key(&["blue"]);
        assert_eq!((k.kind.as_str(), k.subpath.as_str()), ("blue", "blue"));
        assert_eq!(k.app, None);
        let k = bucket_key(&["Blue"]);
        assert_eq!((k.kind.as_str(), k.subpath.as_str()), ("blue", "Blue"));
        let k = bucket_key(&["SHUTDOWN"]);
        assert_eq!(
            (k.kind.as_str(), k.subpath.as_str()),
            ("shutdown", "SHUTDOWN")
        );
        let k = bucket_key(&["blue", "x"]);
        assert_eq!(
            (k.kind.as_str(), k.subpath.as_str()),
            ("generic", r"blue\x")
        );
        let k = bucket_key(&["blues"]);
        assert_eq!(k.kind, "generic");
        let k = bucket_key(&["a", "b", "c"]);
        assert_eq!((k.kind.as_str(), k.subpath.as_str()), ("generic", r"a\b\c"));
        let k = bucket_key(&[]);
        assert_eq!((k.kind.as_str(), k.subpath.as_str()), ("generic", ""));
    }
}
