//! A release reads the governance state the releases before it wrote.
//!
//! `tests/fixtures/governance-v<N>.db` is a `governance.db` written by the release whose
//! schema version was N (see [`write_governance`]): principals of every role, a tenant with its
//! policy, a grant approved by two officers and the tenant's admin with credentials issued, and
//! a disclosure request with one approval. Each is opened by this release and every record is
//! read back through `Governance`'s public API. Once checked in, a fixture never changes: a
//! change of layout is a new migration in `src/governance.rs`, and the release that makes it
//! adds its own `governance-v<N+1>.db` beside the old ones. (The transparency log beside the
//! database is not part of the fixture; the log has its own format and tests.)
//!
//! From schema version 3 on, `governance.db` is checked against the log beside it (a database of
//! version 3 without its log is refused), so the fixture is the trustee's directory:
//! `tests/fixtures/trustee-v<N>/` holds `governance.db`, `log/` (with the log's key, a key made
//! for this fixture only) and `log-checkpoint`.
//!
//! To write the fixture of the current schema version (only when adding a version, or if the
//! file is lost), run
//! `OBHUT_WRITE_FIXTURES=1 cargo test -p obhut-trustee --test backward_compatibility`;
//! it is written with 512-byte pages and vacuumed, to stay a few KiB.

#![allow(clippy::unwrap_used)]

use obhut_crypto::principal::{PrincipalCredential, bearer_hash};
use obhut_trustee::governance::{Governance, now_ms};
use obhut_trustee_client::{Action, Query, Role, SignedStatement, Statement};
use rusqlite::Connection;
use serde_json::Value;
use std::path::{Path, PathBuf};

const SCHEMA_VERSION: u32 = Governance::SCHEMA_VERSION;

const PRINCIPALS: [(&str, Role, Option<&str>); 6] = [
    ("o1", Role::Officer, None),
    ("o2", Role::Officer, None),
    ("o3", Role::Officer, None),
    ("op", Role::Operator, None),
    ("aud", Role::Auditor, None),
    ("adm-acme", Role::TenantAdmin, Some("acme")),
];

fn credential(name: &str) -> PrincipalCredential {
    PrincipalCredential::from_token(&format!("obt_fixture_{name}")).unwrap()
}

fn fixture(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("governance-v{version}.db"))
}

/// The trustee directory written by the release of schema `version` (3 and later).
fn fixture_dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("trustee-v{version}"))
}

/// A copy of a trustee directory fixture: opening governance writes to it.
fn copy_of_dir(version: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = fixture_dir(version);
    for rel in [
        "governance.db",
        "log-checkpoint",
        "log/tlog.sqlite3",
        "log/log-key",
        "log/origin",
    ] {
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from.join(rel), &to)
            .unwrap_or_else(|e| panic!("fixture {}: {e}", from.join(rel).display()));
    }
    dir
}

/// The log entries of type `kind`, as an officer reads them.
fn entries_of_type(gov: &Governance, kind: &str) -> Vec<Value> {
    let page = gov
        .query(
            "o1",
            &Query::LogEntries {
                tenant: None,
                from: 0,
                limit: None,
            },
        )
        .unwrap();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str::<Value>(e["entry"].as_str().unwrap()).unwrap())
        .filter(|e| e["type"] == kind)
        .collect()
}

/// A trustee directory holding a copy of a fixture: opening governance writes to it.
fn copy_of(version: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture(version), dir.path().join("governance.db"))
        .unwrap_or_else(|e| panic!("fixture {}: {e}", fixture(version).display()));
    dir
}

fn user_version(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn set_user_version(db: &Path, version: i64) {
    Connection::open(db)
        .unwrap()
        .pragma_update(None, "user_version", version)
        .unwrap();
}

/// Carries out `action` as `who`, signed as the admin CLI signs it.
fn act(gov: &Governance, who: &str, nonce: &str, action: Action) -> Value {
    let statement = serde_json::to_string(&Statement {
        principal: who.into(),
        at_ms: now_ms(),
        nonce: nonce.into(),
        action,
    })
    .unwrap();
    let signature = credential(who).sign_statement(&statement);
    let signed = SignedStatement {
        statement,
        signature: base64_simd::STANDARD.encode_to_string(signature),
    };
    let (statement, info) = gov.verify(&signed).unwrap();
    gov.act(&info, &statement, &signed).unwrap()
}

/// Writes one record of every kind through this release's governance.
fn write_governance(gov: &Governance) {
    gov.register_tenant("bootstrap", "acme", &["DE".into(), "AT".into()], 2)
        .unwrap();
    for (name, role, tenant) in PRINCIPALS {
        let c = credential(name);
        gov.add_principal(
            "bootstrap",
            name,
            role,
            tenant,
            &bearer_hash(c.bearer()),
            &c.public_key(),
            None,
            &obhut_trustee::governance::Vouch::Bootstrap,
        )
        .unwrap();
    }
    act(
        gov,
        "o1",
        "n1",
        Action::RevokePrincipal { name: "o3".into() },
    );
    let grant = act(
        gov,
        "op",
        "n2",
        Action::RequestGrant {
            tenant: "acme".into(),
            bucket: "photos".into(),
            prefix: "support/".into(),
            ops: vec!["read".into(), "list".into()],
            duration_ms: 3_600_000,
            reason: "ticket 4711".into(),
        },
    );
    let id = grant["id"].as_str().unwrap().to_owned();
    let scope = grant["scope_digest"].as_str().unwrap().to_owned();
    for (who, nonce) in [("o1", "n3"), ("o2", "n4"), ("adm-acme", "n5")] {
        act(
            gov,
            who,
            nonce,
            Action::ApproveGrant {
                id: id.clone(),
                scope: scope.clone(),
            },
        );
    }
    act(gov, "op", "n6", Action::GrantCredentials { id });
    let disclosure = act(
        gov,
        "o1",
        "n7",
        Action::RequestDisclosure {
            tenant: "acme".into(),
            authority: "Amtsgericht Frankfurt".into(),
            jurisdiction: "de".into(),
            legal_basis: "StPO 94".into(),
            scope: "bucket photos, prefix support/".into(),
            delay_ms: 86_400_000,
        },
    );
    act(
        gov,
        "o2",
        "n8",
        Action::ApproveDisclosure {
            id: disclosure["id"].as_str().unwrap().to_owned(),
        },
    );
}

/// Reads every record [`write_governance`] wrote, and checks it.
fn assert_governance(gov: &Governance, db: &Path) {
    // Principals: each one, by name and by bearer.
    for (name, role, tenant) in PRINCIPALS {
        let c = credential(name);
        let p = gov.principal(name).unwrap().unwrap();
        assert_eq!(
            (p.info.role, p.info.tenant.as_deref()),
            (role, tenant),
            "{name}"
        );
        assert_eq!(p.public_key, c.public_key(), "{name}");
        assert_eq!(p.info.revoked, name == "o3", "{name}");
        assert_eq!(p.info.expires_ms, None);
        assert!(p.info.created_ms > 0);
        let by_bearer = gov.authenticate(&bearer_hash(c.bearer())).unwrap().unwrap();
        assert_eq!(by_bearer.name, name);
    }
    let listed = gov.query("o1", &Query::Principals).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["adm-acme", "aud", "o1", "o2", "o3", "op"]);

    // The tenant's policy.
    let t = gov.tenant("acme").unwrap().unwrap();
    assert_eq!(
        (t.name.as_str(), t.jurisdictions.clone(), t.min_sites),
        ("acme", vec!["DE".to_owned(), "AT".to_owned()], 2)
    );
    assert!(t.customer_approval);

    // The grant, with its approvals and credentials.
    let grants = gov.query("o1", &Query::Grants).unwrap();
    let [grant] = grants.as_array().unwrap().as_slice() else {
        panic!("one grant: {grants}");
    };
    let id = grant["id"].as_str().unwrap();
    let g = gov.query("aud", &Query::Grant { id: id.into() }).unwrap();
    assert_eq!(g["tenant"], "acme");
    assert_eq!(g["bucket"], "photos");
    assert_eq!(g["prefix"], "support/");
    assert_eq!(g["ops"], serde_json::json!(["list", "read"]));
    assert_eq!(g["duration_ms"], 3_600_000);
    assert_eq!(g["reason"], "ticket 4711");
    assert_eq!(g["requester"], "op");
    assert_eq!(g["customer_approval"], true);
    let approvers: Vec<(&str, &str)> = g["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["principal"].as_str().unwrap(),
                a["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        approvers,
        [
            ("o1", "officer"),
            ("o2", "officer"),
            ("adm-acme", "tenant-admin")
        ]
    );
    let approved = g["approved_ms"].as_i64().unwrap();
    let expires = g["expires_ms"].as_i64().unwrap();
    assert_eq!(expires, approved + 3_600_000);
    let state = if now_ms() < expires {
        "approved"
    } else {
        "expired"
    };
    assert_eq!(g["state"], state);
    // The credentials' key id is not part of any view; the secret is found by it.
    let key_id: String = Connection::open(db)
        .unwrap()
        .query_row("SELECT access_key_id FROM grants", [], |r| r.get(0))
        .unwrap();
    let secret = gov.grant_secret(&key_id).unwrap();
    assert!(secret.is_some_and(|s| !s.2.is_empty()));

    // The disclosure request, with its one approval.
    let disclosures = gov.query("o2", &Query::Disclosures).unwrap();
    let [d] = disclosures.as_array().unwrap().as_slice() else {
        panic!("one disclosure: {disclosures}");
    };
    assert_eq!(d["tenant"], "acme");
    assert_eq!(d["authority"], "Amtsgericht Frankfurt");
    assert_eq!(d["jurisdiction"], "DE");
    assert_eq!(d["legal_basis"], "StPO 94");
    assert_eq!(d["scope"], "bucket photos, prefix support/");
    assert_eq!(d["requested_by"], "o1");
    assert_eq!(d["state"], "pending");
    assert_eq!(d["approvals"], serde_json::json!(["o2"]));
    assert_eq!(
        d["visible_after_ms"].as_i64().unwrap(),
        d["created_ms"].as_i64().unwrap() + 86_400_000
    );
}

#[test]
fn reads_every_record_of_a_governance_db_written_by_schema_version_1() {
    let dir = copy_of(1);
    let db = dir.path().join("governance.db");
    assert_eq!(user_version(&db), 1);
    let gov = Governance::open(dir.path()).unwrap();
    assert_governance(&gov, &db);
    drop(gov);
    assert_eq!(user_version(&db), i64::from(SCHEMA_VERSION));
}

#[test]
fn reads_every_record_of_a_governance_db_written_by_schema_version_2() {
    let dir = copy_of(2);
    let db = dir.path().join("governance.db");
    assert_eq!(user_version(&db), 2);
    let gov = Governance::open(dir.path()).unwrap();
    assert_governance(&gov, &db);
    drop(gov);
    assert_eq!(user_version(&db), i64::from(SCHEMA_VERSION));
}

#[test]
fn reads_every_record_of_a_trustee_written_by_schema_version_3_and_adopts_nothing() {
    let dir = copy_of_dir(3);
    let db = dir.path().join("governance.db");
    assert_eq!(user_version(&db), 3);
    let gov = Governance::open(dir.path()).unwrap();
    assert_governance(&gov, &db);
    assert!(entries_of_type(&gov, "integrity_failure").is_empty());
    let upgrades: Vec<Value> = entries_of_type(&gov, "principal_created")
        .into_iter()
        .filter(|e| e["by"] == "upgrade")
        .collect();
    assert!(upgrades.is_empty(), "{upgrades:?}");
    assert_eq!(entries_of_type(&gov, "attestation").len(), 1);
    drop(gov);
    assert_eq!(user_version(&db), i64::from(SCHEMA_VERSION));
}

#[test]
fn a_governance_db_of_schema_version_3_without_its_log_is_refused() {
    let dir = copy_of_dir(3);
    std::fs::remove_dir_all(dir.path().join("log")).unwrap();
    std::fs::remove_file(dir.path().join("log-checkpoint")).unwrap();
    let Err(err) = Governance::open(dir.path()) else {
        panic!("a governance.db was opened without its log");
    };
    let text = err.to_string();
    assert!(
        text.contains("refusing to start") && text.contains("missing or was replaced"),
        "{text}"
    );
}

#[test]
fn an_earlier_releases_state_without_its_log_is_adopted_once_and_logged() {
    let dir = copy_of(2);
    let db = dir.path().join("governance.db");
    let gov = Governance::open(dir.path()).unwrap();
    let adopted: Vec<String> = entries_of_type(&gov, "principal_created")
        .iter()
        .filter(|e| e["by"] == "upgrade")
        .map(|e| e["principal"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(adopted, ["o1", "o2", "o3", "op", "aud", "adm-acme"]);
    assert_eq!(entries_of_type(&gov, "principal_revoked").len(), 1);
    assert_eq!(entries_of_type(&gov, "disclosure_requested").len(), 1);
    drop(gov);
    // once: an edit made after the upgrade is not adopted at the next start
    Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE principals SET role = 'officer' WHERE name = 'aud'",
            [],
        )
        .unwrap();
    let gov = Governance::open(dir.path()).unwrap();
    assert!(gov.principal("aud").unwrap().is_none());
    assert_eq!(
        entries_of_type(&gov, "attestation").len(),
        1,
        "adopted twice"
    );
}

#[test]
fn a_governance_db_written_before_versions_were_recorded_is_adopted_and_stamped() {
    let dir = copy_of(1);
    let db = dir.path().join("governance.db");
    set_user_version(&db, 0);
    let gov = Governance::open(dir.path()).unwrap();
    assert_governance(&gov, &db);
    drop(gov);
    assert_eq!(user_version(&db), i64::from(SCHEMA_VERSION));
}

#[test]
fn a_governance_db_from_a_newer_release_is_refused_naming_both_versions() {
    let dir = copy_of(1);
    let db = dir.path().join("governance.db");
    let newer = SCHEMA_VERSION + 1;
    set_user_version(&db, i64::from(newer));
    let Err(err) = Governance::open(dir.path()) else {
        panic!("a governance.db of schema version {newer} was opened");
    };
    let text = err.to_string();
    assert!(
        text.contains("governance.db")
            && text.contains(&format!("schema version {newer}"))
            && text.contains(&format!("versions up to {SCHEMA_VERSION}")),
        "{text}"
    );
    assert_eq!(user_version(&db), i64::from(newer), "left untouched");
}

/// The fixture writer still writes what the reader expects (and, with `OBHUT_WRITE_FIXTURES`
/// set, writes the fixture of the current schema version).
#[test]
fn the_fixture_writer_writes_what_the_reader_expects() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("governance.db");
    // Small pages keep the fixture small: the page size is fixed when the file is first
    // written, here by a table made and dropped before governance's own.
    Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA page_size = 512; CREATE TABLE t (x); DROP TABLE t;")
        .unwrap();
    let gov = Governance::open(dir.path()).unwrap();
    write_governance(&gov);
    assert_governance(&gov, &db);
    drop(gov);
    assert_eq!(user_version(&db), i64::from(SCHEMA_VERSION));
    if std::env::var_os("OBHUT_WRITE_FIXTURES").is_some() {
        let target_dir = fixture_dir(SCHEMA_VERSION);
        let _ = std::fs::remove_dir_all(&target_dir);
        std::fs::create_dir_all(target_dir.join("log")).unwrap();
        // Each database a standalone file, whatever journal mode it runs in.
        for rel in ["governance.db", "log/tlog.sqlite3"] {
            let target = target_dir.join(rel);
            Connection::open(dir.path().join(rel))
                .unwrap()
                .execute("VACUUM INTO ?1", [target.to_str().unwrap()])
                .unwrap();
            Connection::open(&target)
                .unwrap()
                .pragma_update(None, "journal_mode", "DELETE")
                .unwrap();
        }
        for rel in ["log-checkpoint", "log/log-key", "log/origin"] {
            std::fs::copy(dir.path().join(rel), target_dir.join(rel)).unwrap();
        }
    }
}

/// Schema version 5 adds `object_locks.abandoned_ms`: the locks a trustee of version 4 listed
/// are live after the migration, still refusing a shred and still reported.
#[test]
fn object_locks_listed_by_schema_version_4_stay_live() {
    let dir = copy_of_dir(3);
    let db = dir.path().join("governance.db");
    let until = now_ms() + 3_600_000;
    {
        let conn = Connection::open(&db).unwrap();
        // Version 4's layout, as that release wrote it, with one COMPLIANCE lock listed.
        conn.execute_batch(
            "CREATE TABLE object_locks (
                tenant TEXT NOT NULL,
                bucket TEXT NOT NULL,
                key TEXT NOT NULL,
                version_id TEXT NOT NULL,
                mode TEXT,
                retain_until_ms INTEGER,
                legal_hold INTEGER NOT NULL,
                PRIMARY KEY (tenant, bucket, key, version_id)
            );",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO object_locks VALUES ('acme', 'b', 'k', 'v1', 'COMPLIANCE', ?1, 0)",
            [until],
        )
        .unwrap();
    }
    set_user_version(&db, 4);
    let gov = Governance::open(dir.path()).unwrap();
    assert_eq!(gov.compliance_locks("acme", now_ms()).unwrap(), (1, until));
    assert_eq!(
        gov.locked_versions("acme", now_ms(), None, 10).unwrap(),
        vec![("b".to_owned(), "k".to_owned(), "v1".to_owned())]
    );
    drop(gov);
    assert_eq!(user_version(&db), i64::from(SCHEMA_VERSION));
}

/// A lock that the release of schema version 5 marked abandoned (`abandoned_ms` set) counts
/// again, and version 6 adopts its row without a record digest: abandonment is refused now (it could unlock a committed version), and a version that
/// may exist keeps refusing the shred and is reported until its date.
#[test]
fn object_locks_abandoned_under_schema_version_5_count_again() {
    let dir = copy_of_dir(3);
    let until = now_ms() + 3_600_000;
    {
        let gov = Governance::open(dir.path()).unwrap();
        drop(gov);
    }
    let db = dir.path().join("governance.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute(
            "INSERT INTO object_locks
                 (tenant, bucket, key, version_id, mode, retain_until_ms, legal_hold, abandoned_ms)
             VALUES ('acme', 'b', 'k', 'v1', 'COMPLIANCE', ?1, 0, ?2)",
            [until, now_ms()],
        )
        .unwrap();
        // Version 5's layout: without the column version 6 adds and the table version 7 adds.
        conn.execute_batch(
            "ALTER TABLE object_locks DROP COLUMN sealed_sha256; DROP TABLE bucket_lock_defaults;",
        )
        .unwrap();
    }
    set_user_version(&db, 5);
    let gov = Governance::open(dir.path()).unwrap();
    assert_eq!(gov.compliance_locks("acme", now_ms()).unwrap(), (1, until));
    assert_eq!(
        gov.locked_versions("acme", now_ms(), None, 10).unwrap(),
        vec![("b".to_owned(), "k".to_owned(), "v1".to_owned())]
    );
    // Schema version 6: the row has no digest of its latest record (a change is then judged
    // against a record whose state is the listed one), and keeps its state.
    let target = obhut_trustee_client::object_lock::LockTarget {
        tenant: "acme".into(),
        bucket: "b".into(),
        key: "k".into(),
        version_id: "v1".into(),
    };
    let (state, digest) = gov.latest_lock(&target).unwrap().unwrap();
    assert_eq!(
        state.retention,
        Some((
            obhut_trustee_client::object_lock::LockMode::Compliance,
            until
        ))
    );
    assert_eq!(digest, None);
    drop(gov);
    assert_eq!(user_version(&db), i64::from(SCHEMA_VERSION));
}
