//! Microsoft symbol files to Breakpad symbols: a PDB (and, when there is one, the PE, whose
//! `.pdata` holds the x64 unwind data) converted with Mozilla's `dump_syms` as a library;
//! files served compressed (`name.pd_`, `name.dl_`: a cabinet holding the file) unpacked
//! first. Hostile input can make parsers fail or panic: both are caught and reported.

use std::io::{Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};

use dump_syms::object_info::ObjectInfo;
use symbolic_debuginfo::{pdb::PdbObject, pe::PeObject};

/// `bytes` itself, or the one file a compressed symbol file (a cabinet) holds, at most
/// `max_bytes` of it.
pub(crate) fn unpack(bytes: Vec<u8>, max_bytes: u64) -> Result<Vec<u8>, String> {
    if !bytes.starts_with(b"MSCF") {
        return Ok(bytes);
    }
    let unpacked = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>, String> {
        let mut cabinet =
            cab::Cabinet::new(Cursor::new(&bytes)).map_err(|e| format!("not a cabinet: {e}"))?;
        let (name, size) = cabinet
            .folder_entries()
            .flat_map(|f| f.file_entries())
            .map(|f| (f.name().to_owned(), u64::from(f.uncompressed_size())))
            .next()
            .ok_or("an empty cabinet")?;
        if size > max_bytes {
            return Err(format!(
                "unpacks to {size} bytes, more than the {max_bytes} accepted"
            ));
        }
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        cabinet
            .read_file(&name)
            .map_err(|e| format!("cannot unpack: {e}"))?
            .take(max_bytes + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("cannot unpack: {e}"))?;
        Ok(out)
    }));
    unpacked.unwrap_or_else(|_| Err("the cabinet reader failed".to_owned()))
}

/// The Breakpad `.sym` text of a PDB, with the PE's unwind data when `pe` is given.
pub(crate) fn pdb_to_sym(
    pdb: &[u8],
    pdb_name: &str,
    pe: Option<(&[u8], &str)>,
) -> Result<Vec<u8>, String> {
    let converted = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>, String> {
        let pdb = PdbObject::parse(pdb).map_err(|e| format!("not a PDB: {e}"))?;
        let pe_object = match pe {
            Some((bytes, _)) => Some(PeObject::parse(bytes).map_err(|e| format!("not a PE: {e}"))?),
            None => None,
        };
        let info = ObjectInfo::from_pdb(pdb, pdb_name, pe.map(|p| p.1), pe_object, None, true)
            .map_err(|e| format!("cannot convert the PDB: {e}"))?;
        Ok(info.to_string().into_bytes())
    }));
    converted.unwrap_or_else(|_| Err("the PDB converter failed".to_owned()))
}

/// The Breakpad `.sym` text of a PE alone (exports and, on x64, unwind data).
pub(crate) fn pe_to_sym(pe: &[u8], pe_name: &str) -> Result<Vec<u8>, String> {
    let converted = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>, String> {
        let pe = PeObject::parse(pe).map_err(|e| format!("not a PE: {e}"))?;
        let info =
            ObjectInfo::from_pe(pe_name, pe).map_err(|e| format!("cannot convert the PE: {e}"))?;
        Ok(info.to_string().into_bytes())
    }));
    converted.unwrap_or_else(|_| Err("the PE converter failed".to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn windows(name: &str) -> Vec<u8> {
        cerfs_testkit::read_testdata(&format!("windows/{name}"))
    }

    #[test]
    fn a_pdb_becomes_breakpad_symbols() {
        let sym = pdb_to_sym(&windows("crash.pdb"), "crash.pdb", None).unwrap();
        let text = String::from_utf8(sym).unwrap();
        assert!(
            text.starts_with("MODULE windows x86 3249D99D0C4049318610F4E4FB0B69361 crash.pdb"),
            "{}",
            &text[..80.min(text.len())]
        );
        assert!(text.lines().any(|l| l.starts_with("FUNC ")));
    }

    #[test]
    fn x64_unwind_data_comes_from_the_pe() {
        let pdb = windows("dump_syms_regtest64.pdb");
        let pe = windows("dump_syms_regtest64.exe");
        let cfi = |sym: Vec<u8>| {
            String::from_utf8(sym)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("STACK CFI"))
                .count()
        };
        let without = cfi(pdb_to_sym(&pdb, "dump_syms_regtest64.pdb", None).unwrap());
        let with = cfi(pdb_to_sym(
            &pdb,
            "dump_syms_regtest64.pdb",
            Some((&pe, "dump_syms_regtest64.exe")),
        )
        .unwrap());
        assert_eq!(without, 0);
        assert!(with > 100, "{with} STACK CFI records");
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        assert!(pdb_to_sym(
            b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0garbage",
            "x.pdb",
            None
        )
        .is_err());
        assert!(pe_to_sym(b"MZ\0\0garbage", "x.exe").is_err());
        assert!(unpack(b"MSCF\0\0\0\0garbage".to_vec(), 1 << 20).is_err());
        assert_eq!(unpack(b"plain".to_vec(), 10).unwrap(), b"plain");
    }
}
