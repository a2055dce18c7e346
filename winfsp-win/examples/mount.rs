//! Mounts a cerfs database through WinFsp until the process is stopped (Windows only):
//! what `.github/workflows/windows.yml` drives example 4.1 against, until the CLI's
//! `cerfs mount` calls `cerfs_winfsp::mount` itself.
//!
//! `cargo run -p cerfs-winfsp --example mount -- DB MOUNTPOINT [STATUS_SUBPATH]...`: each
//! STATUS_SUBPATH's status.txt is set first (Tracking=YES, Crashes per
//! bucket=100, iData=YES), as an admin would with `cerfs status set`.

#[cfg(windows)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::sync::Arc;

    use cerfs_fs_core::{CerFs, SettingsTarget};

    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, mountpoint, rest @ ..] = args.as_slice() else {
        return Err("usage: mount DB MOUNTPOINT [STATUS_SUBPATH]...".into());
    };
    let store = cerfs_db::SqliteStore::open(std::path::Path::new(db))?;
    let fs = Arc::new(CerFs::new(Arc::new(store)));
    for sub in rest {
        let pairs = [
            ("Tracking", "YES"),
            ("Crashes per bucket", "100"),
            ("iData", "YES"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        fs.set_settings(&SettingsTarget::Status(sub.clone()), &pairs)?;
    }
    let _mount = cerfs_winfsp::mount(fs, std::path::Path::new(mountpoint))?;
    println!("mounted {db} at {mountpoint}");
    loop {
        std::thread::park();
    }
}

#[cfg(not(windows))]
fn main() {
    eprintln!("this example mounts with WinFsp and runs on Windows only");
    std::process::exit(2);
}
