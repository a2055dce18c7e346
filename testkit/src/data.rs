//! Test inputs: the files of `testdata/` (real cabs and minidumps from other projects, see
//! `testdata/README.md`) and synthetic ones built here (cabs, UTF-16 text).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The repository's `testdata/` folder.
///
/// # Panics
/// When it is missing (a broken checkout).
pub fn testdata() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    assert!(
        dir.is_dir(),
        "{} is missing: it is part of the repository (git checkout testdata)",
        dir.display()
    );
    dir
}

/// The bytes of `testdata/<rel>`.
///
/// # Panics
/// When the file cannot be read.
pub fn read_testdata(rel: &str) -> Vec<u8> {
    let path = testdata().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A cabinet holding `files` (name, content) in one MSZIP folder, built with the `cab`
/// crate.
///
/// # Panics
/// When the `cab` crate refuses the input (a name it cannot store).
pub fn build_cab<C: AsRef<[u8]>>(files: &[(&str, C)]) -> Vec<u8> {
    let mut builder = cab::CabinetBuilder::new();
    let folder = builder.add_folder(cab::CompressionType::MsZip);
    for (name, _) in files {
        folder.add_file(*name);
    }
    let mut writer = builder
        .build(std::io::Cursor::new(Vec::new()))
        .expect("start a cabinet");
    let mut contents = files.iter().map(|(_, c)| c.as_ref());
    while let Some(mut file) = writer.next_file().expect("next cabinet member") {
        let content = contents.next().expect("one content per member");
        file.write_all(content).expect("write a cabinet member");
    }
    writer.finish().expect("finish the cabinet").into_inner()
}

/// `text` as UTF-16LE with a byte-order mark (how Windows writes version.txt, sysdata.xml
/// and CER2 reports).
pub fn utf16le_bom(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_cabs_hold_their_members() {
        let bytes = build_cab(&[("a.txt", b"alpha".to_vec()), ("b.txt", b"beta".to_vec())]);
        let cab = cab::Cabinet::new(std::io::Cursor::new(bytes)).expect("parses");
        let names: Vec<String> = cab
            .folder_entries()
            .flat_map(|f| f.file_entries().map(|e| e.name().to_owned()))
            .collect();
        assert_eq!(names, ["a.txt", "b.txt"]);
    }

    #[test]
    fn the_vendored_files_are_there() {
        assert!(testdata().join("README.md").is_file());
        assert_eq!(&read_testdata("minidumps/test.dmp")[..4], b"MDMP");
        assert_eq!(
            &read_testdata("cabs/normal_2files_1folder.cab")[..4],
            b"MSCF"
        );
        assert_eq!(utf16le_bom("A"), [0xFF, 0xFE, b'A', 0]);
    }
}
