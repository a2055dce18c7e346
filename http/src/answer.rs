//! The server's answer to a level-1 report ([MS-CER2] 2.2.2): ANSI text, one `Name=Value`
//! line each, CRLF line ends, any order. Rendered without spaces around `=` (the ABNF form);
//! [`Level1Answer::parse`] also accepts the spaced form the examples show.

use cerfs_fs_core::settings_file::{encode_ansi, parse_bool};

/// What the server tells the client after a level-1 report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Level1Answer {
    /// `Response=`: `1` or a URL to show the user.
    pub response: Option<String>,
    /// `Bucket=`: the bucket's id (positive).
    pub bucket: u64,
    /// `BucketTable=`: the category of bucket ids (positive).
    pub bucket_table: u64,
    /// `iData=`: whether the client must upload the cab (level 2).
    pub idata: bool,
    /// `MemoryDump=`: add process memory to the cab.
    pub memory_dump: Option<bool>,
    /// `RegKey=`: `;`-separated registry keys to collect.
    pub reg_key: Option<String>,
    /// `fDoc=`: add the open documents.
    pub fdoc: Option<bool>,
    /// `WQL=`: `;`-separated WMI queries to run.
    pub wql: Option<String>,
    /// `GetFile=`: `;`-separated files to collect.
    pub get_file: Option<String>,
    /// `GetFileVersion=`: `;`-separated files whose version to collect.
    pub get_file_version: Option<String>,
    /// `DumpFile=`: the url-path to PUT the cab to.
    pub dump_file: Option<String>,
    /// `RegTree=`: `;`-separated registry trees to collect.
    pub reg_tree: Option<String>,
}

/// Why an answer does not follow the 2.2.2 grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// A line does not end in CRLF.
    #[error("line {0} does not end in CRLF")]
    NoCrlf(usize),
    /// A line has no `=`.
    #[error("line {0} has no `=`")]
    NoEquals(usize),
    /// A name the grammar does not have (names are case-sensitive).
    #[error("line {line}: unknown name {name:?}")]
    UnknownName {
        /// 1-based line.
        line: usize,
        /// The name.
        name: String,
    },
    /// A name given twice.
    #[error("line {line}: {name} given twice")]
    Duplicate {
        /// 1-based line.
        line: usize,
        /// The name.
        name: &'static str,
    },
    /// A value that does not fit its name's grammar.
    #[error("line {line}: bad value {value:?} for {name}")]
    BadValue {
        /// 1-based line.
        line: usize,
        /// The name.
        name: &'static str,
        /// The value.
        value: String,
    },
    /// No `Bucket=` line (this server always sends one; the grammar makes it optional).
    #[error("no Bucket= line")]
    NoBucket,
}

/// A positive decimal without leading zero (`%x31-39 *DIGIT`).
fn positive(v: &str) -> Option<u64> {
    let first = v.bytes().next()?;
    if !(b'1'..=b'9').contains(&first) || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// `"0"` / `"1"`.
fn zero_one(v: &str) -> Option<bool> {
    match v {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// `item (";" item)*` with non-empty items.
fn is_list(v: &str) -> bool {
    !v.is_empty() && v.split(';').all(|item| !item.is_empty())
}

/// A list from settings as the answer carries it: one trailing `;` (which status.txt
/// allows for RegKey, GetFile and GetFileVersion) dropped.
fn answer_list(v: &str) -> Option<String> {
    let v = v.strip_suffix(';').unwrap_or(v);
    is_list(v).then(|| v.to_owned())
}

impl Level1Answer {
    /// Fills the data requests and `Response=` from a bucket's effective settings
    /// (canonical names and values, status.txt over policy.txt). Data requests are only sent
    /// with `iData=1` (they say what to put in the cab); `NoFileCollection=YES` drops
    /// GetFile and GetFileVersion; `NoExternalURL=YES` drops a URL Response (`1` stays).
    pub fn apply_settings(&mut self, settings: &[(String, String)]) {
        let get = |k: &str| {
            settings
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let flag = |k: &str| get(k).and_then(parse_bool);
        self.response = get("Response")
            .filter(|v| !v.is_empty() && !v.contains(['\r', '\n']))
            .filter(|v| *v == "1" || flag("NoExternalURL") != Some(true))
            .map(str::to_owned);
        if !self.idata {
            return;
        }
        self.memory_dump = flag("MemoryDump");
        self.fdoc = flag("fDoc");
        self.reg_key = get("RegKey").and_then(answer_list);
        self.wql = get("WQL").and_then(answer_list);
        self.reg_tree = get("RegTree").and_then(answer_list);
        if flag("NoFileCollection") != Some(true) {
            self.get_file = get("GetFile").and_then(answer_list);
            self.get_file_version = get("GetFileVersion").and_then(answer_list);
        }
    }

    /// The answer as ANSI bytes (code page 1252), CRLF lines, in the ABNF's order.
    pub fn render(&self) -> Vec<u8> {
        let mut text = String::new();
        let mut line = |name: &str, value: &str| {
            text.push_str(name);
            text.push('=');
            text.push_str(value);
            text.push_str("\r\n");
        };
        let bit = |b: bool| if b { "1" } else { "0" };
        if let Some(r) = &self.response {
            line("Response", r);
        }
        line("Bucket", &self.bucket.to_string());
        line("BucketTable", &self.bucket_table.to_string());
        line("iData", bit(self.idata));
        if let Some(m) = self.memory_dump {
            line("MemoryDump", bit(m));
        }
        if let Some(v) = &self.reg_key {
            line("RegKey", v);
        }
        if let Some(f) = self.fdoc {
            line("fDoc", bit(f));
        }
        if let Some(v) = &self.wql {
            line("WQL", v);
        }
        if let Some(v) = &self.get_file {
            line("GetFile", v);
        }
        if let Some(v) = &self.get_file_version {
            line("GetFileVersion", v);
        }
        if let Some(v) = &self.dump_file {
            line("DumpFile", v);
        }
        if let Some(v) = &self.reg_tree {
            line("RegTree", v);
        }
        encode_ansi(&text)
    }

    /// Parses an answer under the 2.2.2 grammar: names case-sensitive, each at most once,
    /// every line ending in CRLF, values per their rule (`Bucket`/`BucketTable` positive,
    /// `iData`/`MemoryDump`/`fDoc` 0 or 1, lists of non-empty items). Spaces around `=` are
    /// accepted (the examples have them). `Bucket` is required.
    pub fn parse(bytes: &[u8]) -> Result<Level1Answer, AnswerError> {
        let text = cerfs_fs_core::settings_file::decode_ansi(bytes);
        let mut answer = Level1Answer::default();
        let mut seen: Vec<&'static str> = Vec::new();
        let mut rest = text.as_str();
        let mut n = 0;
        while !rest.is_empty() {
            n += 1;
            let (raw, after) = rest.split_once("\r\n").ok_or(AnswerError::NoCrlf(n))?;
            rest = after;
            if raw.contains(['\r', '\n']) {
                return Err(AnswerError::NoCrlf(n));
            }
            let (name, value) = raw.split_once('=').ok_or(AnswerError::NoEquals(n))?;
            let (name, value) = (name.trim_end_matches(' '), value.trim_start_matches(' '));
            const NAMES: [&str; 12] = [
                "Response",
                "Bucket",
                "BucketTable",
                "iData",
                "MemoryDump",
                "RegKey",
                "fDoc",
                "WQL",
                "GetFile",
                "GetFileVersion",
                "DumpFile",
                "RegTree",
            ];
            let Some(&name) = NAMES.iter().find(|k| **k == name) else {
                return Err(AnswerError::UnknownName {
                    line: n,
                    name: name.to_owned(),
                });
            };
            if seen.contains(&name) {
                return Err(AnswerError::Duplicate { line: n, name });
            }
            seen.push(name);
            let bad = || AnswerError::BadValue {
                line: n,
                name,
                value: value.to_owned(),
            };
            let list = || is_list(value).then(|| value.to_owned()).ok_or_else(bad);
            match name {
                "Response" => {
                    if value.is_empty() {
                        return Err(bad());
                    }
                    answer.response = Some(value.to_owned());
                }
                "Bucket" => answer.bucket = positive(value).ok_or_else(bad)?,
                "BucketTable" => answer.bucket_table = positive(value).ok_or_else(bad)?,
                "iData" => answer.idata = zero_one(value).ok_or_else(bad)?,
                "MemoryDump" => answer.memory_dump = Some(zero_one(value).ok_or_else(bad)?),
                "fDoc" => answer.fdoc = Some(zero_one(value).ok_or_else(bad)?),
                "RegKey" => answer.reg_key = Some(list()?),
                "WQL" => answer.wql = Some(list()?),
                "GetFile" => answer.get_file = Some(list()?),
                "GetFileVersion" => answer.get_file_version = Some(list()?),
                "RegTree" => answer.reg_tree = Some(list()?),
                _ => {
                    // DumpFile = 1*CHAR
                    if value.is_empty() {
                        return Err(bad());
                    }
                    answer.dump_file = Some(value.to_owned());
                }
            }
        }
        if !seen.contains(&"Bucket") {
            return Err(AnswerError::NoBucket);
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn renders_the_abnf_form_and_parses_back() {
        let mut a = Level1Answer {
            bucket: 501,
            bucket_table: 1,
            idata: true,
            dump_file: Some(r"\PersistedCabs\Blue\x.cab".into()),
            ..Default::default()
        };
        a.apply_settings(&pairs(&[
            ("Response", "http://support/kb1"),
            ("MemoryDump", "YES"),
            ("RegKey", r"HKLM\Software\A;"),
            ("fDoc", "NO"),
            ("WQL", "SELECT Family FROM Win32_Processor"),
            ("GetFile", r"%windir%\a.log"),
            ("GetFileVersion", r"%windir%\b.dll;c.dll"),
        ]));
        let text = a.render();
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            "Response=http://support/kb1\r\nBucket=501\r\nBucketTable=1\r\niData=1\r\n\
             MemoryDump=1\r\nRegKey=HKLM\\Software\\A\r\nfDoc=0\r\n\
             WQL=SELECT Family FROM Win32_Processor\r\nGetFile=%windir%\\a.log\r\n\
             GetFileVersion=%windir%\\b.dll;c.dll\r\nDumpFile=\\PersistedCabs\\Blue\\x.cab\r\n"
        );
        assert_eq!(Level1Answer::parse(&text).unwrap(), a);
    }

    #[test]
    fn settings_switches() {
        let base = || Level1Answer {
            bucket: 1,
            bucket_table: 1,
            idata: true,
            ..Default::default()
        };
        let mut a = base();
        a.apply_settings(&pairs(&[
            ("Response", "http://x"),
            ("NoExternalURL", "YES"),
            ("GetFile", "a"),
            ("NoFileCollection", "YES"),
            ("WQL", "q"),
        ]));
        assert_eq!(a.response, None);
        assert_eq!(a.get_file, None);
        assert_eq!(a.wql.as_deref(), Some("q"));
        let mut b = Level1Answer {
            idata: false,
            ..base()
        };
        b.apply_settings(&pairs(&[
            ("Response", "1"),
            ("NoExternalURL", "YES"),
            ("WQL", "q"),
        ]));
        assert_eq!(b.response.as_deref(), Some("1"));
        assert_eq!(b.wql, None, "no data requests without iData");
    }

    #[test]
    fn parse_accepts_the_spaced_example_and_refuses_bad_answers() {
        let ex = b"Bucket = 502\r\nBucketTable = 5\r\niData=1\r\nWQL=SELECT Family FROM Win32_Processor\r\nDumpFile=\\PersistedCabs\\Generic\\MikeTest\\1000\\2000\\3000\\41ed848b-30fe-4db5-92e9-7745d2ceb2b8\r\n";
        let a = Level1Answer::parse(ex).unwrap();
        assert_eq!((a.bucket, a.bucket_table, a.idata), (502, 5, true));
        for bad in [
            &b"Bucket=0\r\n"[..],
            b"Bucket=01\r\n",
            b"Bucket=1\n",
            b"Bucket=1",
            b"bucket=1\r\n",
            b"Bucket=1\r\nBucket=2\r\n",
            b"Bucket=1\r\niData=yes\r\n",
            b"Bucket=1\r\nWQL=a;;b\r\n",
            b"Bucket=1\r\nDumpFile=\r\n",
            b"iData=1\r\n",
            b"Bucket\r\n",
        ] {
            assert!(
                Level1Answer::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
