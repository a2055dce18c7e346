//! The two [MS-CER2] examples end to end: the level-1 XML sent as UTF-16 exactly as the
//! spec shows it, the answer parsed under the 2.2.2 grammar, the cab PUT to the DumpFile,
//! and the result seen in SQL and on the share.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cerfs_fs_core::SettingsTarget;
use common::*;

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

#[test]
fn kernel_fault_example_4_3() {
    for mut server in Server::each() {
        // The example's answer asks for a WQL query: an admin set it for kernel faults.
        server
            .fs
            .set_settings(
                &SettingsTarget::Status("blue".into()),
                &[pair("WQL", "SELECT Family FROM Win32_Processor")],
            )
            .unwrap();

        let answer = server.report(EXAMPLE_4_3);
        assert!(answer.bucket > 0);
        assert_eq!(answer.bucket_table, 1);
        assert!(answer.idata);
        assert_eq!(
            answer.wql.as_deref(),
            Some("SELECT Family FROM Win32_Processor")
        );
        let dump = answer.dump_file.clone().expect("DumpFile");
        let guid = dump
            .strip_prefix(r"\PersistedCabs\Blue\")
            .and_then(|g| g.strip_suffix(".cab"))
            .expect("DumpFile like the example");
        uuid::Uuid::parse_str(guid).expect("a guid");

        // Level 2, the DumpFile URL-encoded.
        let cab = cab_bytes(43, 700_000);
        let (status, body) = server.put(&encoded_path(&dump), cab.clone());
        assert_eq!(status, 200, "{body}");

        // SQL.
        let row = &server.rows(
            "SELECT subpath, machine, os_version, lcid, \"user\", app_name, app_path, company, \
             event_type, event_time FROM cer2_reports",
        )[0];
        assert_eq!(
            row,
            &[
                "blue",
                "client-machine.corp.cliendomain.com",
                "6.1.6561.2.0.0.256.1",
                "1033",
                "Username",
                "Windows",
                r"C:\Windows\System32\WerFault.exe",
                "Test Corporation",
                "BlueScreen",
                "2008-03-11T09:00:17.904Z",
            ]
        );
        let row = &server.rows(
            "SELECT dump_state, dump_path, cab_size, cab_sha256, bucket_id FROM cer2_reports",
        )[0];
        let bucket = answer.bucket.to_string();
        assert_eq!(
            row,
            &[
                "uploaded".to_owned(),
                dump.clone(),
                cab.len().to_string(),
                sha256_hex(&cab),
                bucket.clone(),
            ]
        );
        let params =
            server.rows("SELECT kind, name, value FROM cer2_report_params ORDER BY position");
        assert_eq!(params.len(), 8);
        assert_eq!(params[0], ["secondary", "BCCode", "f4"]);
        assert_eq!(params[7], ["secondary", "Product", "256_1"]);
        let files = server.rows("SELECT name, file_type FROM cer2_report_files ORDER BY position");
        assert_eq!(
            files,
            [
                ["Mini031108-01.dmp", "2"],
                ["sysdata.xml", "5"],
                ["Version.txt", "5"]
            ]
        );
        assert_eq!(
            server.rows(&format!(
                "SELECT kind, total_hits, cabs_gathered FROM buckets WHERE bucket_id = {bucket}"
            )),
            [["blue", "1", "1"]]
        );

        // The share.
        assert_eq!(
            server.share_file("counts/blue/count.txt"),
            b"Cabs Gathered=1\r\nTotal Hits=1\r\n"
        );
        let stored = server.share_file(&format!("cabs/blue/{guid}.cab"));
        assert_eq!(sha256_hex(&stored), sha256_hex(&cab));

        // The same crash again, and after a restart: the same bucket id.
        assert_eq!(server.report(EXAMPLE_4_3).bucket, answer.bucket);
        server.restart();
        let again = server.report(EXAMPLE_4_3);
        assert_eq!(again.bucket, answer.bucket);
        assert_ne!(
            again.dump_file,
            Some(dump),
            "every report gets its own DumpFile"
        );
        assert_eq!(
            server.share_file("counts/blue/count.txt"),
            b"Cabs Gathered=1\r\nTotal Hits=3\r\n"
        );
    }
}

#[test]
fn generic_example_4_4() {
    for server in Server::each() {
        server
            .fs
            .set_settings(
                &SettingsTarget::Status(r"MikeTest\1000\2000\3000".into()),
                &[pair("WQL", "SELECT Family FROM Win32_Processor")],
            )
            .unwrap();
        let answer = server.report(EXAMPLE_4_4);
        assert!(answer.bucket > 0);
        assert!(answer.idata);
        assert_eq!(
            answer.wql.as_deref(),
            Some("SELECT Family FROM Win32_Processor")
        );
        let dump = answer.dump_file.clone().expect("DumpFile");
        let guid = dump
            .strip_prefix(r"\PersistedCabs\Generic\MikeTest\1000\2000\3000\")
            .expect("DumpFile like the example");
        uuid::Uuid::parse_str(guid).expect("a guid, no extension");

        // Level 2, the DumpFile with slashes.
        let cab = cab_bytes(44, 1_300_000);
        let (status, body) = server.put(&slash_path(&dump), cab.clone());
        assert_eq!(status, 200, "{body}");

        assert_eq!(
            server.rows(
                "SELECT subpath, event_time, dump_state, cab_sha256, company FROM cer2_reports"
            ),
            [[
                r"MikeTest\1000\2000\3000".to_owned(),
                "2008-03-11T09:08:36.046Z".to_owned(),
                "uploaded".to_owned(),
                sha256_hex(&cab),
                "Test Corporation".to_owned(),
            ]]
        );
        assert_eq!(
            server.rows(
                "SELECT kind, param_id, name, value FROM cer2_report_params ORDER BY position"
            ),
            [
                ["primary", "0", "Problem Signature 01", "1000"],
                ["primary", "1", "Problem Signature 02", "2000"],
                ["primary", "2", "Problem Signature 03", "3000"],
            ]
        );
        assert_eq!(
            server.count("SELECT count(*) FROM cer2_report_files"),
            0,
            "the example lists no FILES"
        );
        assert_eq!(
            server.rows(
                "SELECT kind, bucket_id FROM buckets WHERE subpath = 'MikeTest\\1000\\2000\\3000'"
            ),
            [["generic".to_owned(), answer.bucket.to_string()]]
        );

        assert_eq!(
            server.share_file("counts/MikeTest/1000/2000/3000/count.txt"),
            b"Cabs Gathered=1\r\nTotal Hits=1\r\n"
        );
        let stored = server.share_file(&format!("cabs/MikeTest/1000/2000/3000/{guid}.cab"));
        assert_eq!(stored, cab);
    }
}

#[test]
fn every_form_of_the_dump_path_is_accepted() {
    for server in Server::each() {
        let forms: [fn(&str) -> String; 4] = [
            |d| encoded_path(d),
            |d| slash_path(d),
            // Raw backslashes in the request target, as a client may send the DumpFile as is.
            |d| format!("/{d}"),
            // Lowercase percent-escapes, double slashes.
            |d| format!("//{}", d.replace('\\', "%5c")),
        ];
        for (i, form) in forms.iter().enumerate() {
            let answer = server.report(EXAMPLE_4_4);
            let dump = answer.dump_file.expect("DumpFile");
            let path = form(&dump);
            let cab = cab_bytes(100 + i as u64, 5000);
            let request = [
            format!(
                "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                cab.len()
            )
            .into_bytes(),
            cab,
        ]
        .concat();
            let (status, body) = raw_exchange(server.addr(), &request);
            assert_eq!(status, 200, "form {i} ({path}): {body}");
        }
        let snap = server.snapshot();
        assert_eq!((snap.reports, snap.uploaded, snap.cabs), (4, 4, 4));
        assert_eq!(
            server.share_file("counts/MikeTest/1000/2000/3000/count.txt"),
            b"Cabs Gathered=4\r\nTotal Hits=4\r\n"
        );
    }
}

#[test]
fn settings_shape_the_answer() {
    for server in Server::each() {
        let blue = SettingsTarget::Status("blue".into());
        server
            .fs
            .set_settings(
                &blue,
                &[
                    pair("Response", "http://support.example/bluescreens"),
                    pair("MemoryDump", "YES"),
                    pair("fDoc", "no"),
                    pair("RegKey", r"HKLM\Software\Contoso;HKCU\Software\Contoso;"),
                    pair("GetFile", r"%windir%\minidump.log"),
                    pair("GetFileVersion", r"%windir%\system32\ntoskrnl.exe"),
                    pair("WQL", "SELECT * FROM Win32_BIOS"),
                ],
            )
            .unwrap();
        let a = server.report(EXAMPLE_4_3);
        assert_eq!(
            a.response.as_deref(),
            Some("http://support.example/bluescreens")
        );
        assert_eq!(a.memory_dump, Some(true));
        assert_eq!(a.fdoc, Some(false));
        assert_eq!(
            a.reg_key.as_deref(),
            Some(r"HKLM\Software\Contoso;HKCU\Software\Contoso")
        );
        assert_eq!(a.get_file.as_deref(), Some(r"%windir%\minidump.log"));
        assert_eq!(
            a.get_file_version.as_deref(),
            Some(r"%windir%\system32\ntoskrnl.exe")
        );
        assert_eq!(a.wql.as_deref(), Some("SELECT * FROM Win32_BIOS"));
        // Policy switches: no files, no external URL, no second level at all.
        server
            .fs
            .set_settings(
                &SettingsTarget::Policy,
                &[
                    pair("NoFileCollection", "YES"),
                    pair("NoExternalURL", "YES"),
                ],
            )
            .unwrap();
        let b = server.report(EXAMPLE_4_3);
        assert!(b.idata);
        assert_eq!((b.get_file, b.get_file_version), (None, None));
        assert_eq!(b.response, None);
        server
            .fs
            .set_settings(
                &SettingsTarget::Policy,
                &[pair("NoSecondLevelCollection", "YES")],
            )
            .unwrap();
        let c = server.report(EXAMPLE_4_3);
        assert!(!c.idata);
        assert_eq!(c.dump_file, None);
        assert_eq!(c.wql, None, "nothing to collect without a cab");
        // Another bucket only follows the policy.
        let d = server.report(EXAMPLE_4_4);
        assert!(!d.idata);
        assert_ne!(d.bucket, a.bucket);
        let states: Vec<String> = server
            .rows("SELECT dump_state FROM cer2_reports ORDER BY report_id")
            .into_iter()
            .map(|mut row| row.remove(0))
            .collect();
        assert_eq!(states, ["issued", "issued", "none", "none"]);
    }
}
