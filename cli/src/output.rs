//! Query results on stdout: an aligned table, CSV (RFC 4180) or JSON (an array of objects).
//! Shared by `cerfs query` and `cerfs buckets`; also the `--db` argument of the admin
//! commands.
//!
//! Values come from clients (log lines, names, report fields): no control character of
//! theirs reaches the terminal as it is. Table and CSV show them as escapes (`\r`, `\n`,
//! `\x1b`), JSON escapes them as JSON does.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cerfs_db::{LifecycleStore, PgStore, QueryDb, RowSink, SqliteStore, Store, Value};
use cerfs_fs_core::CerFs;
use clap::{Args, ValueEnum};

use cerfs_db::StoreLocation;

/// `--db`, as every admin command takes it.
#[derive(Debug, Clone, Args)]
pub struct DbArg {
    /// The cerfs store: the SQLite file `cerfs mount` / `cerfs serve` use, or a PostgreSQL
    /// store's postgres://USER@HOST:PORT/DBNAME. Safe to use while they run.
    #[arg(long, value_name = "FILE|URL", default_value = "cer.db", value_parser = StoreLocation::parse)]
    pub db: StoreLocation,
}

impl DbArg {
    /// The share's logic over the store, opened for an admin: the store must exist, and
    /// uploads in progress of a running server are left alone.
    pub fn admin_fs(&self) -> anyhow::Result<CerFs> {
        let store: Arc<dyn Store> = match &self.db {
            StoreLocation::Sqlite(path) => Arc::new(open_sqlite(path)?),
            StoreLocation::Postgres(url) => open_postgres(url)?,
        };
        Ok(CerFs::new(store))
    }

    /// The store itself, opened for an admin's command beside a running server (for the
    /// lifecycle commands: prune, delete, verify, quota).
    pub fn admin_store(&self) -> anyhow::Result<Arc<dyn LifecycleStore>> {
        Ok(match &self.db {
            StoreLocation::Sqlite(path) => Arc::new(open_sqlite(path)?),
            StoreLocation::Postgres(url) => open_postgres(url)?,
        })
    }

    /// The SQLite store, for what only a SQLite store has (its file: backup, compact).
    pub fn sqlite_store(&self, instead: &str) -> anyhow::Result<Arc<SqliteStore>> {
        Ok(Arc::new(open_sqlite(self.sqlite_file(instead)?)?))
    }

    /// The SQLite file, for a command that works on SQLite stores only; on a PostgreSQL
    /// store, an error that says what to do `instead`.
    pub fn sqlite_file(&self, instead: &str) -> anyhow::Result<&Path> {
        match &self.db {
            StoreLocation::Sqlite(path) => Ok(path),
            StoreLocation::Postgres(_) => Err(anyhow::anyhow!(
                "this command works on a SQLite store only, and {} is a PostgreSQL store: {instead}",
                self.db
            )),
        }
    }

    /// A read-only SQL connection.
    pub fn query_db(&self) -> anyhow::Result<QueryDb> {
        match &self.db {
            StoreLocation::Sqlite(path) => QueryDb::open(path),
            StoreLocation::Postgres(url) => QueryDb::open_postgres(url),
        }
        .with_context(|| format!("cannot open database {}", self.db))
    }
}

fn open_sqlite(path: &Path) -> anyhow::Result<SqliteStore> {
    SqliteStore::open_for_admin(path)
        .with_context(|| format!("cannot open database {}", path.display()))
}

fn open_postgres(url: &str) -> anyhow::Result<Arc<PgStore>> {
    let store = PgStore::open_for_admin(url)
        .with_context(|| format!("cannot open database {}", cerfs_db::shown_postgres_url(url)))?;
    Ok(Arc::new(store))
}

/// How a result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people (long values are cut at 120 characters).
    Table,
    /// Comma-separated values with a header line (RFC 4180), every value in full.
    Csv,
    /// A JSON array of objects, one per row, every value in full.
    Json,
}

/// A sink for `format` writing to `out`; call [`Printer::finish`] at the end.
pub fn printer<W: Write>(format: Format, out: W) -> Printer<W> {
    Printer {
        format,
        out,
        columns: Vec::new(),
        rows: Vec::new(),
        numeric: Vec::new(),
        count: 0,
    }
}

/// Prints a result in one of the [`Format`]s.
pub struct Printer<W: Write> {
    format: Format,
    out: W,
    columns: Vec<String>,
    /// Table: the cells, held to size the columns.
    rows: Vec<Vec<String>>,
    /// Table: whether each column holds numbers only (right-aligned).
    numeric: Vec<bool>,
    count: u64,
}

/// Widest table cell, in characters.
const MAX_CELL: usize = 120;

impl<W: Write> RowSink for Printer<W> {
    fn columns(&mut self, names: &[String]) -> io::Result<()> {
        self.columns = names.to_vec();
        self.numeric = vec![true; names.len()];
        match self.format {
            Format::Table => Ok(()),
            Format::Csv => {
                let line: Vec<String> = names.iter().map(|n| csv_field(&visible(n))).collect();
                write!(self.out, "{}\r\n", line.join(","))
            }
            Format::Json => write!(self.out, "["),
        }
    }

    fn row(&mut self, values: &[Value]) -> io::Result<()> {
        match self.format {
            Format::Table => {
                let cells = values
                    .iter()
                    .zip(self.numeric.iter_mut())
                    .map(|(v, numeric)| {
                        *numeric &= matches!(v, Value::Integer(_) | Value::Real(_) | Value::Null);
                        table_cell(v)
                    })
                    .collect();
                self.rows.push(cells);
            }
            Format::Csv => {
                let line: Vec<String> = values
                    .iter()
                    .map(|v| csv_field(&visible(&plain(v))))
                    .collect();
                write!(self.out, "{}\r\n", line.join(","))?;
            }
            Format::Json => {
                let fields: Vec<String> = self
                    .columns
                    .iter()
                    .zip(values)
                    .map(|(name, v)| format!("{}: {}", json_string(name), json_value(v)))
                    .collect();
                let sep = if self.count == 0 { "\n  " } else { ",\n  " };
                write!(self.out, "{sep}{{{}}}", fields.join(", "))?;
            }
        }
        self.count += 1;
        Ok(())
    }
}

impl<W: Write> Printer<W> {
    /// Writes what is still held (the table; the end of the JSON array), flushes, and
    /// hands the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        match self.format {
            Format::Table => self.write_table()?,
            Format::Csv => {}
            Format::Json => writeln!(self.out, "{}]", if self.count == 0 { "" } else { "\n" })?,
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn write_table(&mut self) -> io::Result<()> {
        let columns: Vec<String> = self.columns.iter().map(|c| visible(c)).collect();
        let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = columns
            .iter()
            .zip(&widths)
            .zip(&self.numeric)
            .map(|((c, w), numeric)| {
                if *numeric {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        writeln!(self.out, "{}", header.join("  ").trim_end())?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        writeln!(self.out, "{}", rule.join("  "))?;
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .zip(&self.numeric)
                .map(|((cell, w), numeric)| {
                    if *numeric {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            writeln!(self.out, "{}", cells.join("  ").trim_end())?;
        }
        Ok(())
    }
}

/// A value as text: NULL is empty, a blob is hex.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// A table cell: control characters (TAB too) shown escaped, cut at [`MAX_CELL`]
/// characters.
fn table_cell(v: &Value) -> String {
    let mut out = String::new();
    for (chars, c) in plain(v).chars().enumerate() {
        if chars >= MAX_CELL {
            out.push('…');
            break;
        }
        match c {
            '\t' => out.push_str("\\t"),
            c => push_visible(&mut out, c),
        }
    }
    out
}

/// `s` with every control character but TAB written as an escape (`\r`, `\n`, `\x1b`,
/// `\u{85}`): what a client put in a value can neither move the cursor nor recolour the
/// terminal of whoever reads it.
pub(crate) fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_visible(&mut out, c);
    }
    out
}

fn push_visible(out: &mut String, c: char) {
    match c {
        '\t' => out.push(c),
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A JSON string; C1 control characters, which JSON may carry raw, escaped too.
fn json_string(s: &str) -> String {
    let json = serde_json::Value::String(s.to_owned()).to_string();
    if !json.chars().any(char::is_control) {
        return json;
    }
    json.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{:04x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn json_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => {
            serde_json::Number::from_f64(*f).map_or_else(|| "null".to_owned(), |n| n.to_string())
        }
        Value::Text(_) | Value::Blob(_) => json_string(&plain(v)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn render(format: Format, rows: &[Vec<Value>]) -> String {
        let mut p = printer(format, Vec::new());
        p.columns(&["name".into(), "n".into()]).unwrap();
        for r in rows {
            p.row(r).unwrap();
        }
        String::from_utf8(p.finish().unwrap()).unwrap()
    }

    fn rows() -> Vec<Vec<Value>> {
        vec![
            vec![Value::Text("a,\"b\"\r\nc".into()), Value::Integer(7)],
            vec![Value::Null, Value::Real(1.5)],
        ]
    }

    #[test]
    fn table_aligns_and_escapes() {
        let t = render(Format::Table, &rows());
        assert_eq!(
            t,
            "name          n\n----------  ---\na,\"b\"\\r\\nc    7\n            1.5\n"
        );
    }

    #[test]
    fn csv_quotes_per_rfc_4180() {
        let c = render(Format::Csv, &rows());
        assert_eq!(c, "name,n\r\n\"a,\"\"b\"\"\\r\\nc\",7\r\n,1.5\r\n");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let hostile = vec![vec![
            Value::Text("a\x1b[31mred\rover\u{85}".into()),
            Value::Integer(1),
        ]];
        for format in [Format::Table, Format::Csv, Format::Json] {
            let out = render(format, &hostile);
            assert!(
                !out.chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\r'),
                "{format:?}: {out:?}"
            );
            // Line breaks only end records.
            assert_eq!(
                out.matches('\n').count(),
                if format == Format::Json { 3 } else { 2 } + usize::from(format == Format::Table)
            );
        }
        let table = render(Format::Table, &hostile);
        assert!(table.contains("a\\x1b[31mred\\rover\\u{85}"), "{table}");
    }

    #[test]
    fn json_keeps_types_and_column_order() {
        let j = render(Format::Json, &rows());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"name": "a,\"b\"\r\nc", "n": 7}, {"name": null, "n": 1.5}])
        );
        assert!(j.find("\"name\"").unwrap() < j.find("\"n\"").unwrap());
        assert_eq!(render(Format::Json, &[]), "[]\n");
    }
}
