//! Minidump members: what the `minidump` crate can tell about the crash.

use cerfs_db::MinidumpRow;
use minidump::system_info::{Cpu, Os, PointerWidth};
use minidump::{
    Minidump, MinidumpException, MinidumpMiscInfo, MinidumpModuleList, MinidumpSystemInfo,
    MinidumpThreadList, Module,
};

use crate::text::base_name;

/// Whether a member is a minidump, from its name (`.dmp`, `.mdmp`, `.hdmp`).
pub(crate) fn is_dump_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".dmp", ".mdmp", ".hdmp"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// Parses a minidump held in memory. Never fails: what could not be read is `None`, and the
/// reason lands in `error`.
pub fn parse(member: &str, bytes: &[u8]) -> MinidumpRow {
    let mut row = MinidumpRow {
        member: member.to_owned(),
        ..MinidumpRow::default()
    };
    let dump = match Minidump::read(bytes) {
        Ok(dump) => dump,
        Err(e) => {
            row.error = Some(format!("not a readable minidump: {e}"));
            return row;
        }
    };
    let mut problems: Vec<String> = Vec::new();
    let mut note = |what: &str, e: minidump::Error| {
        if e != minidump::Error::StreamNotFound {
            problems.push(format!("{what}: {e}"));
        }
    };

    row.dump_time = iso_utc(i64::from(dump.header.time_date_stamp));

    let system = match dump.get_stream::<MinidumpSystemInfo>() {
        Ok(s) => Some(s),
        Err(e) => {
            note("system info", e);
            None
        }
    };
    let (os, cpu) = system
        .as_ref()
        .map_or((Os::Unknown(0), Cpu::Unknown(0)), |s| (s.os, s.cpu));
    if let Some(s) = &system {
        row.os = Some(s.os.long_name().into_owned());
        let (version, build) = s.os_parts();
        row.os_version = Some(match build {
            Some(build) => format!("{version} {build}"),
            None => version,
        });
        row.cpu = Some(s.cpu.to_string());
    }

    let modules = match dump.get_stream::<MinidumpModuleList>() {
        Ok(m) => Some(m),
        Err(e) => {
            note("module list", e);
            None
        }
    };
    if let Some(modules) = &modules {
        row.module_count = u32::try_from(modules.iter().count()).ok();
        row.process_name = modules
            .main_module()
            .map(|m| base_name(&m.code_file()).to_owned());
    }

    match dump.get_stream::<MinidumpThreadList>() {
        Ok(threads) => row.thread_count = u32::try_from(threads.threads.len()).ok(),
        Err(e) => note("thread list", e),
    }

    match dump.get_stream::<MinidumpException>() {
        Ok(exception) => {
            let record = &exception.raw.exception_record;
            row.exception_code = Some(format!("0x{:08x}", record.exception_code));
            row.crash_reason = Some(exception.get_crash_reason(os, cpu).to_string());
            row.crash_thread = Some(exception.get_crashing_thread_id());
            let width = cpu.pointer_width();
            let narrow = |a: u64| match width {
                PointerWidth::Bits32 => a & 0xffff_ffff,
                _ => a,
            };
            let hex = |a: u64| match width {
                PointerWidth::Bits32 => format!("0x{a:08x}"),
                _ => format!("0x{a:016x}"),
            };
            // As recorded: the faulting instruction on Windows, the faulting data address
            // of a signal on Linux / macOS.
            row.crash_address = Some(hex(narrow(record.exception_address)));
            // The module and offset describe the instruction pointer of the crashing
            // thread's context (the exception address when there is no context).
            let misc = dump.get_stream::<MinidumpMiscInfo>().ok();
            let ip = system
                .as_ref()
                .and_then(|s| exception.context(s, misc.as_ref()))
                .map_or(record.exception_address, |c| c.get_instruction_pointer());
            let ip = narrow(ip);
            if let Some(module) = modules.as_ref().and_then(|m| m.module_at_address(ip)) {
                row.crash_module = Some(base_name(&module.code_file()).to_owned());
                row.crash_module_version = module.version().map(|v| v.into_owned());
                let offset = ip.saturating_sub(module.base_address());
                row.crash_offset = Some(match width {
                    PointerWidth::Bits32 => format!("{offset:08x}"),
                    _ => format!("{offset:016x}"),
                });
            }
        }
        Err(e) => note("exception", e),
    }

    let found_nothing = system.is_none()
        && modules.is_none()
        && row.thread_count.is_none()
        && row.exception_code.is_none();
    if found_nothing && problems.is_empty() {
        problems.push(
            "no system info, module list, thread list or exception stream could be read: \
             a corrupt or empty minidump"
                .to_owned(),
        );
    }
    if !problems.is_empty() {
        row.error = Some(problems.join("; "));
    }
    row
}

/// Unix seconds as ISO-8601 UTC (`2006-06-23T16:41:49Z`); `None` for 0 (unset).
fn iso_utc(secs: i64) -> Option<String> {
    if secs == 0 {
        return None;
    }
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}
