//! Read-only SQL for people on a PostgreSQL store (`cerfs query --db postgres://…`): one
//! statement at a time, in a READ ONLY transaction, its rows fetched through a cursor in
//! batches (memory stays bounded whatever the result's size) and turned into the same
//! [`Value`]s as SQLite's.
//!
//! A read-only transaction refuses every write, `nextval` included; for BI tools, give a
//! role of its own with SELECT on the views (docs/scale-out.md).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, NoTls, SimpleQueryMessage};

use super::schema::PG_VIEWS_VERSION;
use super::{connect_error, describe, parse_config, shown_url};
use crate::query::{refusal, RowSink, Value};
use crate::{OpenError, QueryError};

/// Rows fetched per round trip.
const BATCH: usize = 500;

/// A read-only connection to a PostgreSQL store.
pub(crate) struct PgReader {
    client: Mutex<Client>,
    shown: String,
}

impl PgReader {
    /// Connects to the store at `url`; refuses a database that holds no cerfs store (this
    /// connection never migrates).
    pub(crate) fn connect(url: &str) -> Result<PgReader, OpenError> {
        let config = parse_config(url)?;
        let shown = shown_url(url);
        let mut client = config
            .connect(NoTls)
            .map_err(|e| connect_error(&shown, &e))?;
        let unusable = |e: postgres::Error| {
            OpenError::Unusable(format!("PostgreSQL at {shown}: {}", describe(&e)))
        };
        super::schema::require(&mut client, &shown, PG_VIEWS_VERSION)?;
        // Times in UTC, as the SQLite store gives them; backslashes in literals as typed.
        client
            .batch_execute(
                "SET default_transaction_read_only = on; SET TimeZone = 'UTC'; \
                 SET DateStyle = 'ISO, YMD'; SET standard_conforming_strings = on; \
                 SET application_name = 'cerfs query'",
            )
            .map_err(unusable)?;
        Ok(PgReader {
            client: Mutex::new(client),
            shown,
        })
    }

    /// The connection string, without its password.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `sql` (`?1`, `?2`, ... stand for `params`, written into it as literals) and
    /// hands its columns and rows to `sink`; see [`crate::QueryDb::query`].
    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[Value],
        sink: &mut dyn RowSink,
        limit: Option<Duration>,
    ) -> Result<u64, QueryError> {
        let sql = with_literals(sql, params);
        let mut client = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = Instant::now();
        let mut tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .map_err(|e| failure(&sql, e, limit))?;
        let stmt = tx.prepare(&sql).map_err(|e| failure(&sql, e, limit))?;
        if stmt.columns().is_empty() {
            tracing::warn!("refused a query that returns no columns");
            return Err(QueryError::NotAQuery(
                "no statement that returns rows: give a SELECT".into(),
            ));
        }
        let names: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
        let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        tx.batch_execute(&format!("DECLARE cerfs_query NO SCROLL CURSOR FOR {sql}"))
            .map_err(|e| failure(&sql, e, limit))?;
        sink.columns(&names).map_err(QueryError::Output)?;
        let mut count = 0u64;
        let mut values = Vec::with_capacity(names.len());
        loop {
            // The time limit covers the whole result: each fetch gets what is left of it.
            if let Some(limit) = limit {
                let left = limit.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(timeout(limit));
                }
                tx.batch_execute(&format!(
                    "SET LOCAL statement_timeout = {}",
                    left.as_millis().max(1)
                ))
                .map_err(|e| failure(&sql, e, Some(limit)))?;
            }
            let messages = tx
                .simple_query(&format!("FETCH {BATCH} FROM cerfs_query"))
                .map_err(|e| failure(&sql, e, limit))?;
            let mut fetched = 0;
            for message in &messages {
                let SimpleQueryMessage::Row(row) = message else {
                    continue;
                };
                fetched += 1;
                values.clear();
                for (i, ty) in types.iter().enumerate() {
                    values.push(value_of(ty, row.get(i)));
                }
                sink.row(&values).map_err(QueryError::Output)?;
                count += 1;
            }
            if fetched < BATCH {
                break;
            }
        }
        Ok(count)
    }
}

/// A value in PostgreSQL's text form as the [`Value`] its type maps to.
fn value_of(ty: &Type, text: Option<&str>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    let as_text = || Value::Text(text.to_owned());
    match *ty {
        Type::BOOL => Value::Integer(i64::from(text == "t")),
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            text.parse().map_or_else(|_| as_text(), Value::Integer)
        }
        Type::FLOAT4 | Type::FLOAT8 => text.parse().map_or_else(|_| as_text(), Value::Real),
        // sum() and avg() of integers are numeric: a whole number as an integer, else a
        // double where one holds it, else the exact text.
        Type::NUMERIC => match text.parse::<i64>() {
            Ok(n) => Value::Integer(n),
            Err(_) => match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Value::Real(f),
                _ => as_text(),
            },
        },
        Type::BYTEA => text
            .strip_prefix("\\x")
            .and_then(decode_hex)
            .map_or_else(as_text, Value::Blob),
        _ => as_text(),
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `sql` with each `?N` outside quotes replaced by `params[N-1]` as a SQL literal.
fn with_literals(sql: &str, params: &[Value]) -> String {
    if params.is_empty() {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 32);
    let mut chars = sql.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((_, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') => {
                let mut digits = String::new();
                while let Some(&(_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                    digits.push(d);
                    chars.next();
                }
                let param = digits
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| params.get(n.checked_sub(1)?));
                if let Some(param) = param {
                    out.push_str(&literal(param));
                    continue;
                }
                out.push('?');
                out.push_str(&digits);
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(n) => n.to_string(),
        Value::Real(f) => format!("'{f:?}'::float8"),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("'\\x{hex}'::bytea")
        }
    }
}

fn timeout(limit: Duration) -> QueryError {
    tracing::warn!(?limit, "stopped a query that ran past its time limit");
    QueryError::Timeout(limit)
}

/// What a failed statement means for the user.
fn failure(sql: &str, e: postgres::Error, limit: Option<Duration>) -> QueryError {
    match (e.code(), limit) {
        (Some(c), Some(limit)) if *c == SqlState::QUERY_CANCELED => timeout(limit),
        // A write inside the read-only transaction, or one hidden in a WITH.
        (Some(c), _)
            if *c == SqlState::READ_ONLY_SQL_TRANSACTION
                || (*c == SqlState::FEATURE_NOT_SUPPORTED
                    && describe(&e).contains("data-modifying")) =>
        {
            refusal(sql)
        }
        (Some(c), _)
            if *c == SqlState::SYNTAX_ERROR && describe(&e).contains("multiple commands") =>
        {
            QueryError::NotAQuery(
                "more than one SQL statement: give one statement at a time".into(),
            )
        }
        // A statement that returns rows but cannot be a cursor: INSERT ... RETURNING.
        (Some(c), _) if *c == SqlState::SYNTAX_ERROR && writes(sql) => refusal(sql),
        _ => QueryError::Postgres(describe(&e)),
    }
}

/// Whether `sql` starts with a verb that changes the database.
fn writes(sql: &str) -> bool {
    let verb = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        verb.as_str(),
        "INSERT"
            | "UPDATE"
            | "DELETE"
            | "MERGE"
            | "CREATE"
            | "DROP"
            | "ALTER"
            | "TRUNCATE"
            | "GRANT"
            | "REVOKE"
            | "COPY"
            | "CALL"
            | "DO"
            | "VACUUM"
            | "REINDEX"
            | "CLUSTER"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parameters_become_literals_outside_quotes() {
        let sql = with_literals(
            "SELECT '?1', x FROM t WHERE a = ?1 AND b = ?2 AND c IS ?3 AND \"?2\" = ?9",
            &[Value::Text("it's".into()), Value::Integer(-4), Value::Null],
        );
        assert_eq!(
            sql,
            "SELECT '?1', x FROM t WHERE a = 'it''s' AND b = -4 AND c IS NULL AND \"?2\" = ?9"
        );
        assert_eq!(literal(&Value::Blob(vec![0, 0xab])), "'\\x00ab'::bytea");
    }

    #[test]
    fn text_values_take_their_column_types() {
        assert_eq!(value_of(&Type::INT8, Some("42")), Value::Integer(42));
        assert_eq!(value_of(&Type::BOOL, Some("t")), Value::Integer(1));
        assert_eq!(value_of(&Type::NUMERIC, Some("12")), Value::Integer(12));
        assert_eq!(value_of(&Type::NUMERIC, Some("1.5")), Value::Real(1.5));
        assert_eq!(
            value_of(&Type::NUMERIC, Some("123456789012345678901234567890")),
            Value::Real(1.2345678901234568e29)
        );
        assert_eq!(
            value_of(&Type::BYTEA, Some("\\x0aff")),
            Value::Blob(vec![10, 255])
        );
        assert_eq!(value_of(&Type::TEXT, None), Value::Null);
        assert_eq!(
            value_of(&Type::TIMESTAMPTZ, Some("2026-12-03 10:00:00+00")),
            Value::Text("2026-12-03 10:00:00+00".into())
        );
    }
}
