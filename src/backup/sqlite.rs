//! The recorder database (`home-assistant_v2.db` with its `-wal`): does it open, and does it
//! pass SQLite's own `PRAGMA integrity_check`? Run on copies taken off the card (never on the
//! card), opened read-only so the copies stay byte for byte what the card holds: a read-only
//! connection neither checkpoints nor deletes the write-ahead log. SQLite is the bundled
//! build of `rusqlite`, so the answer does not depend on the host's library.

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use std::path::Path;

/// At most this many integrity messages are kept.
const MAX_MESSAGES: u32 = 20;

/// The verdict on a database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrity {
    /// `integrity_check` said "ok".
    Ok,
    /// It opened, and `integrity_check` lists damage.
    Damaged,
    /// SQLite could not read it at all (not a database, or its header is destroyed).
    Unreadable,
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbCheck {
    pub integrity: Integrity,
    /// SQLite's messages (the first few), or why it could not be opened.
    pub messages: Vec<String>,
    /// `wal`, `delete`, … as the file header says.
    pub journal_mode: Option<String>,
    /// The newest recorder schema version (`schema_changes`), when readable.
    pub recorder_schema: Option<i64>,
    /// Rows in `states`, when readable.
    pub states: Option<i64>,
}

fn unreadable(e: impl std::fmt::Display) -> DbCheck {
    DbCheck {
        integrity: Integrity::Unreadable,
        messages: vec![e.to_string()],
        journal_mode: None,
        recorder_schema: None,
        states: None,
    }
}

/// Check the database at `db` (its `-wal`, if any, sits next to it under the same name).
pub fn check(db: &Path) -> DbCheck {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let con = match Connection::open_with_flags(db, flags) {
        Ok(c) => c,
        Err(e) => return unreadable(e),
    };
    let journal_mode = con
        .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
        .ok();
    let mut messages = Vec::new();
    let res = con
        .prepare(&format!("PRAGMA integrity_check({MAX_MESSAGES})"))
        .and_then(|mut st| {
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            for r in rows {
                messages.push(r?);
            }
            Ok(())
        });
    if let Err(e) = res {
        let mut c = unreadable(e);
        c.journal_mode = journal_mode;
        return c;
    }
    let ok = messages.len() == 1 && messages[0] == "ok";
    let recorder_schema = con
        .query_row(
            "SELECT schema_version FROM schema_changes ORDER BY change_id DESC LIMIT 1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok();
    let states = con
        .query_row("SELECT count(*) FROM states", [], |r| r.get::<_, i64>(0))
        .ok();
    DbCheck {
        integrity: if ok {
            Integrity::Ok
        } else {
            Integrity::Damaged
        },
        messages: if ok { Vec::new() } else { messages },
        journal_mode,
        recorder_schema,
        states,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_wal_db(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("home-assistant_v2.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE schema_changes (change_id INTEGER PRIMARY KEY, schema_version INTEGER);
             CREATE TABLE states (state_id INTEGER PRIMARY KEY, entity_id TEXT, state TEXT);
             INSERT INTO schema_changes VALUES (1, 48);",
        )
        .unwrap();
        for i in 0..500 {
            c.execute(
                "INSERT INTO states VALUES (?1, 'sensor.x', ?2)",
                rusqlite::params![i, format!("value {i} {}", "x".repeat(100))],
            )
            .unwrap();
        }
        // Keep the WAL: copy the pair aside while the writer is still open.
        let q = dir.join("copy");
        std::fs::create_dir_all(&q).unwrap();
        std::fs::copy(&p, q.join("home-assistant_v2.db")).unwrap();
        std::fs::copy(
            dir.join("home-assistant_v2.db-wal"),
            q.join("home-assistant_v2.db-wal"),
        )
        .unwrap();
        drop(c);
        q.join("home-assistant_v2.db")
    }

    #[test]
    fn wal_db_is_ok_and_left_unchanged() {
        let t = tempfile::tempdir().unwrap();
        let db = make_wal_db(t.path());
        let wal = db.with_file_name("home-assistant_v2.db-wal");
        let (a, b) = (std::fs::read(&db).unwrap(), std::fs::read(&wal).unwrap());
        assert!(b.len() > 32, "the WAL holds the rows");
        let c = check(&db);
        assert_eq!(c.integrity, Integrity::Ok, "{c:?}");
        assert_eq!(c.journal_mode.as_deref(), Some("wal"));
        assert_eq!(c.states, Some(500), "rows in the WAL are seen");
        assert_eq!(c.recorder_schema, Some(48));
        assert_eq!(std::fs::read(&db).unwrap(), a, "DB bytes unchanged");
        assert_eq!(std::fs::read(&wal).unwrap(), b, "WAL bytes unchanged");
    }

    #[test]
    fn damage_is_reported() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("d.db");
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch("CREATE TABLE t (a TEXT); CREATE INDEX ti ON t(a);")
                .unwrap();
            for i in 0..2000 {
                c.execute("INSERT INTO t VALUES (?1)", [format!("row {i:05}")])
                    .unwrap();
            }
        }
        let mut bytes = std::fs::read(&p).unwrap();
        let page = 4096;
        // Scribble over the middle of the index's pages (page 1 keeps the schema readable).
        for b in &mut bytes[3 * page + 100..3 * page + 900] {
            *b = 0x5a;
        }
        std::fs::write(&p, &bytes).unwrap();
        let c = check(&p);
        assert_ne!(c.integrity, Integrity::Ok, "{c:?}");
        assert!(!c.messages.is_empty());
        std::fs::write(&p, b"this is not a database at all, just text............").unwrap();
        let c = check(&p);
        assert_eq!(c.integrity, Integrity::Unreadable, "{c:?}");
        let c = check(&t.path().join("missing.db"));
        assert_eq!(c.integrity, Integrity::Unreadable);
    }
}
