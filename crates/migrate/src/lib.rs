//! Versioned SQLite schemas for obhut's databases (`catalog.db`, `governance.db`).
//!
//! Each database records the layout it has in `PRAGMA user_version`; [`migrate`] brings it to
//! the layout this release writes, one migration at a time, in order, each in its own
//! transaction together with the new version number, so a crash between two migrations leaves
//! a database at one version or the next, never between. A database newer than this release
//! knows is refused, untouched: a release reads what the previous one wrote, never what the
//! next one wrote.
//!
//! It owns only the version number and the order of the migrations; the tables and what they
//! hold belong to the crate that owns the database. It never reads or writes records.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use thiserror::Error;

/// The layouts of one kind of database, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The database's file name, for messages (`catalog.db`).
    pub name: &'static str,
    /// `migrations[i]` (SQL, run as one batch) takes the database from version `i` to `i + 1`;
    /// the last one gives [`Schema::current_version`]. A migration, once released, never
    /// changes: a new layout is a new migration appended here.
    ///
    /// The first one creates the layout from nothing and must be idempotent
    /// (`CREATE … IF NOT EXISTS`): it is also what adopts a database written before versions
    /// were recorded (version 0, with tables in it), whose layout is version 1.
    pub migrations: &'static [&'static str],
    /// A table every database of this kind has had since before versions were recorded: an
    /// unversioned database with tables but without this one is not ours and is refused.
    pub identifying_table: &'static str,
}

impl Schema {
    /// The version this release writes.
    #[must_use]
    pub const fn current_version(&self) -> u32 {
        // A handful of migrations: the count fits.
        self.migrations.len() as u32
    }
}

#[derive(Debug, Error)]
pub enum MigrateError {
    #[error(
        "{database} has schema version {found}, but this release of obhut knows versions up to \
         {supported}: it was written by a newer release; run that release (or a newer one)"
    )]
    TooNew {
        database: &'static str,
        found: u32,
        supported: u32,
    },
    #[error("{database} has schema version {found}, which no release of obhut writes")]
    Invalid { database: &'static str, found: i64 },
    #[error(
        "{database} holds tables but neither a schema version nor a {table} table: it is not \
         an obhut database"
    )]
    Foreign {
        database: &'static str,
        table: &'static str,
    },
    #[error("{database}: migration to schema version {version} failed: {source}")]
    Migration {
        database: &'static str,
        version: u32,
        source: rusqlite::Error,
    },
    #[error("{database}: {source}")]
    Sqlite {
        database: &'static str,
        source: rusqlite::Error,
    },
}

/// What [`migrate`] found and left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version the database had (0: new, or written before versions were recorded).
    pub from: u32,
    /// The version it has now, [`Schema::current_version`].
    pub to: u32,
}

/// The version recorded in the database (0 if none).
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the database to `schema`'s current version, or refuses a database it cannot read.
///
/// Each step runs in an immediate transaction that first reads the version again, so two
/// processes opening one database at once apply each migration once.
pub fn migrate(conn: &mut Connection, schema: &Schema) -> Result<Migrated, MigrateError> {
    let database = schema.name;
    let sqlite = |source| MigrateError::Sqlite { database, source };
    let supported = schema.current_version();
    let mut from = None;
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let found = version(&tx).map_err(sqlite)?;
        let found = u32::try_from(found).map_err(|_| MigrateError::Invalid { database, found })?;
        let from = *from.get_or_insert(found);
        if found > supported {
            return Err(MigrateError::TooNew {
                database,
                found,
                supported,
            });
        }
        if found == supported {
            tx.commit().map_err(sqlite)?;
            return Ok(Migrated { from, to: found });
        }
        if found == 0 && has_tables(&tx).map_err(sqlite)? {
            let ours = tx
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [schema.identifying_table],
                    |_| Ok(()),
                )
                .optional()
                .map_err(sqlite)?
                .is_some();
            if !ours {
                return Err(MigrateError::Foreign {
                    database,
                    table: schema.identifying_table,
                });
            }
        }
        let next = found + 1;
        let failed = |source| MigrateError::Migration {
            database,
            version: next,
            source,
        };
        // `found < supported`, so this migration exists.
        let sql = schema.migrations[found as usize];
        tx.execute_batch(sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", next)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
}

fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%')",
        [],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "CREATE TABLE IF NOT EXISTS things (name TEXT PRIMARY KEY);";
    const V2: &str = "ALTER TABLE things ADD COLUMN size INTEGER NOT NULL DEFAULT 0;";
    const V3: &str = "CREATE TABLE sizes AS SELECT name, size FROM things;";

    const SCHEMA: Schema = Schema {
        name: "things.db",
        migrations: &[V1, V2, V3],
        identifying_table: "things",
    };

    fn open(dir: &tempfile::TempDir) -> Connection {
        Connection::open(dir.path().join("things.db")).expect("open")
    }

    #[test]
    fn a_new_database_gets_every_migration_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = open(&dir);
        let m = migrate(&mut c, &SCHEMA).expect("migrate");
        assert_eq!(m, Migrated { from: 0, to: 3 });
        assert_eq!(version(&c).expect("version"), 3);
        // V3 ran after V2: the copied table has V2's column.
        c.execute("INSERT INTO sizes (name, size) VALUES ('a', 1)", [])
            .expect("V3 ran after V2");
        // A second open changes nothing.
        let mut again = open(&dir);
        assert_eq!(
            migrate(&mut again, &SCHEMA).expect("migrate"),
            Migrated { from: 3, to: 3 }
        );
    }

    #[test]
    fn an_older_database_keeps_its_records_and_is_brought_forward() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = open(&dir);
        let v1 = Schema {
            migrations: &[V1],
            ..SCHEMA
        };
        migrate(&mut c, &v1).expect("v1");
        c.execute("INSERT INTO things (name) VALUES ('kept')", [])
            .expect("insert");
        let m = migrate(&mut c, &SCHEMA).expect("migrate");
        assert_eq!(m, Migrated { from: 1, to: 3 });
        let size: i64 = c
            .query_row("SELECT size FROM sizes WHERE name = 'kept'", [], |r| {
                r.get(0)
            })
            .expect("the record went through both migrations");
        assert_eq!(size, 0);
    }

    #[test]
    fn an_unversioned_database_with_the_first_layout_is_adopted_and_stamped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = open(&dir);
        c.execute_batch(V1).expect("layout written before versions");
        c.execute("INSERT INTO things (name) VALUES ('old')", [])
            .expect("insert");
        let v1 = Schema {
            migrations: &[V1],
            ..SCHEMA
        };
        assert_eq!(
            migrate(&mut c, &v1).expect("adopt"),
            Migrated { from: 0, to: 1 }
        );
        assert_eq!(version(&c).expect("version"), 1);
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM things", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 1, "adopting changes no record");
    }

    #[test]
    fn a_newer_database_is_refused_naming_both_versions_and_left_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = open(&dir);
        migrate(&mut c, &SCHEMA).expect("migrate");
        c.pragma_update(None, "user_version", 7).expect("stamp");
        let err = migrate(&mut c, &SCHEMA).expect_err("newer");
        assert!(
            matches!(
                err,
                MigrateError::TooNew {
                    found: 7,
                    supported: 3,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("things.db") && text.contains('7') && text.contains('3'),
            "{text}"
        );
        assert_eq!(version(&c).expect("version"), 7);
        c.pragma_update(None, "user_version", -1).expect("stamp");
        assert!(matches!(
            migrate(&mut c, &SCHEMA),
            Err(MigrateError::Invalid { found: -1, .. })
        ));
    }

    #[test]
    fn a_failing_migration_undoes_only_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = open(&dir);
        let broken = Schema {
            migrations: &[V1, V2, "CREATE TABLE sizes (x); SELECT no_such_function();"],
            ..SCHEMA
        };
        let err = migrate(&mut c, &broken).expect_err("broken");
        assert!(
            matches!(err, MigrateError::Migration { version: 3, .. }),
            "{err}"
        );
        assert_eq!(version(&c).expect("version"), 2, "1 and 2 are committed");
        let sizes: Option<String> = c
            .query_row(
                "SELECT name FROM sqlite_master WHERE name = 'sizes'",
                [],
                |r| r.get(0),
            )
            .optional()
            .expect("query");
        assert_eq!(sizes, None, "the failed migration left nothing behind");
        assert_eq!(
            migrate(&mut c, &SCHEMA).expect("fixed release"),
            Migrated { from: 2, to: 3 }
        );
    }

    #[test]
    fn an_unversioned_database_of_another_kind_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = open(&dir);
        c.execute_batch("CREATE TABLE photos (id INTEGER);")
            .expect("someone else's table");
        let err = migrate(&mut c, &SCHEMA).expect_err("foreign");
        assert!(matches!(err, MigrateError::Foreign { .. }), "{err}");
        assert_eq!(version(&c).expect("version"), 0);
    }
}
