//! One connection's settings and transaction state. Settings live here and shape only this
//! connection's statements (`search_path` their bare names, `statement_timeout` their
//! deadline, `TimeZone` how `timestamptz` reads, `application_name` their audit record); the
//! shared planner session is never touched. Transactions are protocol state: every statement
//! is a read, so `BEGIN`/`COMMIT` only track the block and what `SET` undoes on `ROLLBACK`.

use std::collections::BTreeMap;

use super::errors::{PgError, state};

/// Settings a client may change, with their defaults; `SET` of anything else is refused as
/// PostgreSQL refuses an unknown parameter. `true` marks those reported by `ParameterStatus`.
const KNOWN: &[(&str, &str, bool)] = &[
    ("application_name", "", true),
    ("client_encoding", "UTF8", true),
    ("datestyle", "ISO, MDY", true),
    ("default_transaction_isolation", "read committed", false),
    ("default_transaction_read_only", "on", true),
    ("extra_float_digits", "1", false),
    ("intervalstyle", "postgres", true),
    ("is_superuser", "off", true),
    ("search_path", "\"$user\", public", true),
    ("server_encoding", "UTF8", true),
    ("standard_conforming_strings", "on", true),
    ("statement_timeout", "0", false),
    ("timezone", "UTC", true),
    ("integer_datetimes", "on", true),
    ("transaction_isolation", "read committed", false),
    ("transaction_read_only", "on", false),
    ("in_hot_standby", "off", true),
    ("bytea_output", "hex", false),
    ("lc_messages", "C", false),
    ("lc_monetary", "C", false),
    ("lc_numeric", "C", false),
    ("lc_time", "C", false),
    ("lc_collate", "C", false),
    ("lc_ctype", "C", false),
    ("max_identifier_length", "63", false),
    ("max_index_keys", "32", false),
    ("lock_timeout", "0", false),
    ("idle_in_transaction_session_timeout", "0", false),
    ("idle_session_timeout", "0", false),
    ("row_security", "on", false),
    ("join_collapse_limit", "8", false),
    ("from_collapse_limit", "8", false),
    ("geqo", "on", false),
    ("jit", "off", false),
    ("work_mem", "4MB", false),
    ("client_min_messages", "notice", false),
    ("synchronous_commit", "on", false),
    ("escape_string_warning", "on", false),
    ("xmloption", "content", false),
    ("default_transaction_deferrable", "off", false),
    ("transaction_deferrable", "off", false),
    ("enable_seqscan", "on", false),
    ("session_replication_role", "origin", false),
    ("plan_cache_mode", "auto", false),
];

/// Savepoints one transaction block may hold (each keeps the settings as they were).
const MAX_SAVEPOINTS: usize = 256;
/// Custom (`name.with.dot`) settings one session may hold.
const MAX_CUSTOM_SETTINGS: usize = 256;
/// Longest setting value, in bytes.
const MAX_SETTING_BYTES: usize = 8 * 1024;

/// Parameters only the server sets.
const READ_ONLY: &[&str] = &[
    "server_version",
    "server_version_num",
    "server_encoding",
    "is_superuser",
    "session_authorization",
    "integer_datetimes",
    "in_hot_standby",
    "max_identifier_length",
    "max_index_keys",
    "lc_collate",
    "lc_ctype",
    "transaction_read_only",
    "default_transaction_read_only",
];

/// The transaction block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// No block.
    Idle,
    /// In a block.
    Open,
    /// A statement failed in the block: only its end is accepted.
    Failed,
}

/// One connection's session.
#[derive(Debug, Clone)]
pub struct Session {
    settings: BTreeMap<String, String>,
    /// `server_version` and the other values set at startup.
    fixed: BTreeMap<String, String>,
    /// The settings when the block began, and at each savepoint.
    snapshots: Vec<(Option<String>, BTreeMap<String, String>)>,
    /// Names `SET LOCAL` changed in the block.
    local: Vec<String>,
    /// The transaction block.
    pub block: Block,
}

/// A setting's canonical name (`TimeZone` → `timezone`).
pub fn canonical(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "time zone" | "time_zone" => "timezone".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        "session authorization" => "session_authorization".into(),
        "names" => "client_encoding".into(),
        _ => n,
    }
}

/// How PostgreSQL spells the names reported by `ParameterStatus`.
pub fn reported_name(name: &str) -> String {
    match name {
        "datestyle" => "DateStyle".into(),
        "intervalstyle" => "IntervalStyle".into(),
        "timezone" => "TimeZone".into(),
        other => other.to_owned(),
    }
}

impl Session {
    /// A session for `user` with the startup packet's `options`.
    pub fn new(user: &str, version: &str, startup: &BTreeMap<String, String>) -> Self {
        let settings = KNOWN
            .iter()
            .map(|(k, v, _)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let fixed = [
            ("server_version", version.to_owned()),
            ("server_version_num", "160006".to_owned()),
            ("session_authorization", user.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut session = Self {
            settings,
            fixed,
            snapshots: Vec::new(),
            local: Vec::new(),
            block: Block::Idle,
        };
        // `options=-c name=value -c ...` (libpq's, psycopg's) as if each were a parameter.
        let mut given: Vec<(String, String)> = startup
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(options) = startup.get("options") {
            given.extend(command_line_options(options));
        }
        for (k, v) in &given {
            let name = canonical(k);
            if matches!(
                name.as_str(),
                "user" | "database" | "options" | "replication"
            ) {
                continue;
            }
            // A startup value the server cannot take is ignored, as PostgreSQL reports only
            // what it accepted.
            let _ = session.set(&name, Some(v), false);
        }
        session
    }

    /// The parameters reported at startup.
    pub fn reported(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = KNOWN
            .iter()
            .filter(|(_, _, r)| *r)
            .filter_map(|(k, _, _)| self.settings.get(*k).map(|v| (reported_name(k), v.clone())))
            .collect();
        out.extend(self.fixed.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// Whether `SET name` is reported back by `ParameterStatus`.
    pub fn is_reported(name: &str) -> bool {
        KNOWN.iter().any(|(k, _, r)| *r && *k == name)
    }

    /// A setting's value.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = canonical(name);
        self.settings
            .get(&name)
            .or_else(|| self.fixed.get(&name))
            .cloned()
    }

    /// Every setting, for `SHOW ALL` and `pg_settings`.
    pub fn all(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .chain(self.fixed.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// `SET name = value` (`None` restores the default); the canonical name on success.
    ///
    /// # Errors
    /// Unknown or server-only parameters, planner settings, values the server cannot take.
    pub fn set(&mut self, name: &str, value: Option<&str>, local: bool) -> Result<String, PgError> {
        let name = canonical(name);
        if name.starts_with("datafusion.") || name.starts_with("sluice.") {
            return Err(PgError::new(
                state::INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied to set parameter \"{name}\": the planner's settings are the server's"
                ),
            ));
        }
        if READ_ONLY.contains(&name.as_str()) && value.is_some() {
            // PostgreSQL accepts setting a read-only parameter to its current value
            // (`SET default_transaction_read_only = on` is a no-op here).
            let now = self.get(&name).unwrap_or_default();
            if !value.is_some_and(|v| same_value(v, &now)) {
                return Err(PgError::new(
                    state::CANT_CHANGE_RUNTIME_PARAM,
                    format!("parameter \"{name}\" cannot be changed"),
                ));
            }
            return Ok(name);
        }
        let default = KNOWN
            .iter()
            .find(|(k, _, _)| *k == name)
            .map(|(_, v, _)| *v);
        let custom = name.contains('.');
        let Some(default) = default.or(if custom { Some("") } else { None }) else {
            return Err(PgError::new(
                state::UNDEFINED_PARAMETER,
                format!("unrecognized configuration parameter \"{name}\""),
            ));
        };
        if value.is_some_and(|v| v.len() > MAX_SETTING_BYTES) {
            return Err(PgError::new(
                state::PROGRAM_LIMIT_EXCEEDED,
                format!("a setting's value is at most {MAX_SETTING_BYTES} bytes"),
            ));
        }
        if custom
            && !self.settings.contains_key(&name)
            && self.settings.keys().filter(|k| k.contains('.')).count() >= MAX_CUSTOM_SETTINGS
        {
            return Err(PgError::new(
                state::PROGRAM_LIMIT_EXCEEDED,
                format!("a session holds at most {MAX_CUSTOM_SETTINGS} custom settings"),
            ));
        }
        let value = match value {
            None => default.to_owned(),
            Some(v) => check(&name, v)?,
        };
        if local {
            if self.block == Block::Idle {
                // PostgreSQL warns and changes nothing outside a block.
                return Ok(name);
            }
            if !self.local.contains(&name) {
                self.local.push(name.clone());
            }
        }
        self.settings.insert(name.clone(), value);
        Ok(name)
    }

    /// `RESET ALL`.
    pub fn reset_all(&mut self) {
        for (k, v, _) in KNOWN {
            if !READ_ONLY.contains(k) {
                self.settings.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        self.settings.retain(|k, _| !k.contains('.'));
    }

    /// `BEGIN`: false when a block is already open (a warning, as PostgreSQL gives).
    pub fn begin(&mut self) -> bool {
        if self.block != Block::Idle {
            return false;
        }
        self.block = Block::Open;
        self.snapshots = vec![(None, self.settings.clone())];
        self.local.clear();
        true
    }

    /// `COMMIT`: `SET LOCAL`s end; false when no block was open. A failed block rolls back.
    pub fn commit(&mut self) -> bool {
        if self.block == Block::Failed {
            self.rollback();
            return true;
        }
        if self.block == Block::Idle {
            return false;
        }
        if let Some((_, first)) = self.snapshots.first() {
            for name in &self.local {
                match first.get(name) {
                    Some(v) => self.settings.insert(name.clone(), v.clone()),
                    None => self.settings.remove(name),
                };
            }
        }
        self.end();
        true
    }

    /// `ROLLBACK`: the block's `SET`s are undone; false when no block was open.
    pub fn rollback(&mut self) -> bool {
        if self.block == Block::Idle {
            return false;
        }
        if let Some((_, first)) = self.snapshots.first() {
            self.settings = first.clone();
        }
        self.end();
        true
    }

    fn end(&mut self) {
        self.block = Block::Idle;
        self.snapshots.clear();
        self.local.clear();
    }

    /// `SAVEPOINT name`.
    ///
    /// # Errors
    /// 25P01 outside a block.
    pub fn savepoint(&mut self, name: &str) -> Result<(), PgError> {
        if self.block == Block::Idle {
            return Err(PgError::new(
                state::NO_ACTIVE_TRANSACTION,
                "SAVEPOINT can only be used in transaction blocks",
            ));
        }
        if self.snapshots.len() > MAX_SAVEPOINTS {
            return Err(PgError::new(
                state::PROGRAM_LIMIT_EXCEEDED,
                format!("a transaction block holds at most {MAX_SAVEPOINTS} savepoints"),
            ));
        }
        self.snapshots
            .push((Some(name.to_owned()), self.settings.clone()));
        Ok(())
    }

    /// `RELEASE name` (`rollback`: `ROLLBACK TO name`, which also leaves a failed state).
    ///
    /// # Errors
    /// 3B001 for an unknown savepoint, 25P01 outside a block.
    pub fn back_to_savepoint(&mut self, name: &str, rollback: bool) -> Result<(), PgError> {
        if self.block == Block::Idle {
            return Err(PgError::new(
                state::NO_ACTIVE_TRANSACTION,
                "savepoints can only be used in transaction blocks",
            ));
        }
        let Some(at) = self
            .snapshots
            .iter()
            .rposition(|(n, _)| n.as_deref() == Some(name))
        else {
            return Err(PgError::new(
                "3B001",
                format!("savepoint \"{name}\" does not exist"),
            ));
        };
        if rollback {
            self.settings = self.snapshots[at].1.clone();
            self.snapshots.truncate(at + 1);
            self.block = Block::Open;
        } else {
            self.snapshots.truncate(at);
        }
        Ok(())
    }

    /// A statement in the block failed.
    pub fn fail(&mut self) {
        if self.block == Block::Open {
            self.block = Block::Failed;
        }
    }

    /// The statement timeout asked for, in milliseconds (`None`: the server's).
    pub fn statement_timeout_ms(&self) -> Option<u64> {
        let v = self.get("statement_timeout")?;
        duration_ms(&v).filter(|ms| *ms > 0)
    }

    /// The session's time zone, for `timestamptz` text.
    pub fn time_zone(&self) -> String {
        self.get("timezone").unwrap_or_else(|| "UTC".into())
    }

    /// Whether `search_path` is as the session began (not set by the client).
    pub fn search_path_is_default(&self) -> bool {
        self.get("search_path").as_deref() == Some("\"$user\", public")
    }

    /// The first schema of `search_path` (`$user` skipped), as written.
    pub fn first_schema(&self) -> Option<String> {
        let path = self.get("search_path")?;
        path.split(',')
            .map(|s| s.trim().trim_matches('"').to_owned())
            .find(|s| !s.is_empty() && s != "$user")
    }
}

/// `-c name=value` and `--name=value` pairs of a startup `options` string (`\ ` escapes a space).
fn command_line_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            ' ' | '\t' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let pair = if w == "-c" {
            it.next()
        } else if let Some(rest) = w.strip_prefix("--") {
            Some(rest.to_owned())
        } else {
            w.strip_prefix("-c").map(str::to_owned)
        };
        if let Some((k, v)) = pair.as_deref().and_then(|p| p.split_once('=')) {
            out.push((k.replace('-', "_"), v.to_owned()));
        }
    }
    out
}

fn same_value(a: &str, b: &str) -> bool {
    let norm = |s: &str| match s.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => "on".to_owned(),
        "false" | "off" | "no" | "0" => "off".to_owned(),
        other => other.to_owned(),
    };
    norm(a) == norm(b)
}

/// `5s`, `100ms`, `1min`, `2h`, or bare milliseconds.
fn duration_ms(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Checks a value the session can act on; others are kept as given.
fn check(name: &str, value: &str) -> Result<String, PgError> {
    let bad = |why: &str| {
        Err(PgError::new(
            state::INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"{name}\": \"{value}\"{why}"),
        ))
    };
    match name {
        "client_encoding" => {
            let v = value.trim().to_ascii_uppercase().replace(['-', '_'], "");
            if v == "UTF8" || v == "UNICODE" {
                Ok("UTF8".into())
            } else {
                bad(" (this server speaks UTF8 only)")
            }
        }
        "datestyle" => {
            if value.to_ascii_uppercase().contains("ISO") || value.trim().is_empty() {
                Ok("ISO, MDY".into())
            } else {
                bad(" (dates are written ISO)")
            }
        }
        "intervalstyle" => {
            if value.eq_ignore_ascii_case("postgres") {
                Ok("postgres".into())
            } else {
                bad(" (intervals are written in the postgres style)")
            }
        }
        "timezone" => match time_zone(value) {
            Some(tz) => Ok(tz),
            None => bad(""),
        },
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
            match duration_ms(value) {
                Some(_) => Ok(value.trim().to_owned()),
                None => bad(""),
            }
        }
        "extra_float_digits" => match value.trim().parse::<i32>() {
            Ok(n) if (-15..=3).contains(&n) => Ok(n.to_string()),
            _ => bad(""),
        },
        _ => Ok(value.to_owned()),
    }
}

/// A time zone Arrow can show timestamps in: an IANA name, `UTC`, or an offset.
fn time_zone(value: &str) -> Option<String> {
    let v = value.trim();
    let v = if v.eq_ignore_ascii_case("utc") || v.eq_ignore_ascii_case("gmt") || v == "Z" {
        "UTC"
    } else {
        v
    };
    v.parse::<datafusion::arrow::array::timezone::Tz>()
        .ok()
        .map(|_| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_options_are_settings() {
        let mut startup = BTreeMap::new();
        startup.insert(
            "options".to_owned(),
            "-c search_path=pg.a\\ b -c statement_timeout=5s --extra-float-digits=2".to_owned(),
        );
        let s = Session::new("u", "16.6", &startup);
        assert_eq!(s.first_schema().as_deref(), Some("pg.a b"));
        assert_eq!(s.statement_timeout_ms(), Some(5_000));
        assert_eq!(s.get("extra_float_digits").as_deref(), Some("2"));
    }

    #[test]
    fn set_rollback_and_local_follow_postgres() {
        let mut s = Session::new("u", "16.6", &BTreeMap::new());
        assert!(s.set("TimeZone", Some("Europe/Berlin"), false).is_ok());
        assert_eq!(s.time_zone(), "Europe/Berlin");
        assert!(s.set("timezone", Some("Mars/Olympus"), false).is_err());
        assert!(
            s.set("datafusion.execution.batch_size", Some("1"), false)
                .is_err()
        );
        assert!(s.set("nonsense", Some("1"), false).is_err());
        assert!(s.set("myapp.user", Some("x"), false).is_ok());
        assert!(s.begin());
        s.set("statement_timeout", Some("5s"), false).ok();
        s.set("search_path", Some("pg.public"), true).ok();
        assert_eq!(s.statement_timeout_ms(), Some(5_000));
        assert!(s.commit());
        assert_eq!(s.statement_timeout_ms(), Some(5_000));
        assert_eq!(s.first_schema().as_deref(), Some("public"));
        assert!(s.begin());
        s.set("statement_timeout", Some("0"), false).ok();
        assert!(s.rollback());
        assert_eq!(s.statement_timeout_ms(), Some(5_000));
        assert!(!s.commit());
    }
}
