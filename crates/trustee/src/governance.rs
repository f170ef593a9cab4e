//! The trustee's governance state and its transparency log: principals and their public keys,
//! tenants' policies, grants with their signed approvals, disclosure requests, quorum
//! approvals, and the Merkle log every decision and key release is appended to.
//!
//! State lives in `governance.db` (SQLite, synchronous=FULL) in the trustee's directory, the
//! log in `log/` beside it; neither is reachable from a gateway except through
//! [`obhut_trustee_client::TrusteeClient`]. Every change is appended to the log before it is
//! made or answered (append-before-act); if the append fails, nothing happens.
//!
//! It never sees object data, plaintext keys or principals' tokens: only bearer hashes and
//! public keys.

use crate::log_facts::LogFacts;
use obhut_core::{BucketNarrowing, TenantResidency};
use obhut_crypto::principal::verify_statement;
use obhut_trustee_client::log_entry::{
    DisclosureRequest, DisconnectMode, IndexedEntry, LogEntriesPage, PolicyChange,
};
use obhut_trustee_client::object_keys::KeyRelease;
use obhut_trustee_client::views::{
    ApprovalView, BucketPolicyView, DisclosureView, GrantCredentialsView, GrantView, QuorumAction,
    QuorumApproval, QuorumView, ShredPending, TenantPolicyView,
};
use obhut_trustee_client::{
    Action, CustomerApproval, DegradedWrites, GrantAccess, GrantScope, LogEntry, LogEvent,
    ParsedEntry, PrincipalInfo, Query, Role, SignedStatement, Statement, TrusteeError,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[path = "signing_keys.rs"]
pub mod signing_keys;

/// Distinct officers a grant or a disclosure needs (DESIGN.md: default 2).
pub const OFFICER_QUORUM: usize = 2;
/// An unapproved grant request lapses after this long.
pub const REQUEST_TTL_MS: i64 = 12 * 3600 * 1000;
/// The shortest a grant may run.
pub const MIN_GRANT_MS: i64 = 5_000;
/// The longest a grant may run.
pub const MAX_GRANT_MS: i64 = 30 * 24 * 3600 * 1000;
/// The longest a disclosure request may be kept from its tenant.
pub const MAX_DISCLOSURE_DELAY_MS: i64 = 366 * 24 * 3600 * 1000;
/// How far a statement's time may be from the trustee's clock.
const STATEMENT_SKEW_MS: i64 = 5 * 60 * 1000;
/// Quorum approvals older than this no longer count.
pub const APPROVAL_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Withdraws `principal`'s pending quorum approvals (crypto-shreds): when it is revoked, or
/// revokes one of its enrolled keys, none of them counts any more.
fn withdraw_approvals(db: &rusqlite::Connection, principal: &str) -> Result<(), TrusteeError> {
    db.execute("DELETE FROM approvals WHERE principal = ?1", [principal])
        .map_err(storage)?;
    Ok(())
}

/// The digest by which the trustee knows a sealed object lock record (its bytes, base64
/// decoded): SHA-256, in hex.
#[must_use]
pub fn lock_record_digest(raw: &[u8]) -> String {
    obhut_sigv4::sha256_hex(raw)
}

fn storage(e: impl std::fmt::Display) -> TrusteeError {
    TrusteeError::Storage(e.to_string())
}

fn denied(m: impl Into<String>) -> TrusteeError {
    TrusteeError::Denied(m.into())
}

fn invalid(m: impl Into<String>) -> TrusteeError {
    TrusteeError::Invalid(m.into())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn random_hex(bytes: usize) -> Result<String, TrusteeError> {
    let mut b = vec![0u8; bytes];
    obhut_crypto::random_bytes(&mut b).map_err(storage)?;
    Ok(hex_simd::encode_to_string(&b, hex_simd::AsciiCase::Lower))
}

/// A principal with its public key.
#[derive(Debug, Clone)]
pub struct PrincipalRecord {
    pub info: PrincipalInfo,
    pub public_key: Vec<u8>,
}

/// What vouches for a principal's row in `governance.db` (its `vouch` column, JSON): the row's
/// role, tenant, key, bearer hash and expiry are believed only as far as this shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Vouch {
    /// One of a new installation's first principals, enrolled without a signature: its
    /// `principal_created` entry (by `bootstrap`) precedes every entry by anyone else.
    Bootstrap,
    /// Enrolled by officers' signed `create_principal` statements, kept as they were signed.
    Signed { statements: Vec<SignedStatement> },
}

/// Distinct officers whose signed statements must enrol a principal of `role`: an officer can
/// approve grants and disclosures, and a tenant admin approves grants in its customer's name
/// and manages its S3 keys, so no one officer makes either.
const fn enrolment_quorum(role: Role) -> usize {
    match role {
        Role::Officer | Role::TenantAdmin => OFFICER_QUORUM,
        Role::Operator | Role::Auditor => 1,
    }
}

/// A principal's row as stored, before it is checked.
struct PrincipalRow {
    record: PrincipalRecord,
    bearer_hash: String,
    /// `None`: enrolled by a release before vouches were kept.
    vouch: Option<String>,
}

impl PrincipalRow {
    /// Everything the check depends on, so that a cached result is for exactly this row.
    fn digest(&self) -> String {
        let i = &self.record.info;
        let text = json!([
            i.name,
            i.role.as_str(),
            i.tenant,
            self.bearer_hash,
            hex(&self.record.public_key),
            i.expires_ms,
            self.vouch
        ])
        .to_string();
        obhut_crypto::principal::sha256_hex(text.as_bytes())
    }
}

fn hex(b: &[u8]) -> String {
    hex_simd::encode_to_string(b, hex_simd::AsciiCase::Lower)
}

/// One signed approval, kept so that it can be checked again at every use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedApproval {
    pub principal: String,
    pub role: Role,
    pub at_ms: i64,
    pub statement: String,
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantCredentials {
    pub access_key_id: String,
    pub secret: String,
    pub token_hash: String,
    pub issued_ms: i64,
}

/// What a grant may allow: reading, listing and writing current objects, and `versions`, which
/// widens those to noncurrent versions (reading, listing or removing a version by its id).
const GRANT_OPS: [&str; 4] = ["read", "list", "write", "versions"];

/// Whether a grant of `ops` allows an access of `class`: every `+`-joined part of it (the
/// gateway asks `read+versions` to read a version by its id, so a grant without `versions`
/// covers current objects only).
fn grant_allows(ops: &[String], class: &str) -> bool {
    class.split('+').all(|part| ops.iter().any(|o| o == part))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub tenant: String,
    pub bucket: String,
    pub prefix: String,
    pub ops: Vec<String>,
    pub duration_ms: i64,
    pub reason: String,
    pub requester: String,
    pub requested_ms: i64,
    /// `pending`, `approved`, `denied` or `revoked` (lapse and expiry are computed).
    pub state: String,
    pub approvals: Vec<SignedApproval>,
    pub customer_approval: bool,
    pub approved_ms: Option<i64>,
    pub expires_ms: Option<i64>,
    pub ended_by: Option<String>,
    pub credentials: Option<GrantCredentials>,
}

/// A stored grant with what the log says of it: how it ended (state, by whom), if it did, and
/// whether its request needed the tenant's approval.
type GrantAsLogged = (Grant, Option<(String, String)>, Option<bool>);

impl Grant {
    /// The state as of `now`: `pending`/`approved` turn into `lapsed`/`expired` with time.
    fn state_at(&self, now: i64) -> &str {
        match self.state.as_str() {
            "pending" if now >= self.requested_ms.saturating_add(REQUEST_TTL_MS) => "lapsed",
            "approved" if self.expires_ms.is_none_or(|e| now >= e) => "expired",
            s => s,
        }
    }

    fn view(&self, now: i64) -> GrantView {
        GrantView {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            ops: self.ops.clone(),
            duration_ms: self.duration_ms,
            reason: self.reason.clone(),
            requester: self.requester.clone(),
            requested_ms: self.requested_ms,
            state: self.state_at(now).to_owned(),
            approvals: self
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    principal: a.principal.clone(),
                    role: a.role,
                    at_ms: a.at_ms,
                })
                .collect(),
            customer_approval: self.customer_approval,
            approved_ms: self.approved_ms,
            expires_ms: self.expires_ms,
            ended_by: self.ended_by.clone(),
            scope_digest: self.scope_digest(),
            progress: None,
        }
    }

    /// What an approval of this grant must have signed.
    pub fn scope_digest(&self) -> String {
        obhut_trustee_client::governance::grant_scope_digest(
            &obhut_trustee_client::governance::GrantScopeFields {
                id: &self.id,
                tenant: &self.tenant,
                bucket: &self.bucket,
                prefix: &self.prefix,
                ops: &self.ops,
                duration_ms: self.duration_ms,
                requester: &self.requester,
                reason: &self.reason,
            },
        )
    }

    fn counts(&self) -> (usize, bool) {
        let mut officers: Vec<&str> = self
            .approvals
            .iter()
            .filter(|a| a.role == Role::Officer && a.principal != self.requester)
            .map(|a| a.principal.as_str())
            .collect();
        officers.sort_unstable();
        officers.dedup();
        let tenant = self.approvals.iter().any(|a| a.role == Role::TenantAdmin);
        (officers.len(), tenant)
    }

    fn complete(&self) -> bool {
        let (officers, tenant) = self.counts();
        officers >= OFFICER_QUORUM && (tenant || !self.customer_approval)
    }

    fn pending_text(&self) -> String {
        let (officers, tenant) = self.counts();
        let mut s = format!("pending: {officers} of {OFFICER_QUORUM} officers");
        if self.customer_approval {
            s.push_str(if tenant {
                ", tenant admin approved"
            } else {
                ", tenant admin has not approved"
            });
        }
        s
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Disclosure {
    pub id: String,
    pub tenant: String,
    pub authority: String,
    pub jurisdiction: String,
    pub legal_basis: String,
    pub scope: String,
    pub requested_by: String,
    pub created_ms: i64,
    /// `pending`, `refused` (by policy), `approved` or `denied`.
    pub state: String,
    pub approvals: Vec<String>,
    pub decided_ms: Option<i64>,
    pub reason: Option<String>,
    /// The tenant sees it from then on.
    pub visible_after_ms: i64,
}

/// A tenant's policy: what the trustee decides by, and the residency that decides where its
/// data may go (the catalog keeps only a checked copy of that).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantPolicy {
    pub name: String,
    pub jurisdictions: Vec<String>,
    pub min_sites: u32,
    pub customer_approval: bool,
    /// Kept since schema version 2 (earlier records: taken from the log when migrating).
    #[serde(default)]
    pub degraded_writes: bool,
}

/// What a crypto-shred approval led to.
pub enum ShredOutcome {
    Pending(ShredPending),
    Reached,
}

pub struct Governance {
    db: Mutex<Connection>,
    log: obhut_tlog::Log,
    /// Refused accesses logged per grant in the current minute, so that a flood of refused
    /// requests fills neither the log nor the disk.
    denials: Mutex<std::collections::HashMap<String, DenialWindow>>,
    /// The trustee's directory (the kept checkpoint lives there).
    dir: PathBuf,
    /// What the log says; lock order: `db` before `facts`.
    facts: Mutex<LogFacts>,
    /// Principals' rows whose vouch has been verified, by name: the digest of the row checked.
    vouched: Mutex<HashMap<String, String>>,
    /// Integrity failures logged already (each is logged once per start).
    alarms: Mutex<HashSet<String>>,
    /// Officers' and tenant admins' enrolled signing keys, as the log shows them; lock order:
    /// after `db` and `facts`.
    signing_keys: Mutex<signing_keys::SigningKeys>,
}

/// Refused accesses under one grant within one minute.
#[derive(Default)]
struct DenialWindow {
    start_ms: i64,
    logged: u32,
    suppressed: u32,
}

/// Refused accesses logged per grant and minute; the rest are counted, and the count is
/// logged with the next one logged.
const DENIALS_LOGGED_PER_MINUTE: u32 = 10;
/// Integrity alarms from gateways logged per tenant and minute.
const ALARMS_LOGGED_PER_MINUTE: u32 = 60;

/// governance.db's layouts, oldest first (`PRAGMA user_version` says which one a database
/// has). A released migration never changes; a new layout is a migration appended here, and
/// `tests/fixtures/` gets a database written by the release before it.
const SCHEMA: obhut_migrate::Schema = obhut_migrate::Schema {
    name: "governance.db",
    migrations: &[
        SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7,
    ],
    identifying_table: "principals",
};

/// Version 1: the layout of every release before versions were recorded, so it is written to
/// adopt their databases too (`IF NOT EXISTS`).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS principals (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    tenant TEXT,
    bearer_hash TEXT NOT NULL UNIQUE,
    public_key BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS grants (id TEXT PRIMARY KEY, access_key_id TEXT UNIQUE, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS disclosures (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    action TEXT NOT NULL,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (action, principal)
);
CREATE TABLE IF NOT EXISTS log_index (idx INTEGER PRIMARY KEY, tenant TEXT, disclosure TEXT);
CREATE TABLE IF NOT EXISTS statements_seen (
    principal TEXT NOT NULL,
    nonce TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, nonce)
);
";

/// Version 2: buckets' residency narrowings (before, only the log and the catalog had them),
/// and a marker that the policies of earlier releases are still to be taken from the log
/// ([`Governance::replay_policies`] removes it in the transaction that writes them).
const SCHEMA_V2: &str = "
CREATE TABLE bucket_policies (
    tenant TEXT NOT NULL,
    bucket TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (tenant, bucket)
);
CREATE TABLE policies_from_log (pending INTEGER NOT NULL);
INSERT INTO policies_from_log (pending) VALUES (1);
";

/// Version 3: what vouches for each principal ([`Vouch`], JSON). Principals enrolled before
/// have none: they are vouched for by their `principal_created` entry in the log.
/// Enrolments of officers waiting for a second officer's signed statement.
const SCHEMA_V3: &str = "
ALTER TABLE principals ADD COLUMN vouch TEXT;
CREATE TABLE pending_enrolments (
    name TEXT PRIMARY KEY,
    fields TEXT NOT NULL,
    statements TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
";

/// Version 4: every object version the trustee sealed a lock for (object lock: a retention or
/// a legal hold), with its latest state, so that a crypto-shred of a tenant whose versions a
/// COMPLIANCE retention still protects is refused ([`Governance::compliance_locks`]) and a
/// locked version missing from the catalog is found ([`Governance::locked_versions`]). Only
/// adds a table.
const SCHEMA_V4: &str = "
CREATE TABLE object_locks (
    tenant TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version_id TEXT NOT NULL,
    mode TEXT,
    retain_until_ms INTEGER,
    legal_hold INTEGER NOT NULL,
    PRIMARY KEY (tenant, bucket, key, version_id)
);
";

/// Version 5: when a version's first lock record was abandoned because its write did not
/// commit (`NULL`: it was not). Written by one release only: abandonment is refused since
/// (the provider alone held the ticket that allowed it), the column is no longer written or
/// read, and a row with it set counts like every other (for shred refusal and residency),
/// until its date: its version may exist. Kept so that a database of that release opens.
const SCHEMA_V5: &str = "
ALTER TABLE object_locks ADD COLUMN abandoned_ms INTEGER;
";

/// Version 6: the SHA-256 of the latest lock record the trustee sealed for each version it
/// lists, so that a change is judged only against that record, never against an older genuine
/// one the provider kept (from before a retention was extended or a legal hold set). Rows of
/// releases before have none (`NULL`): for them a change is accepted only against a record
/// whose state is the one listed ([`Governance::latest_lock`]), and the digest is written with
/// the next seal.
const SCHEMA_V6: &str = "
ALTER TABLE object_locks ADD COLUMN sealed_sha256 TEXT;
";

/// Version 7: each bucket's default retention as the tenant's signed
/// PutObjectLockConfiguration set it (`mode` `NULL`: a configuration without a default), the
/// only retention a write without lock headers may be sealed with. Keyed by tenant and bucket
/// name (the trustee knows no other identity of a bucket). A bucket without a row has no
/// default the trustee knows of: databases of releases before start empty.
const SCHEMA_V7: &str = "
CREATE TABLE bucket_lock_defaults (
    tenant TEXT NOT NULL,
    bucket TEXT NOT NULL,
    mode TEXT,
    days INTEGER,
    years INTEGER,
    set_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, bucket)
);
";

/// Fields given replace those recorded; fields not given keep their value.
fn merge_narrowing(
    rule: &mut BucketNarrowing,
    jurisdictions: Option<Vec<String>>,
    min_sites: Option<u32>,
) {
    if jurisdictions.is_some() {
        rule.jurisdictions = jurisdictions;
    }
    if min_sites.is_some() {
        rule.min_sites = min_sites;
    }
}

fn bucket_policy_in(
    db: &Connection,
    tenant: &str,
    bucket: &str,
) -> Result<BucketNarrowing, TrusteeError> {
    let record: Option<String> = db
        .query_row(
            "SELECT record FROM bucket_policies WHERE tenant = ?1 AND bucket = ?2",
            [tenant, bucket],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage)?;
    record.map_or_else(
        || Ok(BucketNarrowing::default()),
        |r| serde_json::from_str(&r).map_err(storage),
    )
}

fn put_bucket_policy_in(
    db: &Connection,
    tenant: &str,
    bucket: &str,
    rule: &BucketNarrowing,
) -> Result<(), TrusteeError> {
    db.execute(
        "INSERT INTO bucket_policies (tenant, bucket, record) VALUES (?1, ?2, ?3) ON CONFLICT(tenant, bucket) DO UPDATE SET record = excluded.record",
        params![tenant, bucket, serde_json::to_string(rule).map_err(storage)?],
    )
    .map_err(storage)?;
    Ok(())
}

fn role_of(s: &str) -> Result<Role, TrusteeError> {
    Role::parse(s).ok_or_else(|| storage(format!("unknown role {s:?} in governance.db")))
}

impl Governance {
    /// The schema version this release writes (`PRAGMA user_version` of `governance.db`).
    pub const SCHEMA_VERSION: u32 = SCHEMA.current_version();

    /// Opens (creating on first use) the state in `dir/governance.db` and the log in `dir/log`.
    /// A database written by a newer release (a newer schema version) is refused, untouched.
    pub fn open(dir: &Path) -> Result<Self, TrusteeError> {
        let mut conn = Connection::open(dir.join("governance.db")).map_err(storage)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(storage)?;
        // The migration takes the write lock: wait for another writer rather than fail.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(storage)?;
        let had_tables: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'principals'",
                [],
                |r| r.get(0),
            )
            .map_err(storage)?;
        let migrated = obhut_migrate::migrate(&mut conn, &SCHEMA).map_err(storage)?;
        let log = open_log(&dir.join("log"))?;
        let mut facts = LogFacts::default();
        let mut signing_keys = signing_keys::SigningKeys::default();
        for idx in 0..log.size() {
            if let ParsedEntry::Known(entry) = ParsedEntry::parse(&log.entry(idx).map_err(storage)?)
            {
                facts.observe(idx, &entry);
                signing_keys.observe(&entry);
            }
        }
        facts.size = log.size();
        // A release that did not check its state against the log kept no checkpoint apart
        // from it either: its log is adopted as it is, once (the log then says so). A new
        // database beside a log that is not new is not adopted.
        let adopt = !facts.upgraded && had_tables && migrated.from < 3;
        if had_tables && migrated.from >= 3 && log.size() == 0 {
            return Err(storage(format!(
                "{} belongs to a transparency log that is missing or was replaced ({} holds no entry of this trustee); refusing to start",
                dir.join("governance.db").display(),
                dir.join("log").display()
            )));
        }
        let upgrade = !facts.upgraded;
        crate::kept_checkpoint::check_at_start(dir, &log, adopt)?;
        let g = Self {
            db: Mutex::new(conn),
            log,
            denials: Mutex::default(),
            dir: dir.to_owned(),
            facts: Mutex::new(facts),
            vouched: Mutex::new(HashMap::new()),
            alarms: Mutex::new(HashSet::new()),
            signing_keys: Mutex::new(signing_keys),
        };
        g.reindex()?;
        g.replay_policies()?;
        if upgrade {
            g.adopt_unlogged()?;
            g.record(LogEvent::Attestation {
                kind: crate::log_facts::STATE_CHECKED.to_owned(),
                tenant: None,
                digest: obhut_crypto::principal::sha256_hex(
                    crate::log_facts::STATE_CHECKED.as_bytes(),
                ),
            })?;
        }
        Ok(g)
    }

    /// Once, the first time this release opens a trustee's state: what `governance.db` holds
    /// that the log does not show (an earlier release's state beside a log started anew, or
    /// none) is logged as it stands (enrolments by `upgrade`, endings, disclosure requests with
    /// their decisions), so that it is checked against the log from now on. Auditors see these
    /// entries; docs/governance.md says what this trusts.
    fn adopt_unlogged(&self) -> Result<(), TrusteeError> {
        type Row = (String, String, Option<String>, Vec<u8>, Option<i64>, bool);
        let (principals, grants, disclosures) = {
            let db = self.db()?;
            let principals: Vec<Row> = db
                .prepare("SELECT name, role, tenant, public_key, expires_ms, revoked FROM principals WHERE vouch IS NULL ORDER BY rowid")
                .map_err(storage)?
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })
                .map_err(storage)?
                .collect::<Result<_, _>>()
                .map_err(storage)?;
            let records = |sql: &str| -> Result<Vec<String>, TrusteeError> {
                db.prepare(sql)
                    .map_err(storage)?
                    .query_map([], |r| r.get(0))
                    .map_err(storage)?
                    .collect::<Result<_, _>>()
                    .map_err(storage)
            };
            (
                principals,
                records("SELECT record FROM grants ORDER BY rowid")?,
                records("SELECT record FROM disclosures ORDER BY rowid")?,
            )
        };
        for (name, role, tenant, public_key, expires_ms, revoked) in principals {
            let role = role_of(&role)?;
            let (logged, revoked_in_log) = {
                let f = self.facts()?;
                (
                    f.creation(
                        &name,
                        role,
                        tenant.as_deref(),
                        &hex(&public_key),
                        expires_ms,
                        None,
                    )
                    .is_some(),
                    f.revoked.contains_key(&name),
                )
            };
            if !logged {
                self.record(LogEvent::PrincipalCreated {
                    name: name.clone(),
                    role,
                    tenant: tenant.clone(),
                    public_key: hex(&public_key),
                    expires_ms,
                    actor: "upgrade".into(),
                })?;
            }
            if revoked && !revoked_in_log {
                self.record(LogEvent::PrincipalRevoked {
                    name,
                    role,
                    tenant,
                    actor: "upgrade".into(),
                })?;
            }
        }
        for record in grants {
            let g: Grant = serde_json::from_str(&record).map_err(storage)?;
            if self.facts()?.grants_ended.contains_key(&g.id) {
                continue;
            }
            let actor = g.ended_by.clone().unwrap_or_else(|| "upgrade".into());
            match g.state.as_str() {
                "revoked" => self.record(LogEvent::GrantRevoked {
                    grant: g.id,
                    tenant: g.tenant,
                    actor,
                })?,
                "denied" => self.record(LogEvent::GrantDenied {
                    grant: g.id,
                    tenant: g.tenant,
                    actor,
                    reason: None,
                })?,
                _ => continue,
            };
        }
        for record in disclosures {
            let d: Disclosure = serde_json::from_str(&record).map_err(storage)?;
            if self.facts()?.disclosures.contains_key(&d.id) {
                continue;
            }
            let request = DisclosureRequest {
                disclosure: d.id.clone(),
                tenant: d.tenant.clone(),
                authority: d.authority.clone(),
                jurisdiction: d.jurisdiction.clone(),
                legal_basis: d.legal_basis.clone(),
                scope: d.scope.clone(),
                reason: d.reason.clone(),
                delay_ms: d.visible_after_ms.saturating_sub(d.created_ms),
                visible_after_ms: d.visible_after_ms,
                actor: d.requested_by.clone(),
            };
            self.record(if d.state == "refused" {
                LogEvent::DisclosureRefused(request)
            } else {
                LogEvent::DisclosureRequested(request)
            })?;
            for a in &d.approvals {
                self.record(LogEvent::DisclosureApproval {
                    disclosure: d.id.clone(),
                    tenant: d.tenant.clone(),
                    actor: a.clone(),
                })?;
            }
            match d.state.as_str() {
                "approved" => {
                    self.record(LogEvent::DisclosureApproved {
                        disclosure: d.id.clone(),
                        tenant: d.tenant.clone(),
                        approvers: d.approvals.clone(),
                    })?;
                }
                "denied" => {
                    self.record(LogEvent::DisclosureDenied {
                        disclosure: d.id.clone(),
                        tenant: d.tenant.clone(),
                        actor: "upgrade".into(),
                        reason: None,
                    })?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The trustee's name: its log's origin.
    pub fn identity(&self) -> &str {
        self.log.origin()
    }

    fn facts(&self) -> Result<std::sync::MutexGuard<'_, LogFacts>, TrusteeError> {
        self.facts
            .lock()
            .map_err(|_| storage("log facts lock poisoned"))
    }

    /// Reports that the trustee's own state disagrees with what was signed or logged, once
    /// per subject and finding: an error in the service's log and an `integrity_failure`
    /// entry in the transparency log. The caller then refuses to act on the record.
    fn integrity(&self, subject: &str, detail: &str) -> Result<(), TrusteeError> {
        let fresh = self
            .alarms
            .lock()
            .map_err(|_| storage("alarm lock poisoned"))?
            .insert(format!("{subject}\n{detail}"));
        if fresh {
            let (what, name) = subject.split_once(':').unwrap_or(("record", subject));
            tracing::error!(
                what,
                subject = %obhut_core::logged(name),
                "integrity failure: governance.db disagrees with what was signed or logged; the record is not acted on"
            );
            self.record(LogEvent::IntegrityFailure {
                what: what.to_owned(),
                subject: name.to_owned(),
                tenant: None,
                detail: detail.to_owned(),
            })?;
        }
        Ok(())
    }

    /// Once, after the migration to version 2: the degraded-writes setting of each tenant and
    /// every bucket narrowing, as the log recorded them (earlier releases kept them only
    /// there and in the catalog), in log order, the last change winning.
    fn replay_policies(&self) -> Result<(), TrusteeError> {
        let mut db = self.db()?;
        let pending: i64 = db
            .query_row("SELECT COUNT(*) FROM policies_from_log", [], |r| r.get(0))
            .map_err(storage)?;
        if pending == 0 {
            return Ok(());
        }
        let tx = db.transaction().map_err(storage)?;
        for idx in 0..self.log.size() {
            let bytes = self.log.entry(idx).map_err(storage)?;
            let Ok(entry) = serde_json::from_slice::<LogEntry>(&bytes) else {
                continue;
            };
            match entry.event {
                LogEvent::PolicyChanged(PolicyChange::Tenant {
                    tenant,
                    degraded_writes: Some(d),
                    ..
                }) => {
                    let record: Option<String> = tx
                        .query_row(
                            "SELECT record FROM tenants WHERE name = ?1",
                            [&tenant],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(storage)?;
                    let Some(record) = record else { continue };
                    let mut t: TenantPolicy = serde_json::from_str(&record).map_err(storage)?;
                    t.degraded_writes = d == DegradedWrites::Accept;
                    tx.execute(
                        "UPDATE tenants SET record = ?2 WHERE name = ?1",
                        params![tenant, serde_json::to_string(&t).map_err(storage)?],
                    )
                    .map_err(storage)?;
                }
                LogEvent::PolicyChanged(PolicyChange::Bucket {
                    tenant,
                    bucket,
                    jurisdictions,
                    min_sites,
                    ..
                }) => {
                    let mut rule = bucket_policy_in(&tx, &tenant, &bucket)?;
                    merge_narrowing(&mut rule, jurisdictions, min_sites);
                    put_bucket_policy_in(&tx, &tenant, &bucket, &rule)?;
                }
                _ => {}
            }
        }
        tx.execute("DELETE FROM policies_from_log", [])
            .map_err(storage)?;
        tx.commit().map_err(storage)
    }

    pub(crate) fn db(&self) -> Result<std::sync::MutexGuard<'_, Connection>, TrusteeError> {
        self.db
            .lock()
            .map_err(|_| storage("governance lock poisoned"))
    }

    /// Indexes log entries appended before a crash cut the indexing short.
    fn reindex(&self) -> Result<(), TrusteeError> {
        let db = self.db()?;
        let next: i64 = db
            .query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_index", [], |r| {
                r.get(0)
            })
            .map_err(storage)?;
        let size = self.log.size();
        for idx in u64::try_from(next).unwrap_or(0)..size {
            index_bytes(&db, idx, &self.log.entry(idx).map_err(storage)?)?;
        }
        Ok(())
    }

    /// Appends bytes as they are, as an earlier or a later release may have written them, and
    /// indexes them as [`Self::reindex`] would. Tests only: the trustee appends [`LogEvent`]s.
    #[cfg(test)]
    pub(crate) fn append_raw(&self, bytes: &[u8]) -> Result<u64, TrusteeError> {
        let db = self.db()?;
        let idx = self.log.append(bytes).map_err(storage)?;
        index_bytes(&db, idx, bytes)?;
        if let ParsedEntry::Known(entry) = ParsedEntry::parse(bytes) {
            self.facts()?.observe(idx, &entry);
        }
        crate::kept_checkpoint::keep(&self.dir, &self.log)?;
        Ok(idx)
    }

    /// Appends `events` to the log in one durable write (one fsync for all: a group commit)
    /// and indexes them. Nothing that the entries record may happen before this returns.
    pub fn record_batch(
        &self,
        events: Vec<LogEvent>,
    ) -> Result<std::ops::Range<u64>, TrusteeError> {
        let mut entries = Vec::with_capacity(events.len());
        let mut bytes = Vec::with_capacity(events.len());
        for event in events {
            let entry = LogEntry {
                event,
                at_ms: now_ms(),
                salt: random_hex(16)?,
            };
            bytes.push(serde_json::to_vec(&entry).map_err(storage)?);
            entries.push(entry);
        }
        let db = self.db()?;
        self.releases_allowed(entries.iter().map(|e| &e.event))?;
        let range = self.log.append_batch(&bytes).map_err(|e| {
            tracing::error!(error = %e, "transparency log append failed; the action is refused");
            storage(format!("the transparency log cannot be written: {e}"))
        })?;
        // The batch's index rows in one transaction (one commit, not one per entry); should it
        // not commit, reindexing on the next start files them from the log.
        let tx = db.unchecked_transaction().map_err(storage)?;
        for (idx, entry) in range.clone().zip(&entries) {
            index_entry(&tx, idx, entry.event.tenant(), entry.event.disclosure())?;
        }
        tx.commit().map_err(storage)?;
        let mut facts = self.facts()?;
        for (idx, entry) in range.clone().zip(&entries) {
            facts.observe(idx, entry);
        }
        drop(facts);
        crate::kept_checkpoint::keep(&self.dir, &self.log)?;
        Ok(range)
    }

    /// Every entry of the log, parsed (tests).
    #[cfg(test)]
    pub(crate) fn test_entries(&self) -> Vec<LogEntry> {
        (0..self.log.size())
            .filter_map(|i| serde_json::from_slice(&self.log.entry(i).ok()?).ok())
            .collect()
    }

    /// Whether bucket key `version` of `tenant`'s `bucket` ever left the trustee (the log
    /// has a `key_release` of it).
    pub fn bucket_key_was_released(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
    ) -> Result<bool, TrusteeError> {
        Ok(self
            .facts()?
            .released
            .contains(&(tenant.to_owned(), bucket.to_owned(), version)))
    }

    /// The tenant's key release policy, as the log records its admin's last choice.
    pub fn key_release(&self, tenant: &str) -> Result<KeyRelease, TrusteeError> {
        Ok(self
            .facts()?
            .key_release
            .get(tenant)
            .copied()
            .unwrap_or_default())
    }

    /// Refuses to log a key release while the provider is disconnected. Called with the
    /// database lock held, which every append holds: no release entry can follow the
    /// `trustee_disconnected` entry in the log.
    fn releases_allowed<'a>(
        &self,
        mut events: impl Iterator<Item = &'a LogEvent>,
    ) -> Result<(), TrusteeError> {
        if events.any(|e| {
            matches!(
                e,
                LogEvent::KeyRelease { .. } | LogEvent::ObjectKeysReleased { .. }
            )
        }) {
            self.check_connected()?;
        }
        Ok(())
    }

    /// Appends one entry to the log, durably, and indexes it. Nothing that the entry records
    /// may happen before this returns.
    pub fn record(&self, event: LogEvent) -> Result<u64, TrusteeError> {
        self.record_with(event, |_| Ok(()))
    }

    /// [`Self::record`], then `then` on the database before anyone else reads it: a record
    /// written here is never seen disagreeing with the entry that precedes it.
    fn record_with(
        &self,
        event: LogEvent,
        then: impl FnOnce(&Connection) -> Result<(), TrusteeError>,
    ) -> Result<u64, TrusteeError> {
        let entry = LogEntry {
            event,
            at_ms: now_ms(),
            // A random salt: entries withheld from a reader cannot be guessed from their leaf hash.
            salt: random_hex(16)?,
        };
        let bytes = serde_json::to_vec(&entry).map_err(storage)?;
        let db = self.db()?;
        self.releases_allowed(std::iter::once(&entry.event))?;
        let idx = self.log.append(&bytes).map_err(|e| {
            tracing::error!(error = %e, "transparency log append failed; the action is refused");
            storage(format!("the transparency log cannot be written: {e}"))
        })?;
        index_entry(&db, idx, entry.event.tenant(), entry.event.disclosure())?;
        self.facts()?.observe(idx, &entry);
        self.signing_keys
            .lock()
            .map_err(|_| storage("signing key lock poisoned"))?
            .observe(&entry);
        // The entry is durable; the kept checkpoint follows it (a crash in between leaves the
        // log longer than the kept checkpoint, which is fine).
        crate::kept_checkpoint::keep(&self.dir, &self.log)?;
        then(&db)?;
        Ok(idx)
    }

    /// The JSON record the query (with `arg`) selects, if any.
    fn record_of<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        arg: &str,
    ) -> Result<Option<T>, TrusteeError> {
        let record: Option<String> = self
            .db()?
            .query_row(sql, [arg], |r| r.get(0))
            .optional()
            .map_err(storage)?;
        record
            .map(|r| serde_json::from_str(&r).map_err(storage))
            .transpose()
    }

    // ---------------------------------------------------------------- principals

    pub fn authenticate(&self, bearer_hash: &str) -> Result<Option<PrincipalInfo>, TrusteeError> {
        let db = self.db()?;
        let name: Option<String> = db
            .query_row(
                "SELECT name FROM principals WHERE bearer_hash = ?1",
                [bearer_hash],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        drop(db);
        match name {
            Some(n) => Ok(self.principal(&n)?.map(|p| p.info)),
            None => Ok(None),
        }
    }

    /// A principal as its row says, unchecked.
    fn principal_row(&self, name: &str) -> Result<Option<PrincipalRow>, TrusteeError> {
        let db = self.db()?;
        let row = db
            .query_row(
                "SELECT name, role, tenant, public_key, created_ms, expires_ms, revoked, bearer_hash, vouch FROM principals WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        (
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                        ),
                        (
                            r.get::<_, i64>(4)?,
                            r.get::<_, Option<i64>>(5)?,
                            r.get::<_, bool>(6)?,
                        ),
                        (r.get::<_, String>(7)?, r.get::<_, Option<String>>(8)?),
                    ))
                },
            )
            .optional()
            .map_err(storage)?;
        // Read under the same lock as the row, so a revocation being written is seen whole.
        let revoked_in_log = self.facts()?.revoked.contains_key(name);
        drop(db);
        let Some((
            (name, role, tenant, public_key),
            (created_ms, expires_ms, revoked),
            (bearer_hash, vouch),
        )) = row
        else {
            return Ok(None);
        };
        if revoked_in_log && !revoked {
            self.integrity(
                &format!("principal:{name}"),
                "revoked in the transparency log but not in governance.db (revived by an edit); it stays revoked",
            )?;
        }
        Ok(Some(PrincipalRow {
            record: PrincipalRecord {
                info: PrincipalInfo {
                    name,
                    role: role_of(&role)?,
                    tenant,
                    created_ms,
                    expires_ms,
                    // The log decides: an edit cannot take a revocation back.
                    revoked: revoked || revoked_in_log,
                },
                public_key,
            },
            bearer_hash,
            vouch,
        }))
    }

    /// A principal whose row is vouched for (see [`Vouch`]): its role, tenant, key, bearer
    /// hash and expiry as signed or logged when it was enrolled, revoked if the log says so.
    /// A row nothing vouches for is reported ([`Self::integrity`]) and treated as absent.
    pub fn principal(&self, name: &str) -> Result<Option<PrincipalRecord>, TrusteeError> {
        self.principal_checked(name, 0)
    }

    fn principal_checked(
        &self,
        name: &str,
        depth: usize,
    ) -> Result<Option<PrincipalRecord>, TrusteeError> {
        let Some(row) = self.principal_row(name)? else {
            return Ok(None);
        };
        let digest = row.digest();
        let cached = self
            .vouched
            .lock()
            .map_err(|_| storage("vouch cache lock poisoned"))?
            .get(name)
            .is_some_and(|d| *d == digest);
        if !cached {
            if let Err(why) = self.check_vouch(&row, depth)? {
                self.integrity(&format!("principal:{name}"), &why)?;
                return Ok(None);
            }
            self.vouched
                .lock()
                .map_err(|_| storage("vouch cache lock poisoned"))?
                .insert(name.to_owned(), digest);
        }
        Ok(Some(row.record))
    }

    /// `Ok(Err(why))` if nothing vouches for the row as it is.
    fn check_vouch(
        &self,
        row: &PrincipalRow,
        depth: usize,
    ) -> Result<Result<(), String>, TrusteeError> {
        let info = &row.record.info;
        let key_hex = hex(&row.record.public_key);
        let Some(vouch) = &row.vouch else {
            // Enrolled by an earlier release: its enrolment entry vouches for it.
            let logged = self
                .facts()?
                .creation(
                    &info.name,
                    info.role,
                    info.tenant.as_deref(),
                    &key_hex,
                    info.expires_ms,
                    None,
                )
                .is_some();
            return Ok(if logged {
                Ok(())
            } else {
                Err("no principal_created entry in the log has its role, tenant, key and expiry (edited or inserted in governance.db)".into())
            });
        };
        let Ok(vouch) = serde_json::from_str::<Vouch>(vouch) else {
            return Ok(Err("its vouch is not readable".into()));
        };
        match vouch {
            Vouch::Bootstrap => {
                let facts = self.facts()?;
                let Some(c) = facts.creation(
                    &info.name,
                    info.role,
                    info.tenant.as_deref(),
                    &key_hex,
                    info.expires_ms,
                    Some("bootstrap"),
                ) else {
                    return Ok(Err("no principal_created entry by bootstrap has its role, tenant, key and expiry (edited or inserted in governance.db)".into()));
                };
                if facts.bootstrap_end.is_some_and(|end| c.index > end) {
                    return Ok(Err(
                        "its enrolment by bootstrap was logged after the installation's first entries"
                            .into(),
                    ));
                }
                Ok(Ok(()))
            }
            Vouch::Signed { statements } => {
                if depth > 32 {
                    return Ok(Err("its chain of enrolling officers is too long".into()));
                }
                let mut officers: Vec<String> = Vec::new();
                for signed in &statements {
                    if let Some(signer) = self.enrolling_officer(row, signed, depth)? {
                        officers.push(signer);
                    }
                }
                officers.sort_unstable();
                officers.dedup();
                let needed = enrolment_quorum(info.role);
                if officers.len() < needed {
                    return Ok(Err(format!(
                        "{} of the {needed} officers' signed statements needed to enrol a {} verify for its row as it is (edited or inserted in governance.db)",
                        officers.len(),
                        info.role.as_str()
                    )));
                }
                Ok(Ok(()))
            }
        }
    }

    /// The officer whose signed statement enrols exactly this row, if it does: the statement
    /// names the row's fields, and its signer is an officer (checked in turn), not revoked or
    /// expired when it signed, whose key verifies the signature.
    fn enrolling_officer(
        &self,
        row: &PrincipalRow,
        signed: &SignedStatement,
        depth: usize,
    ) -> Result<Option<String>, TrusteeError> {
        let info = &row.record.info;
        let Ok(st) = serde_json::from_str::<Statement>(&signed.statement) else {
            return Ok(None);
        };
        let Action::CreatePrincipal {
            name,
            role,
            tenant,
            bearer_hash,
            public_key,
            expires_ms,
        } = &st.action
        else {
            return Ok(None);
        };
        let same = *name == info.name
            && *role == info.role
            && *tenant == info.tenant
            && *bearer_hash == row.bearer_hash
            && public_key.to_ascii_lowercase() == hex(&row.record.public_key)
            && *expires_ms == info.expires_ms;
        if !same || st.principal == info.name {
            return Ok(None);
        }
        let Some(signer) = self.principal_checked(&st.principal, depth + 1)? else {
            return Ok(None);
        };
        if signer.info.role != Role::Officer {
            return Ok(None);
        }
        let revoked_before = self
            .facts()?
            .revoked
            .get(&st.principal)
            .is_some_and(|at| *at <= st.at_ms);
        let expired_before = signer.info.expires_ms.is_some_and(|e| e <= st.at_ms);
        if revoked_before || expired_before {
            return Ok(None);
        }
        let Ok(sig) = base64_simd::STANDARD.decode_to_vec(signed.signature.as_bytes()) else {
            return Ok(None);
        };
        Ok(verify_statement(&signer.public_key, &signed.statement, &sig).then_some(st.principal))
    }

    /// The principal, if it exists and is neither revoked nor expired.
    fn live_principal(&self, name: &str) -> Result<Option<PrincipalRecord>, TrusteeError> {
        let now = now_ms();
        Ok(self
            .principal(name)?
            .filter(|p| !p.info.revoked && p.info.expires_ms.is_none_or(|e| e > now)))
    }

    fn principals(&self) -> Result<Vec<PrincipalInfo>, TrusteeError> {
        let names: Vec<String> = {
            let db = self.db()?;
            let mut st = db
                .prepare("SELECT name FROM principals ORDER BY name")
                .map_err(storage)?;
            st.query_map([], |r| r.get(0))
                .map_err(storage)?
                .collect::<Result<_, _>>()
                .map_err(storage)?
        };
        let mut out = Vec::new();
        for n in names {
            if let Some(p) = self.principal(&n)? {
                out.push(p.info);
            }
        }
        Ok(out)
    }

    /// What a new principal's fields must be.
    fn check_new_principal(
        &self,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        bearer_hash: &str,
        public_key: &[u8],
    ) -> Result<(), TrusteeError> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(invalid(
                "a principal's name is 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        if public_key.len() != obhut_crypto::principal::PUBLIC_KEY_LEN {
            return Err(invalid("a principal's public key is 32 bytes (hex)"));
        }
        if bearer_hash.len() != 64 || !bearer_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("bearer_hash must be a hex SHA-256"));
        }
        match (role, tenant) {
            (Role::TenantAdmin, Some(t)) => {
                if self.tenant(t)?.is_none() {
                    return Err(TrusteeError::NotFound(format!("no tenant {t:?}")));
                }
            }
            (Role::TenantAdmin, None) => {
                return Err(invalid("a tenant admin needs --tenant"));
            }
            (_, Some(_)) => return Err(invalid("only a tenant admin belongs to a tenant")),
            (_, None) => {}
        }
        Ok(())
    }

    /// Enrols a principal. `by` is who did it (an officer, or `bootstrap` at first start);
    /// `vouch` is kept with the row and checked at every use ([`Self::principal`]).
    #[allow(clippy::too_many_arguments)]
    pub fn add_principal(
        &self,
        by: &str,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        bearer_hash: &str,
        public_key: &[u8],
        expires_ms: Option<i64>,
        vouch: &Vouch,
    ) -> Result<PrincipalInfo, TrusteeError> {
        if *vouch == Vouch::Bootstrap && self.facts()?.bootstrap_end.is_some() {
            return Err(denied(
                "principals are enrolled without a signature only on a new installation; an officer enrols them now",
            ));
        }
        self.check_new_principal(name, role, tenant, bearer_hash, public_key)?;
        if self.principal(name)?.is_some() {
            return Err(TrusteeError::Conflict(format!(
                "a principal named {name:?} exists"
            )));
        }
        let info = PrincipalInfo {
            name: name.to_owned(),
            role,
            tenant: tenant.map(str::to_owned),
            created_ms: now_ms(),
            expires_ms,
            revoked: false,
        };
        let vouch_json = serde_json::to_string(vouch).map_err(storage)?;
        self.record_with(
            LogEvent::PrincipalCreated {
                name: name.to_owned(),
                role,
                tenant: tenant.map(str::to_owned),
                public_key: hex(public_key),
                expires_ms,
                actor: by.to_owned(),
            },
            |db| {
                db.execute(
                    "INSERT INTO principals (name, role, tenant, bearer_hash, public_key, created_ms, expires_ms, revoked, vouch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
                    params![name, role.as_str(), tenant, bearer_hash, public_key, info.created_ms, expires_ms, vouch_json],
                )
                .map_err(|e| match e {
                    rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                        TrusteeError::Conflict("that principal or bearer exists".into())
                    }
                    other => storage(other),
                })?;
                Ok(())
            },
        )?;
        Ok(info)
    }

    fn revoke_principal(&self, by: &str, name: &str) -> Result<Value, TrusteeError> {
        let p = self
            .principal(name)?
            .ok_or_else(|| TrusteeError::NotFound(format!("no principal {name:?}")))?;
        if p.info.revoked {
            return Err(TrusteeError::Conflict(format!(
                "principal {name} is revoked already"
            )));
        }
        self.record_with(
            LogEvent::PrincipalRevoked {
                name: name.to_owned(),
                role: p.info.role,
                tenant: p.info.tenant.clone(),
                actor: by.to_owned(),
            },
            |db| {
                db.execute("UPDATE principals SET revoked = 1 WHERE name = ?1", [name])
                    .map_err(storage)?;
                withdraw_approvals(db, name)
            },
        )?;
        Ok(json!({"principal": name, "revoked": true}))
    }

    /// Checks a signed statement: a known, live principal signed exactly this text, recently.
    pub fn verify(
        &self,
        signed: &SignedStatement,
    ) -> Result<(Statement, PrincipalInfo), TrusteeError> {
        let statement: Statement = serde_json::from_str(&signed.statement)
            .map_err(|e| invalid(format!("not a statement: {e}")))?;
        let principal = self
            .principal(&statement.principal)?
            .ok_or_else(|| denied(format!("unknown principal {:?}", statement.principal)))?;
        let sig = base64_simd::STANDARD
            .decode_to_vec(signed.signature.as_bytes())
            .map_err(|_| invalid("the signature is not base64"))?;
        let now = now_ms();
        if !verify_statement(&principal.public_key, &signed.statement, &sig) {
            // An enrolled key (a browser's) signs decisions on grants and disclosures only,
            // while it is live.
            let Some(key) = self.enrolled_signer(
                &statement.principal,
                &principal.public_key,
                &signed.statement,
                &sig,
            )?
            else {
                return Err(denied(format!(
                    "the signature is not {}'s",
                    statement.principal
                )));
            };
            if !signing_keys::signable_by_enrolled_key(&statement.action) {
                return Err(denied(
                    "an enrolled key signs decisions on grants and disclosure requests, shred and disconnect approvals and revocations of access keys only; sign this with your own key (the CLI)",
                ));
            }
            if key.revoked_ms.is_some() {
                return Err(denied(format!(
                    "the key that signed this ({}) has been revoked",
                    &key.public_key_hex[..16]
                )));
            }
            if now >= key.expires_ms {
                return Err(denied(format!(
                    "the key that signed this ({}) has expired",
                    &key.public_key_hex[..16]
                )));
            }
        }
        if principal.info.revoked {
            return Err(denied(format!(
                "principal {} has been revoked",
                statement.principal
            )));
        }
        if principal.info.expires_ms.is_some_and(|e| e <= now) {
            return Err(denied(format!(
                "principal {} has expired",
                statement.principal
            )));
        }
        if (statement.at_ms - now).abs() > STATEMENT_SKEW_MS {
            return Err(denied(
                "the statement's time is more than 5 minutes from the trustee's clock",
            ));
        }
        if statement.nonce.is_empty() || statement.nonce.len() > 128 {
            return Err(invalid(
                "a statement carries a nonce of 1 to 128 characters",
            ));
        }
        // Each statement counts once: a copy sent again within its time window is refused.
        // Older records can go, since their statements are refused by time anyway.
        let db = self.db()?;
        db.execute(
            "DELETE FROM statements_seen WHERE at_ms < ?1",
            [now - 2 * STATEMENT_SKEW_MS],
        )
        .map_err(storage)?;
        let fresh = db
            .execute(
                "INSERT OR IGNORE INTO statements_seen (principal, nonce, at_ms) VALUES (?1, ?2, ?3)",
                params![statement.principal, statement.nonce, statement.at_ms.max(now)],
            )
            .map_err(storage)?;
        if fresh == 0 {
            return Err(denied(
                "this statement was carried out already; a statement counts once",
            ));
        }
        drop(db);
        Ok((statement, principal.info))
    }

    // ---------------------------------------------------------------- tenants

    pub fn tenant(&self, name: &str) -> Result<Option<TenantPolicy>, TrusteeError> {
        self.record_of("SELECT record FROM tenants WHERE name = ?1", name)
    }

    pub(crate) fn put_tenant(&self, t: &TenantPolicy) -> Result<(), TrusteeError> {
        let record = serde_json::to_string(t).map_err(storage)?;
        self.db()?
            .execute(
                "INSERT INTO tenants (name, record) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET record = excluded.record",
                params![t.name, record],
            )
            .map_err(storage)?;
        Ok(())
    }

    pub fn register_tenant(
        &self,
        by: &str,
        name: &str,
        jurisdictions: &[String],
        min_sites: u32,
    ) -> Result<Value, TrusteeError> {
        if self.tenant(name)?.is_some() {
            return Err(TrusteeError::Conflict(format!("tenant {name:?} exists")));
        }
        let t = TenantPolicy {
            name: name.to_owned(),
            jurisdictions: jurisdictions.to_vec(),
            min_sites,
            customer_approval: true,
            degraded_writes: false,
        };
        self.record(LogEvent::TenantAdded {
            tenant: name.to_owned(),
            jurisdictions: jurisdictions.to_vec(),
            min_sites,
            customer_approval: CustomerApproval::Required,
            actor: by.to_owned(),
        })?;
        self.put_tenant(&t)?;
        to_json(&TenantPolicyView {
            tenant: name.to_owned(),
            jurisdictions: jurisdictions.to_vec(),
            min_sites,
            customer_approval: CustomerApproval::Required,
            degraded_writes: None,
        })
    }

    fn set_policy(
        &self,
        by: &str,
        tenant: &str,
        customer_approval: Option<bool>,
        jurisdictions: Option<&[String]>,
        min_sites: Option<u32>,
        degraded_writes: Option<bool>,
    ) -> Result<Value, TrusteeError> {
        let mut t = self
            .tenant(tenant)?
            .ok_or_else(|| TrusteeError::NotFound(format!("no tenant {tenant:?}")))?;
        if let Some(j) = jurisdictions
            && j.is_empty()
        {
            return Err(invalid("a tenant needs at least one allowed jurisdiction"));
        }
        if min_sites.is_some_and(|n| !(1..=16).contains(&n)) {
            return Err(invalid("min_sites is from 1 to 16"));
        }
        if let Some(r) = customer_approval {
            t.customer_approval = r;
        }
        if let Some(j) = jurisdictions {
            t.jurisdictions = j.to_vec();
        }
        if let Some(n) = min_sites {
            t.min_sites = n;
        }
        if let Some(d) = degraded_writes {
            t.degraded_writes = d;
        }
        let customer_approval = CustomerApproval::from_required(t.customer_approval);
        let degraded_writes = degraded_writes.map(DegradedWrites::from_accept);
        let view = json!({
            "tenant": tenant,
            "customer_approval": customer_approval,
            "jurisdictions": t.jurisdictions,
            "min_sites": t.min_sites,
            "degraded_writes": degraded_writes,
        });
        self.record(LogEvent::PolicyChanged(PolicyChange::Tenant {
            tenant: tenant.to_owned(),
            customer_approval,
            jurisdictions: t.jurisdictions.clone(),
            min_sites: t.min_sites,
            degraded_writes,
            actor: by.to_owned(),
        }))?;
        self.put_tenant(&t)?;
        Ok(view)
    }

    fn set_bucket_policy(
        &self,
        who: &PrincipalInfo,
        tenant: &str,
        bucket: &str,
        jurisdictions: Option<&[String]>,
        min_sites: Option<u32>,
    ) -> Result<Value, TrusteeError> {
        if !(who.role == Role::TenantAdmin && who.tenant.as_deref() == Some(tenant)) {
            return Err(denied(format!(
                "only the admin of tenant {tenant} narrows its buckets' policies"
            )));
        }
        let t = self
            .tenant(tenant)?
            .ok_or_else(|| TrusteeError::NotFound(format!("no tenant {tenant:?}")))?;
        if let Some(j) = jurisdictions {
            if j.is_empty() {
                return Err(invalid("a bucket needs at least one allowed jurisdiction"));
            }
            if let Some(wider) = j.iter().find(|x| !t.jurisdictions.contains(x)) {
                return Err(denied(format!(
                    "a bucket policy may only narrow the tenant's: {wider} is not among {}",
                    t.jurisdictions.join(",")
                )));
            }
        }
        if let Some(n) = min_sites
            && (n < t.min_sites || n > 16)
        {
            return Err(denied(format!(
                "a bucket policy may only narrow the tenant's: min_sites from {} to 16",
                t.min_sites
            )));
        }
        let view = to_json(&BucketPolicyView {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
            jurisdictions: jurisdictions.map(<[String]>::to_vec),
            min_sites,
        })?;
        self.record(LogEvent::PolicyChanged(PolicyChange::Bucket {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
            jurisdictions: jurisdictions.map(<[String]>::to_vec),
            min_sites,
            actor: who.name.clone(),
        }))?;
        // Fields not given keep their value, as for a tenant's policy.
        let db = self.db()?;
        let mut rule = bucket_policy_in(&db, tenant, bucket)?;
        merge_narrowing(&mut rule, jurisdictions.map(<[String]>::to_vec), min_sites);
        put_bucket_policy_in(&db, tenant, bucket, &rule)?;
        Ok(view)
    }

    /// The tenant's residency and its buckets' narrowings, as recorded here.
    pub fn residency(&self, tenant: &str) -> Result<TenantResidency, TrusteeError> {
        let t = self
            .tenant(tenant)?
            .ok_or_else(|| TrusteeError::NotFound(format!("no tenant {tenant:?}")))?;
        let rows: Vec<(String, String)> = {
            let db = self.db()?;
            let mut st = db
                .prepare("SELECT bucket, record FROM bucket_policies WHERE tenant = ?1")
                .map_err(storage)?;
            st.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(storage)?
                .collect::<Result<_, _>>()
                .map_err(storage)?
        };
        let mut buckets = std::collections::BTreeMap::new();
        for (bucket, record) in rows {
            let rule: BucketNarrowing = serde_json::from_str(&record).map_err(storage)?;
            if !rule.is_empty() {
                buckets.insert(bucket, rule);
            }
        }
        Ok(TenantResidency {
            tenant: t.name,
            jurisdictions: t.jurisdictions,
            min_sites: t.min_sites,
            degraded_writes: t.degraded_writes,
            buckets,
        })
    }

    // ---------------------------------------------------------------- grants

    pub(crate) fn grant(&self, id: &str) -> Result<Grant, TrusteeError> {
        self.grants_where("SELECT record FROM grants WHERE id = ?1", Some(id))?
            .pop()
            .ok_or_else(|| TrusteeError::NotFound(format!("no grant {id:?}")))
    }

    pub(crate) fn put_grant(&self, g: &Grant) -> Result<(), TrusteeError> {
        put_grant_in(&*self.db()?, g)
    }

    fn grants(&self) -> Result<Vec<Grant>, TrusteeError> {
        self.grants_where("SELECT record FROM grants ORDER BY rowid", None)
    }

    /// The grants the query selects, each as the log has it ended: a grant the log recorded
    /// denied or revoked stays so whatever its record says, and one whose request the log
    /// recorded as needing the tenant's approval needs it whatever its record says
    /// ([`Self::integrity`] reports either difference).
    fn grants_where(&self, sql: &str, arg: Option<&str>) -> Result<Vec<Grant>, TrusteeError> {
        let rows: Vec<GrantAsLogged> = {
            let db = self.db()?;
            let mut st = db.prepare(sql).map_err(storage)?;
            let params: Vec<&str> = arg.into_iter().collect();
            let rows: Vec<String> = st
                .query_map(rusqlite::params_from_iter(params), |r| r.get(0))
                .map_err(storage)?
                .collect::<Result<_, _>>()
                .map_err(storage)?;
            // Under the database lock: an ending being recorded writes both before we look.
            let facts = self.facts()?;
            rows.iter()
                .map(|r| {
                    let g: Grant = serde_json::from_str(r).map_err(storage)?;
                    let ended = facts.grants_ended.get(&g.id).cloned();
                    let tenant_approval = facts.grants_need_tenant.get(&g.id).copied();
                    Ok((g, ended, tenant_approval))
                })
                .collect::<Result<_, TrusteeError>>()?
        };
        let mut out = Vec::with_capacity(rows.len());
        for (mut g, ended, tenant_approval) in rows {
            if let Some(required) = tenant_approval
                && g.customer_approval != required
            {
                let said = |r: bool| if r { "required" } else { "not required" };
                self.integrity(
                    &format!("grant:{}", g.id),
                    &format!(
                        "governance.db says the tenant's approval is {} but the transparency log recorded it {} when the grant was requested; it stays {}",
                        said(g.customer_approval),
                        said(required),
                        said(required)
                    ),
                )?;
                g.customer_approval = required;
            }
            if let Some((state, by)) = &ended
                && g.state != *state
            {
                self.integrity(
                    &format!("grant:{}", g.id),
                    &format!(
                        "governance.db says it is {} but the transparency log recorded it {state} by {by} (revived by an edit); it stays {state}",
                        g.state
                    ),
                )?;
                g.state.clone_from(state);
                g.ended_by = Some(by.clone());
            }
            out.push(g);
        }
        Ok(out)
    }

    fn request_grant(&self, who: &PrincipalInfo, a: &Action) -> Result<Value, TrusteeError> {
        let Action::RequestGrant {
            tenant,
            bucket,
            prefix,
            ops,
            duration_ms,
            reason,
        } = a
        else {
            return Err(invalid("not a grant request"));
        };
        if !matches!(who.role, Role::Operator | Role::Officer) {
            return Err(denied("only operators and officers request grants"));
        }
        let policy = self
            .tenant(tenant)?
            .ok_or_else(|| TrusteeError::NotFound(format!("no tenant {tenant:?}")))?;
        let mut ops = ops.clone();
        ops.sort();
        ops.dedup();
        if ops.is_empty()
            || ops.iter().any(|o| !GRANT_OPS.contains(&o.as_str()))
            || ops == ["versions"]
        {
            return Err(invalid(
                "--ops is a comma-separated list of read, list, write, versions (versions widens the others to noncurrent versions)",
            ));
        }
        if !(MIN_GRANT_MS..=MAX_GRANT_MS).contains(duration_ms) {
            return Err(invalid("a grant lasts from 5 seconds to 30 days"));
        }
        if reason.trim().is_empty() {
            return Err(invalid("a grant needs a reason"));
        }
        if bucket.is_empty() {
            return Err(invalid("a grant names one bucket"));
        }
        let g = Grant {
            id: format!("g-{}", random_hex(8)?),
            tenant: tenant.clone(),
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            ops,
            duration_ms: *duration_ms,
            reason: reason.clone(),
            requester: who.name.clone(),
            requested_ms: now_ms(),
            state: "pending".into(),
            approvals: Vec::new(),
            customer_approval: policy.customer_approval,
            approved_ms: None,
            expires_ms: None,
            ended_by: None,
            credentials: None,
        };
        self.record(LogEvent::GrantRequested {
            grant: g.id.clone(),
            tenant: g.tenant.clone(),
            bucket: g.bucket.clone(),
            prefix: g.prefix.clone(),
            ops: g.ops.clone(),
            duration_ms: g.duration_ms,
            reason: g.reason.clone(),
            customer_approval: CustomerApproval::from_required(g.customer_approval),
            actor: g.requester.clone(),
        })?;
        self.put_grant(&g)?;
        to_json(&GrantView {
            progress: Some(g.pending_text()),
            ..g.view(now_ms())
        })
    }

    fn approve_grant(
        &self,
        who: &PrincipalInfo,
        id: &str,
        scope: &str,
        signed: &SignedStatement,
        at_ms: i64,
    ) -> Result<Value, TrusteeError> {
        let mut g = self.grant(id)?;
        if scope != g.scope_digest() {
            return Err(TrusteeError::Conflict(format!(
                "grant {id} is not what this approval was signed for (scope digest differs); look at it again"
            )));
        }
        let now = now_ms();
        let state = g.state_at(now).to_owned();
        if state != "pending" {
            return Err(TrusteeError::Conflict(format!(
                "grant {id} is {state}, not pending"
            )));
        }
        match who.role {
            Role::Officer => {}
            Role::TenantAdmin if who.tenant.as_deref() == Some(g.tenant.as_str()) => {}
            Role::TenantAdmin => {
                return Err(denied(format!(
                    "a tenant admin of {} cannot approve grants on tenant {}",
                    who.tenant.as_deref().unwrap_or("?"),
                    g.tenant
                )));
            }
            _ => {
                return Err(denied(
                    "only officers and the tenant's admin approve grants",
                ));
            }
        }
        if who.name == g.requester {
            return Err(denied("the requester of a grant cannot approve it"));
        }
        // The same principal again counts once (and is logged once).
        if !g.approvals.iter().any(|a| a.principal == who.name) {
            self.record(LogEvent::GrantApproval {
                grant: id.to_owned(),
                tenant: g.tenant.clone(),
                role: who.role,
                statement: signed.statement.clone(),
                signature: signed.signature.clone(),
                actor: who.name.clone(),
            })?;
            g.approvals.push(SignedApproval {
                principal: who.name.clone(),
                role: who.role,
                at_ms,
                statement: signed.statement.clone(),
                signature: signed.signature.clone(),
            });
        }
        // Only approvals that verify now count (a principal revoked since no longer does).
        let counted = Grant {
            approvals: self.verified_approvals(&g)?,
            ..g.clone()
        };
        if counted.complete() {
            g.state = "approved".into();
            g.approved_ms = Some(now);
            g.expires_ms = Some(now.saturating_add(g.duration_ms));
            self.record(LogEvent::GrantApproved {
                grant: id.to_owned(),
                tenant: g.tenant.clone(),
                expires_ms: g.expires_ms,
                approvers: counted
                    .approvals
                    .iter()
                    .map(|a| a.principal.clone())
                    .collect(),
            })?;
        }
        self.put_grant(&g)?;
        let progress = if g.state == "approved" {
            "approved".to_owned()
        } else {
            counted.pending_text()
        };
        to_json(&GrantView {
            progress: Some(progress),
            ..g.view(now)
        })
    }

    fn end_grant(
        &self,
        who: &PrincipalInfo,
        id: &str,
        deny: bool,
        reason: Option<&str>,
    ) -> Result<Value, TrusteeError> {
        check_reason(reason)?;
        let mut g = self.grant(id)?;
        let now = now_ms();
        let may = who.role == Role::Officer
            || (who.role == Role::TenantAdmin && who.tenant.as_deref() == Some(g.tenant.as_str()));
        if !may {
            return Err(denied(format!(
                "only officers and the admin of tenant {} may {} grant {id}",
                g.tenant,
                if deny { "deny" } else { "revoke" }
            )));
        }
        let state = g.state_at(now).to_owned();
        let (new_state, event) = if deny {
            if state != "pending" {
                return Err(TrusteeError::Conflict(format!(
                    "grant {id} is {state}; only a pending grant is denied (revoke ends an approved one)"
                )));
            }
            let event = LogEvent::GrantDenied {
                grant: id.to_owned(),
                tenant: g.tenant.clone(),
                actor: who.name.clone(),
                reason: reason.map(str::to_owned),
            };
            ("denied", event)
        } else {
            if !matches!(state.as_str(), "pending" | "approved") {
                return Err(TrusteeError::Conflict(format!(
                    "grant {id} is {state} already"
                )));
            }
            let event = LogEvent::GrantRevoked {
                grant: id.to_owned(),
                tenant: g.tenant.clone(),
                actor: who.name.clone(),
            };
            ("revoked", event)
        };
        g.state = new_state.into();
        g.ended_by = Some(who.name.clone());
        self.record_with(event, |db| put_grant_in(db, &g))?;
        to_json(&g.view(now))
    }

    fn issue_credentials(&self, who: &PrincipalInfo, id: &str) -> Result<Value, TrusteeError> {
        let mut g = self.grant(id)?;
        if who.name != g.requester {
            return Err(denied(format!(
                "only the requester of grant {id} ({}) receives its credentials",
                g.requester
            )));
        }
        let now = now_ms();
        let state = g.state_at(now).to_owned();
        if state != "approved" {
            return Err(denied(format!("grant {id} is {state}, not approved")));
        }
        // Verify the approvals again: the credentials are only as good as the quorum.
        self.check_usable(&g)?;
        let access_key_id = format!(
            "{}{}",
            obhut_trustee_client::governance::GRANT_KEY_PREFIX,
            random_hex(8)?.to_ascii_uppercase()
        );
        let secret = random_hex(20)?;
        let token = format!("obs_{}", random_hex(24)?);
        self.record(LogEvent::GrantCredentials {
            grant: id.to_owned(),
            tenant: g.tenant.clone(),
            access_key_id: access_key_id.clone(),
            actor: who.name.clone(),
        })?;
        g.credentials = Some(GrantCredentials {
            access_key_id: access_key_id.clone(),
            secret: secret.clone(),
            token_hash: obhut_crypto::principal::bearer_hash(&token),
            issued_ms: now,
        });
        self.put_grant(&g)?;
        to_json(&GrantCredentialsView {
            grant: id.to_owned(),
            access_key_id,
            secret_access_key: secret,
            session_token: token,
            expires_ms: g.expires_ms,
            tenant: g.tenant,
            bucket: g.bucket,
            prefix: g.prefix,
            ops: g.ops,
        })
    }

    /// The approvals of `g` that still count: signed by a live principal allowed to give
    /// them, for this grant and exactly its current scope, by someone other than the requester.
    /// Checked at every use of a grant, not only when it was approved, so a principal revoked
    /// since, or a grant record altered since, stops the grant. An approval whose signature
    /// holds but which was signed for another grant or scope, or by another principal than the
    /// record names, can only be there by an edit: it is reported ([`Self::integrity`]).
    fn verified_approvals(&self, g: &Grant) -> Result<Vec<SignedApproval>, TrusteeError> {
        let digest = g.scope_digest();
        let logged = self
            .facts()?
            .grant_approvals
            .get(&g.id)
            .cloned()
            .unwrap_or_default();
        let mut verified = Vec::new();
        let mut foreign = false;
        let mut unlogged = false;
        for a in &g.approvals {
            // An approval counts only as the log took it: one written into governance.db
            // without passing through the log (a signature obtained elsewhere) counts for nothing.
            let Some((_, logged_at)) = logged
                .get(&a.principal)
                .filter(|(signature, _)| *signature == a.signature)
            else {
                unlogged = true;
                continue;
            };
            let Some(p) = self.live_principal(&a.principal)? else {
                continue;
            };
            let Ok(sig) = base64_simd::STANDARD.decode_to_vec(a.signature.as_bytes()) else {
                continue;
            };
            let Ok(st) = serde_json::from_str::<Statement>(&a.statement) else {
                foreign = true;
                continue;
            };
            if !self.signed_by(&p.info.name, &p.public_key, &a.statement, &sig, st.at_ms)? {
                continue;
            }
            let for_this = matches!(&st.action,
                Action::ApproveGrant { id, scope } if *id == g.id && *scope == digest);
            if !for_this || st.principal != a.principal {
                foreign = true;
            }
            let role_ok = match p.info.role {
                Role::Officer => true,
                Role::TenantAdmin => p.info.tenant.as_deref() == Some(g.tenant.as_str()),
                _ => false,
            };
            if for_this && role_ok && st.principal == p.info.name && p.info.name != g.requester {
                verified.push(SignedApproval {
                    role: p.info.role,
                    at_ms: st.at_ms.min(*logged_at),
                    ..a.clone()
                });
            }
        }
        if unlogged {
            self.integrity(
                &format!("grant:{}", g.id),
                "governance.db gives it an approval the transparency log never recorded; that approval does not count",
            )?;
        }
        if foreign {
            self.integrity(
                &format!("grant:{}", g.id),
                "governance.db gives it an approval that was signed for another grant or scope, or by another principal; that approval does not count",
            )?;
        }
        Ok(verified)
    }

    /// A grant may be used now: approved, not expired, its requester live, and a verifiable
    /// quorum of approvals behind it. The expiry is bounded by the signed approval times too,
    /// so a grant record altered to last longer does not.
    fn check_usable(&self, g: &Grant) -> Result<(), TrusteeError> {
        let now = now_ms();
        let state = g.state_at(now);
        if state != "approved" {
            return Err(denied(format!("grant {} is {state}", g.id)));
        }
        // A grant the log never saw requested was written into governance.db by hand.
        let requested = self.facts()?.grants_need_tenant.contains_key(&g.id);
        if !requested {
            self.integrity(
                &format!("grant:{}", g.id),
                "governance.db holds a grant the transparency log never recorded as requested; it grants nothing",
            )?;
            return Err(denied(format!(
                "grant {} was never requested in the log",
                g.id
            )));
        }
        if self.live_principal(&g.requester)?.is_none() {
            return Err(denied(format!(
                "the requester of grant {} ({}) has been revoked or has expired",
                g.id, g.requester
            )));
        }
        let verified = self.verified_approvals(g)?;
        let check = Grant {
            approvals: verified,
            ..g.clone()
        };
        let signed_end = check.approvals.iter().map(|a| a.at_ms).max().map(|t| {
            t.saturating_add(STATEMENT_SKEW_MS)
                .saturating_add(g.duration_ms)
        });
        if !check.complete() {
            return Err(denied(format!(
                "grant {} does not carry a verifiable quorum of approvals",
                g.id
            )));
        }
        if signed_end.is_none_or(|end| now >= end) {
            return Err(denied(format!("grant {} has expired", g.id)));
        }
        Ok(())
    }

    /// Whether a grant-justified key release for `tenant`/`bucket` is permitted now.
    pub fn check_grant_release(
        &self,
        grant_id: &str,
        tenant: &str,
        bucket: &str,
    ) -> Result<(), TrusteeError> {
        let g = self
            .grant(grant_id)
            .map_err(|_| denied(format!("no grant {grant_id:?}")))?;
        if g.tenant != tenant || g.bucket != bucket {
            return Err(denied(format!(
                "grant {grant_id} does not cover bucket {bucket} of tenant {tenant}"
            )));
        }
        self.check_usable(&g)
    }

    /// [`Self::check_grant_release`], answering the grant's prefix and operations: per-object
    /// releases under a grant open only names under it, for what it allows.
    pub fn grant_release_scope(
        &self,
        grant_id: &str,
        tenant: &str,
        bucket: &str,
    ) -> Result<(String, Vec<String>), TrusteeError> {
        self.check_grant_release(grant_id, tenant, bucket)?;
        let g = self
            .grant(grant_id)
            .map_err(|_| denied(format!("no grant {grant_id:?}")))?;
        Ok((g.prefix, g.ops))
    }

    fn grant_by_key(&self, access_key_id: &str) -> Result<Option<Grant>, TrusteeError> {
        Ok(self
            .grants_where(
                "SELECT record FROM grants WHERE access_key_id = ?1",
                Some(access_key_id),
            )?
            .pop())
    }

    /// The grant, tenant and secret of grant credentials, whatever the grant's state: the
    /// trustee verifies the signature with it, and [`Self::authorize_access`] then refuses (and
    /// logs) a request under a grant that is no longer usable. Only holders of the secret can
    /// leave such entries. The secret never leaves the trustee.
    pub fn grant_secret(
        &self,
        access_key_id: &str,
    ) -> Result<Option<(String, String, zeroize::Zeroizing<String>)>, TrusteeError> {
        Ok(self.grant_by_key(access_key_id)?.and_then(|g| {
            g.credentials
                .map(|c| (g.id, g.tenant, zeroize::Zeroizing::new(c.secret)))
        }))
    }

    pub fn authorize_access(&self, a: &GrantAccess) -> Result<GrantScope, TrusteeError> {
        let g = self
            .grant_by_key(&a.access_key_id)?
            .ok_or_else(|| denied("these grant credentials are unknown"))?;
        let creds = g
            .credentials
            .as_ref()
            .ok_or_else(|| denied("these grant credentials are unknown"))?;
        let presented = obhut_crypto::principal::bearer_hash(&a.session_token);
        let refusal =
            if !obhut_crypto::constant_time_eq(presented.as_bytes(), creds.token_hash.as_bytes()) {
                Some("the session token does not belong to these credentials".to_owned())
            } else if let Err(e) = self.check_usable(&g) {
                Some(match e {
                    TrusteeError::Denied(m) => m,
                    other => return Err(other),
                })
            } else if !grant_allows(&g.ops, &a.class) {
                Some(format!(
                    "grant {} allows {} but not {} ({})",
                    g.id,
                    g.ops.join(","),
                    a.class,
                    a.operation
                ))
            } else if a.bucket != g.bucket {
                Some(format!("grant {} covers bucket {} only", g.id, g.bucket))
            } else if !a.key.starts_with(&g.prefix) {
                Some(format!(
                    "grant {} covers keys under {:?} only",
                    g.id, g.prefix
                ))
            } else {
                None
            };
        if let Some(mut why) = refusal {
            match self.admit_denial_entry(&g.id) {
                None => return Err(denied(why)),
                Some(0) => {}
                Some(n) => why.push_str(&format!(
                    " ({n} more refused requests under this grant in the minute before were not logged one by one)"
                )),
            }
            self.record(LogEvent::GrantAccessDenied {
                grant: g.id.clone(),
                tenant: g.tenant.clone(),
                operation: a.operation.clone(),
                bucket: a.bucket.clone(),
                key: a.key.clone(),
                reason: why.clone(),
                actor: g.requester.clone(),
            })?;
            return Err(denied(why));
        }
        self.record(LogEvent::GrantAccess {
            grant: g.id.clone(),
            tenant: g.tenant.clone(),
            operation: a.operation.clone(),
            bucket: a.bucket.clone(),
            key: a.key.clone(),
            actor: g.requester.clone(),
        })?;
        Ok(GrantScope {
            grant_id: g.id,
            tenant: g.tenant,
        })
    }

    /// Whether a gateway's integrity alarm about `tenant` is logged now: like refused grant
    /// accesses, at most a few per tenant and minute, so that a gateway cannot fill the log
    /// with alarms. `Some(n)`: log it, `n` earlier ones in the minute before were not.
    pub fn admit_alarm(&self, tenant: &str) -> Option<u64> {
        self.admit_entry(
            &format!("integrity alarm\0{tenant}"),
            ALARMS_LOGGED_PER_MINUTE,
        )
        .map(u64::from)
    }

    /// Whether a refused access under `grant` is logged: `Some(n)` yes (with `n` refusals
    /// not logged before it), `None` no (too many this minute; it is counted).
    fn admit_denial_entry(&self, grant: &str) -> Option<u32> {
        self.admit_entry(grant, DENIALS_LOGGED_PER_MINUTE)
    }

    /// Records the lock state of a version whose lock record the trustee has sealed (and not
    /// yet answered), with the record's digest (`sealed_sha256`, [`lock_record_digest`]):
    /// kept before the record leaves the trustee, so that no lock protects a version this list
    /// does not know, and only this record is accepted as the one a change replaces. A state
    /// that locks nothing (no retention, no hold) drops the version's row: then any genuine
    /// record of it is at least as strict as what the trustee knows.
    pub fn note_lock(
        &self,
        target: &obhut_trustee_client::object_lock::LockTarget,
        state: &obhut_trustee_client::object_lock::LockState,
        sealed_sha256: &str,
    ) -> Result<(), TrusteeError> {
        let db = self.db()?;
        if state.retention.is_none() && !state.legal_hold {
            db.execute(
                "DELETE FROM object_locks
                 WHERE tenant = ?1 AND bucket = ?2 AND key = ?3 AND version_id = ?4",
                params![target.tenant, target.bucket, target.key, target.version_id],
            )
        } else {
            db.execute(
                "INSERT OR REPLACE INTO object_locks
                 (tenant, bucket, key, version_id, mode, retain_until_ms, legal_hold, sealed_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    target.tenant,
                    target.bucket,
                    target.key,
                    target.version_id,
                    state.retention.map(|r| r.0.as_str()),
                    state.retention.map(|r| r.1),
                    state.legal_hold,
                    sealed_sha256
                ],
            )
        }
        .map_err(storage)?;
        Ok(())
    }

    /// Records a bucket's default retention as the tenant's signed PutObjectLockConfiguration
    /// (or CreateBucket) issued at `set_ms` set it (`None`: the configuration has none);
    /// `false` (nothing recorded) if a request issued later set it already.
    pub fn note_bucket_default(
        &self,
        tenant: &str,
        bucket: &str,
        default: Option<&obhut_trustee_client::object_lock::DefaultRetention>,
        set_ms: i64,
    ) -> Result<bool, TrusteeError> {
        let changed = self
            .db()?
            .execute(
                "INSERT INTO bucket_lock_defaults (tenant, bucket, mode, days, years, set_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (tenant, bucket) DO UPDATE SET
                    mode = excluded.mode, days = excluded.days, years = excluded.years,
                    set_ms = excluded.set_ms
                 WHERE excluded.set_ms >= bucket_lock_defaults.set_ms",
                params![
                    tenant,
                    bucket,
                    default.map(|d| d.mode.as_str()),
                    default.and_then(|d| d.days),
                    default.and_then(|d| d.years),
                    set_ms
                ],
            )
            .map_err(storage)?;
        Ok(changed > 0)
    }

    /// Forgets `bucket`'s default retention (its name is made anew).
    pub fn forget_bucket_default(&self, tenant: &str, bucket: &str) -> Result<(), TrusteeError> {
        self.db()?
            .execute(
                "DELETE FROM bucket_lock_defaults WHERE tenant = ?1 AND bucket = ?2",
                params![tenant, bucket],
            )
            .map_err(storage)?;
        Ok(())
    }

    /// A bucket's default retention as the tenant last set it: `None` if the trustee never
    /// saw it set, `Some(None)` for a configuration without a default.
    pub fn bucket_default(
        &self,
        tenant: &str,
        bucket: &str,
    ) -> Result<Option<Option<obhut_trustee_client::object_lock::DefaultRetention>>, TrusteeError>
    {
        use obhut_trustee_client::object_lock::{DefaultRetention, LockMode};
        type Row = (Option<String>, Option<i64>, Option<i64>);
        let row: Option<Row> = self
            .db()?
            .query_row(
                "SELECT mode, days, years FROM bucket_lock_defaults WHERE tenant = ?1 AND bucket = ?2",
                params![tenant, bucket],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(storage)?;
        let Some((mode, days, years)) = row else {
            return Ok(None);
        };
        let Some(mode) = mode else {
            return Ok(Some(None));
        };
        let mode = LockMode::parse(&mode)
            .ok_or_else(|| storage(format!("unknown lock mode {mode:?} in governance.db")))?;
        Ok(Some(Some(DefaultRetention { mode, days, years })))
    }

    /// The latest lock state the trustee sealed for `target` and the digest of that record
    /// ([`lock_record_digest`]; `None` for a row a release before schema 6 wrote), if it
    /// lists the version (a retention or a legal hold, in force or not).
    pub fn latest_lock(
        &self,
        target: &obhut_trustee_client::object_lock::LockTarget,
    ) -> Result<Option<(obhut_trustee_client::object_lock::LockState, Option<String>)>, TrusteeError>
    {
        use obhut_trustee_client::object_lock::{LockMode, LockState};
        let db = self.db()?;
        /// mode, retain-until, legal hold, digest
        type Row = (Option<String>, Option<i64>, bool, Option<String>);
        let row: Option<Row> = db
            .query_row(
                "SELECT mode, retain_until_ms, legal_hold, sealed_sha256 FROM object_locks
                 WHERE tenant = ?1 AND bucket = ?2 AND key = ?3 AND version_id = ?4",
                params![target.tenant, target.bucket, target.key, target.version_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(storage)?;
        let Some((mode, until, legal_hold, digest)) = row else {
            return Ok(None);
        };
        let retention = match (mode, until) {
            (Some(m), Some(u)) => Some((
                LockMode::parse(&m)
                    .ok_or_else(|| storage(format!("unknown lock mode {m:?} in governance.db")))?,
                u,
            )),
            (None, None) => None,
            _ => return Err(storage("a lock row with half a retention in governance.db")),
        };
        Ok(Some((
            LockState {
                retention,
                legal_hold,
            },
            digest,
        )))
    }

    /// Forgets the digests of listed lock records, as rows of a release before schema 6 are.
    #[cfg(test)]
    pub fn forget_lock_digests(&self) -> Result<(), TrusteeError> {
        self.db()?
            .execute("UPDATE object_locks SET sealed_sha256 = NULL", [])
            .map_err(storage)?;
        Ok(())
    }

    /// Whether the trustee's list holds a lock of `target` (a retention or a legal hold,
    /// whether or not still in force): then its record exists, and a change must show it.
    pub fn has_lock(
        &self,
        target: &obhut_trustee_client::object_lock::LockTarget,
    ) -> Result<bool, TrusteeError> {
        let db = self.db()?;
        db.query_row(
            "SELECT EXISTS (SELECT 1 FROM object_locks
                 WHERE tenant = ?1 AND bucket = ?2 AND key = ?3 AND version_id = ?4)",
            params![target.tenant, target.bucket, target.key, target.version_id],
            |r| r.get(0),
        )
        .map_err(storage)
    }

    /// How many versions of `tenant` a COMPLIANCE retention still protects at `now_ms`, and
    /// the latest retain-until date among them.
    pub fn compliance_locks(&self, tenant: &str, now_ms: i64) -> Result<(u64, i64), TrusteeError> {
        let db = self.db()?;
        let (count, latest): (i64, Option<i64>) = db
            .query_row(
                "SELECT COUNT(*), MAX(retain_until_ms) FROM object_locks
                 WHERE tenant = ?1 AND mode = 'COMPLIANCE' AND retain_until_ms > ?2",
                params![tenant, now_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(storage)?;
        Ok((u64::try_from(count).unwrap_or(0), latest.unwrap_or(0)))
    }

    /// The versions of `tenant` a lock holds at `now_ms` (a legal hold, or a retention in
    /// force), as (bucket, key, version id), at most `limit` after `after`, in order.
    pub fn locked_versions(
        &self,
        tenant: &str,
        now_ms: i64,
        after: Option<(&str, &str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, TrusteeError> {
        let db = self.db()?;
        let (b, k, v) = after.unwrap_or(("", "", ""));
        let mut stmt = db
            .prepare(
                "SELECT bucket, key, version_id FROM object_locks
                 WHERE tenant = ?1 AND (legal_hold = 1 OR retain_until_ms > ?2)
                   AND (bucket, key, version_id) > (?3, ?4, ?5)
                 ORDER BY bucket, key, version_id LIMIT ?6",
            )
            .map_err(storage)?;
        let rows = stmt
            .query_map(
                params![
                    tenant,
                    now_ms,
                    b,
                    k,
                    v,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(storage)?;
        rows.collect::<Result<_, _>>().map_err(storage)
    }

    /// A window of `limit` entries per minute about `subject`.
    fn admit_entry(&self, subject: &str, limit: u32) -> Option<u32> {
        let now = now_ms();
        let mut all = self.denials.lock().ok()?;
        if all.len() > 10_000 {
            all.retain(|_, w| now - w.start_ms < 60_000);
        }
        let w = all.entry(subject.to_owned()).or_default();
        if now - w.start_ms >= 60_000 {
            let carried = w.suppressed;
            *w = DenialWindow {
                start_ms: now,
                logged: 1,
                suppressed: 0,
            };
            return Some(carried);
        }
        if w.logged < limit {
            w.logged += 1;
            Some(0)
        } else {
            w.suppressed += 1;
            None
        }
    }

    // ---------------------------------------------------------------- disclosures

    fn disclosure(&self, id: &str) -> Result<Disclosure, TrusteeError> {
        self.disclosures()?
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| TrusteeError::NotFound(format!("no disclosure request {id:?}")))
    }

    /// Every disclosure request as the log recorded it, in the order they were requested:
    /// its request, decisions, approvals and delay come from the log's entries, so an edit of
    /// `governance.db` (a decision flipped, a delay lengthened to keep it from its tenant, a
    /// request removed or inserted) changes nothing but is reported ([`Self::integrity`]).
    fn disclosures(&self) -> Result<Vec<Disclosure>, TrusteeError> {
        let (rows, facts, order) = {
            let db = self.db()?;
            let mut st = db
                .prepare("SELECT id, record FROM disclosures")
                .map_err(storage)?;
            let rows: HashMap<String, String> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(storage)?
                .collect::<Result<_, _>>()
                .map_err(storage)?;
            let f = self.facts()?;
            (rows, f.disclosures.clone(), f.disclosure_order.clone())
        };
        let mut out = Vec::with_capacity(order.len());
        for id in &order {
            let Some(f) = facts.get(id) else { continue };
            let row: Option<Disclosure> = match rows.get(id) {
                Some(r) => Some(serde_json::from_str(r).map_err(storage)?),
                None => None,
            };
            let r = &f.request;
            let d = Disclosure {
                id: id.clone(),
                tenant: r.tenant.clone(),
                authority: r.authority.clone(),
                jurisdiction: r.jurisdiction.clone(),
                legal_basis: r.legal_basis.clone(),
                scope: r.scope.clone(),
                requested_by: r.actor.clone(),
                created_ms: row.as_ref().map_or(f.created_ms, |x| x.created_ms),
                state: f.state.clone(),
                approvals: f.approvals.clone(),
                decided_ms: match &row {
                    Some(x) if x.state == f.state => x.decided_ms,
                    _ => f.decided_ms,
                },
                reason: r.reason.clone(),
                visible_after_ms: f.visible_after_ms,
            };
            let differs = match &row {
                None => Some("its record is missing from governance.db".to_owned()),
                Some(x) => {
                    let same = (
                        &x.tenant,
                        &x.authority,
                        &x.jurisdiction,
                        &x.legal_basis,
                        &x.scope,
                        &x.requested_by,
                        &x.state,
                        x.visible_after_ms,
                    ) == (
                        &d.tenant,
                        &d.authority,
                        &d.jurisdiction,
                        &d.legal_basis,
                        &d.scope,
                        &d.requested_by,
                        &d.state,
                        d.visible_after_ms,
                    );
                    (!same).then(|| format!(
                        "governance.db says {} (visible to its tenant from {}) but the transparency log recorded {} (from {}); the log's record counts",
                        x.state, x.visible_after_ms, d.state, d.visible_after_ms
                    ))
                }
            };
            if let Some(why) = differs {
                self.integrity(&format!("disclosure:{id}"), &why)?;
            }
            out.push(d);
        }
        for id in rows.keys().filter(|id| !facts.contains_key(*id)) {
            self.integrity(
                &format!("disclosure:{id}"),
                "no disclosure_requested entry in the transparency log (inserted in governance.db); ignored",
            )?;
        }
        Ok(out)
    }

    fn request_disclosure(&self, who: &PrincipalInfo, a: &Action) -> Result<Value, TrusteeError> {
        let Action::RequestDisclosure {
            tenant,
            authority,
            jurisdiction,
            legal_basis,
            scope,
            delay_ms,
        } = a
        else {
            return Err(invalid("not a disclosure request"));
        };
        if who.role != Role::Officer {
            return Err(denied("only officers record disclosure requests"));
        }
        let policy = self
            .tenant(tenant)?
            .ok_or_else(|| TrusteeError::NotFound(format!("no tenant {tenant:?}")))?;
        for (field, v) in [
            ("authority", authority),
            ("jurisdiction", jurisdiction),
            ("legal basis", legal_basis),
            ("scope", scope),
        ] {
            if v.trim().is_empty() {
                return Err(invalid(format!("a disclosure request needs its {field}")));
            }
        }
        if !(0..=MAX_DISCLOSURE_DELAY_MS).contains(delay_ms) {
            return Err(invalid("a disclosure delay is from 0 to 366 days"));
        }
        let jurisdiction = jurisdiction.to_ascii_uppercase();
        let now = now_ms();
        let allowed = policy.jurisdictions.contains(&jurisdiction);
        let d = Disclosure {
            id: format!("d-{}", random_hex(8)?),
            tenant: tenant.clone(),
            authority: authority.clone(),
            jurisdiction: jurisdiction.clone(),
            legal_basis: legal_basis.clone(),
            scope: scope.clone(),
            requested_by: who.name.clone(),
            created_ms: now,
            state: if allowed { "pending" } else { "refused" }.into(),
            approvals: Vec::new(),
            decided_ms: (!allowed).then_some(now),
            reason: (!allowed).then(|| {
                format!(
                    "jurisdiction {jurisdiction} is outside tenant {tenant}'s allowed set ({})",
                    policy.jurisdictions.join(",")
                )
            }),
            visible_after_ms: now.saturating_add(*delay_ms),
        };
        let request = DisclosureRequest {
            disclosure: d.id.clone(),
            tenant: d.tenant.clone(),
            authority: d.authority.clone(),
            jurisdiction: d.jurisdiction.clone(),
            legal_basis: d.legal_basis.clone(),
            scope: d.scope.clone(),
            reason: d.reason.clone(),
            delay_ms: *delay_ms,
            visible_after_ms: d.visible_after_ms,
            actor: who.name.clone(),
        };
        self.record_with(
            if allowed {
                LogEvent::DisclosureRequested(request)
            } else {
                LogEvent::DisclosureRefused(request)
            },
            |db| put_disclosure_in(db, &d),
        )?;
        to_json(&disclosure_view(&d))
    }

    fn decide_disclosure(
        &self,
        who: &PrincipalInfo,
        id: &str,
        approve: bool,
        reason: Option<&str>,
    ) -> Result<Value, TrusteeError> {
        check_reason(reason)?;
        if who.role != Role::Officer {
            return Err(denied("only officers decide disclosure requests"));
        }
        let mut d = self.disclosure(id)?;
        if d.state != "pending" {
            return Err(TrusteeError::Conflict(format!(
                "disclosure request {id} is {} already",
                d.state
            )));
        }
        let now = now_ms();
        if approve && who.name == d.requested_by {
            return Err(denied(
                "the officer who recorded a disclosure request cannot approve it",
            ));
        }
        if approve {
            if !d.approvals.contains(&who.name) {
                self.record(LogEvent::DisclosureApproval {
                    disclosure: id.to_owned(),
                    tenant: d.tenant.clone(),
                    actor: who.name.clone(),
                })?;
                d.approvals.push(who.name.clone());
            }
            if d.approvals.len() >= OFFICER_QUORUM {
                d.state = "approved".into();
                d.decided_ms = Some(now);
                self.record_with(
                    LogEvent::DisclosureApproved {
                        disclosure: id.to_owned(),
                        tenant: d.tenant.clone(),
                        approvers: d.approvals.clone(),
                    },
                    |db| put_disclosure_in(db, &d),
                )?;
            } else {
                put_disclosure_in(&*self.db()?, &d)?;
            }
        } else {
            d.state = "denied".into();
            d.decided_ms = Some(now);
            self.record_with(
                LogEvent::DisclosureDenied {
                    disclosure: id.to_owned(),
                    tenant: d.tenant.clone(),
                    actor: who.name.clone(),
                    reason: reason.map(str::to_owned),
                },
                |db| put_disclosure_in(db, &d),
            )?;
        }
        let progress = (d.state == "pending").then(|| {
            format!(
                "pending: {} of {OFFICER_QUORUM} officers",
                d.approvals.len()
            )
        });
        to_json(&DisclosureView {
            progress,
            ..disclosure_view(&d)
        })
    }

    fn set_disclosure_delay(
        &self,
        who: &PrincipalInfo,
        id: &str,
        delay_ms: i64,
    ) -> Result<Value, TrusteeError> {
        if who.role != Role::Officer {
            return Err(denied("only officers set a disclosure's delay"));
        }
        if !(0..=MAX_DISCLOSURE_DELAY_MS).contains(&delay_ms) {
            return Err(invalid("a disclosure delay is from 0 to 366 days"));
        }
        let mut d = self.disclosure(id)?;
        let visible = d.created_ms.saturating_add(delay_ms);
        // The delay itself is logged; the entry is visible to the tenant from the same time.
        d.visible_after_ms = visible;
        self.record_with(
            LogEvent::DisclosureDelaySet {
                disclosure: id.to_owned(),
                tenant: d.tenant.clone(),
                delay_ms,
                visible_after_ms: visible,
                actor: who.name.clone(),
            },
            |db| put_disclosure_in(db, &d),
        )?;
        to_json(&disclosure_view(&d))
    }

    // ---------------------------------------------------------------- quorum approvals

    /// Records `who`'s approval of a crypto-shred of `tenant` in `mode`; the quorum is two
    /// distinct principals (officers, or the tenant's admin), at least one an officer.
    pub fn approve_shred(
        &self,
        who: &PrincipalInfo,
        tenant: &str,
        mode: obhut_trustee_client::ShredMode,
    ) -> Result<ShredOutcome, TrusteeError> {
        let own_admin = who.role == Role::TenantAdmin && who.tenant.as_deref() == Some(tenant);
        if who.role != Role::Officer && !own_admin {
            return Err(denied(format!(
                "only officers and the admin of tenant {tenant} may shred it"
            )));
        }
        if self.tenant(tenant)?.is_none() {
            return Err(TrusteeError::NotFound(format!("no tenant {tenant:?}")));
        }
        let action = match mode {
            obhut_trustee_client::ShredMode::Disable => format!("shred:{tenant}"),
            obhut_trustee_client::ShredMode::Now => format!("shred-now:{tenant}"),
            obhut_trustee_client::ShredMode::Cancel => format!("shred-cancel:{tenant}"),
        };
        let now = now_ms();
        self.record(LogEvent::ShredApproval {
            tenant: tenant.to_owned(),
            mode,
            role: who.role,
            actor: who.name.clone(),
        })?;
        let approvals: Vec<(String, String)> = {
            let db = self.db()?;
            // Approvals past the window count for nothing: they go, so that the table stays
            // as small as the approvals in progress.
            db.execute(
                "DELETE FROM approvals WHERE at_ms < ?1",
                [now - APPROVAL_WINDOW_MS],
            )
            .map_err(storage)?;
            db.execute(
                "INSERT INTO approvals (action, principal, role, at_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(action, principal) DO UPDATE SET at_ms = excluded.at_ms",
                params![action, who.name, who.role.as_str(), now],
            )
            .map_err(storage)?;
            let mut st = db
                .prepare(
                    "SELECT a.principal, a.role FROM approvals a JOIN principals p ON p.name = a.principal
                     WHERE a.action = ?1 AND a.at_ms >= ?2 AND p.revoked = 0 ORDER BY a.at_ms",
                )
                .map_err(storage)?;
            st.query_map(params![action, now - APPROVAL_WINDOW_MS], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(storage)?
            .collect::<Result<_, _>>()
            .map_err(storage)?
        };
        let officers = approvals.iter().filter(|(_, r)| r == "officer").count();
        if approvals.len() < 2 || officers == 0 {
            return Ok(ShredOutcome::Pending(ShredPending {
                tenant: tenant.to_owned(),
                state: "pending".into(),
                progress: format!(
                    "pending: {} of 2 approvals ({officers} officer)",
                    approvals.len()
                ),
                action,
                approvals: approvals.into_iter().map(|(p, _)| p).collect(),
                required: 2,
                officers,
            }));
        }
        self.db()?
            .execute("DELETE FROM approvals WHERE action = ?1", [&action])
            .map_err(storage)?;
        Ok(ShredOutcome::Reached)
    }

    /// The quorum actions in progress `who` may see ([`Query::Quorum`]), oldest first: the
    /// crypto-shreds of the approvals table and the next change of the disconnect state (from
    /// the log's facts), each with the approvals still counting (given within
    /// [`APPROVAL_WINDOW_MS`]). Officers and auditors see all, or one `tenant`'s; a tenant's
    /// admin only its own tenant's shreds; operators nothing. Key states are the keystore's:
    /// the caller adds them.
    pub fn quorum_actions(
        &self,
        who: &PrincipalInfo,
        tenant: Option<&str>,
    ) -> Result<Vec<QuorumAction>, TrusteeError> {
        let only = match who.role {
            Role::Officer | Role::Auditor => tenant,
            Role::TenantAdmin => {
                let own = who
                    .tenant
                    .as_deref()
                    .ok_or_else(|| denied(format!("{} has no tenant", who.name)))?;
                if tenant.is_some_and(|t| t != own) {
                    return Err(denied(format!(
                        "a tenant's admin sees the quorum actions of its own tenant only, not {}'s",
                        tenant.unwrap_or_default()
                    )));
                }
                Some(own)
            }
            Role::Operator => {
                return Err(denied(
                    "quorum actions are shown to officers, auditors and tenant admins",
                ));
            }
        };
        let now = now_ms();
        let rows: Vec<(String, String, String, i64)> = {
            let db = self.db()?;
            let mut st = db
                .prepare(
                    "SELECT a.action, a.principal, a.role, a.at_ms FROM approvals a
                     JOIN principals p ON p.name = a.principal
                     WHERE a.at_ms >= ?1 AND p.revoked = 0
                     ORDER BY a.action, a.at_ms, a.principal LIMIT 1000",
                )
                .map_err(storage)?;
            st.query_map([now - APPROVAL_WINDOW_MS], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(storage)?
            .collect::<Result<_, _>>()
            .map_err(storage)?
        };
        let mut by_action: std::collections::BTreeMap<String, Vec<QuorumApproval>> =
            std::collections::BTreeMap::new();
        for (action, principal, role, at_ms) in rows {
            by_action.entry(action).or_default().push(QuorumApproval {
                principal,
                role: role_of(&role)?,
                at_ms,
            });
        }
        let mut actions = Vec::new();
        for (action, approvals) in by_action {
            let Some((kind, of)) = action.split_once(':') else {
                continue;
            };
            if only.is_some_and(|t| t != of) {
                continue;
            }
            actions.push(QuorumAction {
                kind: kind.to_owned(),
                tenant: Some(of.to_owned()),
                officers: approvals.iter().filter(|a| a.role == Role::Officer).count(),
                expires_ms: approvals.iter().map(|a| a.at_ms).min().unwrap_or(now)
                    + APPROVAL_WINDOW_MS,
                approvals,
                required: 2,
                rule: "2, at least one officer".into(),
                key_state: None,
            });
        }
        if only.is_none() {
            let facts = self.facts()?;
            let next = if facts.disconnected.is_some() {
                DisconnectMode::Reconnect
            } else {
                DisconnectMode::Disconnect
            };
            let mut approvals: Vec<QuorumApproval> = facts
                .disconnect_approvals
                .iter()
                .filter(|(_, (mode, at, _))| *mode == next && now - *at < APPROVAL_WINDOW_MS)
                .map(|(p, (_, at, _))| QuorumApproval {
                    principal: p.clone(),
                    role: Role::Officer,
                    at_ms: *at,
                })
                .collect();
            approvals.sort_by(|a, b| (a.at_ms, &a.principal).cmp(&(b.at_ms, &b.principal)));
            if let Some(first) = approvals.first().map(|a| a.at_ms) {
                actions.push(QuorumAction {
                    kind: next.as_str().to_owned(),
                    tenant: None,
                    officers: approvals.len(),
                    approvals,
                    required: OFFICER_QUORUM,
                    rule: format!("{OFFICER_QUORUM} officers"),
                    expires_ms: first + APPROVAL_WINDOW_MS,
                    key_state: None,
                });
            }
        }
        actions.sort_by_key(|a| a.approvals.first().map_or(0, |x| x.at_ms));
        Ok(actions)
    }

    /// Logs a report's digest and signs a note binding kind, tenant, digest and log index.
    pub fn attest(
        &self,
        kind: &str,
        tenant: Option<&str>,
        digest: &str,
    ) -> Result<Value, TrusteeError> {
        let kind_ok = !kind.is_empty()
            && kind.len() <= 64
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        if !kind_ok || digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "an attestation names a kind and a hex SHA-256 digest",
            ));
        }
        let idx = self.record(LogEvent::Attestation {
            kind: kind.to_owned(),
            tenant: tenant.map(str::to_owned),
            digest: digest.to_owned(),
        })?;
        let text = format!(
            "obhut attestation {kind}\ntenant {}\nsha256 {digest}\nlog-index {idx}\n",
            tenant.unwrap_or("*")
        );
        let note = self.log.sign_note(&text).map_err(storage)?;
        Ok(json!({"log_index": idx, "note": note, "verifier_key": self.log.verifier_key()}))
    }

    // ---------------------------------------------------------------- reads

    pub fn query(&self, principal: &str, q: &Query) -> Result<Value, TrusteeError> {
        let who = self
            .principal(principal)?
            .ok_or_else(|| denied(format!("unknown principal {principal:?}")))?
            .info;
        let now = now_ms();
        let sees_tenant = |t: &str| match who.role {
            Role::Officer | Role::Auditor => true,
            Role::TenantAdmin => who.tenant.as_deref() == Some(t),
            Role::Operator => false,
        };
        match q {
            Query::AccessKeys { .. } => {
                Err(invalid("access keys are kept by the trustee's key custody"))
            }
            Query::Principals => {
                if who.role != Role::Officer {
                    return Err(denied("only officers list principals"));
                }
                Ok(json!(self.principals()?))
            }
            Query::Grants => {
                let grants: Vec<GrantView> = self
                    .grants()?
                    .iter()
                    .filter(|g| {
                        sees_tenant(&g.tenant)
                            || (who.role == Role::Operator && g.requester == who.name)
                    })
                    .map(|g| g.view(now))
                    .collect();
                to_json(&grants)
            }
            Query::Grant { id } => {
                let g = self.grant(id)?;
                if sees_tenant(&g.tenant) || g.requester == who.name {
                    let mut v = g.view(now);
                    if g.state_at(now) == "pending" {
                        let counted = Grant {
                            approvals: self.verified_approvals(&g)?,
                            ..g.clone()
                        };
                        v.progress = Some(counted.pending_text());
                    }
                    to_json(&v)
                } else {
                    Err(TrusteeError::NotFound(format!("no grant {id:?}")))
                }
            }
            Query::Disclosures => {
                let list: Vec<DisclosureView> = self
                    .disclosures()?
                    .iter()
                    .filter(|d| match who.role {
                        Role::Officer | Role::Auditor => true,
                        Role::TenantAdmin => {
                            who.tenant.as_deref() == Some(d.tenant.as_str())
                                && now >= d.visible_after_ms
                        }
                        Role::Operator => false,
                    })
                    .map(disclosure_view)
                    .collect();
                if who.role == Role::Operator {
                    return Err(denied("operators do not see disclosure requests"));
                }
                to_json(&list)
            }
            Query::TenantPolicy { tenant } => {
                if !sees_tenant(tenant) {
                    return Err(denied(format!("you may not see tenant {tenant}'s policy")));
                }
                let t = self
                    .tenant(tenant)?
                    .ok_or_else(|| TrusteeError::NotFound(format!("no tenant {tenant:?}")))?;
                to_json(&TenantPolicyView {
                    tenant: t.name,
                    jurisdictions: t.jurisdictions,
                    min_sites: t.min_sites,
                    customer_approval: CustomerApproval::from_required(t.customer_approval),
                    degraded_writes: None,
                })
            }
            Query::LogEntries {
                tenant,
                from,
                limit,
            } => self.log_entries(&who, tenant.as_deref(), *from, *limit),
            Query::SigningKeys => self.signing_keys_of(&who),
            Query::LockedVersions { tenant, after } => {
                if !sees_tenant(tenant) {
                    return Err(denied(format!(
                        "you may not see tenant {tenant}'s locked versions"
                    )));
                }
                let after = after
                    .as_ref()
                    .map(|(b, k, v)| (b.as_str(), k.as_str(), v.as_str()));
                Ok(json!(self.locked_versions(
                    tenant,
                    now,
                    after,
                    obhut_trustee_client::governance::MAX_LOCKED_VERSIONS
                )?))
            }
            Query::Quorum { tenant } => to_json(&QuorumView {
                actions: self.quorum_actions(&who, tenant.as_deref())?,
                tenant_key: None,
            }),
            Query::Disconnect => {
                if who.role == Role::TenantAdmin {
                    return Err(denied(
                        "the disconnect state is shown to officers, operators and auditors",
                    ));
                }
                self.disconnect_status()
            }
        }
    }

    fn log_entries(
        &self,
        who: &PrincipalInfo,
        tenant: Option<&str>,
        from: u64,
        limit: Option<u64>,
    ) -> Result<Value, TrusteeError> {
        let max = obhut_trustee_client::MAX_LOG_ENTRIES;
        let limit = limit.unwrap_or(max);
        if !(1..=max).contains(&limit) {
            return Err(invalid(format!(
                "limit must be between 1 and {max}, not {limit}"
            )));
        }
        let tenant = match (who.role, tenant) {
            (Role::Officer | Role::Auditor, t) => t.map(str::to_owned),
            (Role::TenantAdmin, Some(t)) if who.tenant.as_deref() == Some(t) => Some(t.to_owned()),
            (Role::TenantAdmin, None) => who.tenant.clone(),
            (Role::TenantAdmin, Some(t)) => {
                return Err(denied(format!(
                    "a tenant admin reads only its own tenant's entries, not {t}'s"
                )));
            }
            (Role::Operator, _) => return Err(denied("operators do not read log entries")),
        };
        let now = now_ms();
        let hidden: Vec<String> = if who.role == Role::TenantAdmin {
            self.disclosures()?
                .into_iter()
                .filter(|d| now < d.visible_after_ms)
                .map(|d| d.id)
                .collect()
        } else {
            Vec::new()
        };
        // One row past the page tells whether more follow; it is not shown.
        let mut rows: Vec<(i64, Option<String>)> = {
            let db = self.db()?;
            let from = i64::try_from(from).unwrap_or(i64::MAX);
            let mut st = db
                .prepare("SELECT idx, disclosure FROM log_index WHERE idx >= ?1 AND (?2 IS NULL OR tenant = ?2) ORDER BY idx LIMIT ?3")
                .map_err(storage)?;
            st.query_map(
                params![from, tenant, i64::try_from(limit + 1).unwrap_or(i64::MAX)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(storage)?
            .collect::<Result<_, _>>()
            .map_err(storage)?
        };
        let size = self.log.size();
        let next = if rows.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            rows.pop();
            // After the last row read, whether it is shown or hidden from this reader.
            rows.last()
                .and_then(|(idx, _)| u64::try_from(*idx).ok())
                .map(|i| i + 1)
                .filter(|after| *after < size)
        } else {
            None
        };
        let mut entries = Vec::new();
        for (idx, disclosure) in rows {
            if disclosure.is_some_and(|d| hidden.contains(&d)) {
                continue;
            }
            let Ok(index) = u64::try_from(idx) else {
                continue;
            };
            if index >= size {
                // An index row with no entry behind it is not an entry.
                continue;
            }
            // An entry that cannot be read is shown as a gap, named, not as a failed page.
            entries.push(match self.log.entry(index) {
                Ok(entry) => IndexedEntry {
                    index,
                    entry: String::from_utf8_lossy(&entry).into_owned(),
                    unreadable: None,
                },
                Err(e) => {
                    tracing::error!(index, error = %e, "a transparency log entry cannot be read");
                    IndexedEntry {
                        index,
                        entry: String::new(),
                        unreadable: Some(e.to_string()),
                    }
                }
            });
        }
        serde_json::to_value(LogEntriesPage {
            size: self.log.size(),
            entries,
            next,
        })
        .map_err(storage)
    }

    /// The checkpoint, the verifier key, or a tile; entry bundles only for `entitled`.
    pub fn log_read(
        &self,
        read: &obhut_trustee_client::LogRead,
    ) -> Result<Option<Vec<u8>>, TrusteeError> {
        use obhut_trustee_client::LogRead;
        match read {
            LogRead::Checkpoint => Ok(Some(self.log.checkpoint().map_err(storage)?.into_bytes())),
            LogRead::Key => Ok(Some(self.log.verifier_key().into_bytes())),
            LogRead::Tile { path } => self.log.read_path(path).map_err(|e| invalid(e.to_string())),
        }
    }

    /// An enrolment that needs `needed` officers: each officer's signed statement for exactly
    /// the same enrolment is kept (and logged) until enough distinct officers have signed; then
    /// all of them, which become the principal's vouch. `Ok(Err(view))` while it is pending. A
    /// pending enrolment lapses after [`APPROVAL_WINDOW_MS`]; one with other fields is refused
    /// until then.
    fn enrolment_approvals(
        &self,
        who: &PrincipalInfo,
        statement: &Statement,
        signed: &SignedStatement,
        needed: usize,
    ) -> Result<Result<Vec<SignedStatement>, Value>, TrusteeError> {
        let Action::CreatePrincipal {
            name,
            role,
            tenant,
            public_key,
            ..
        } = &statement.action
        else {
            return Err(invalid("not an enrolment"));
        };
        let fields = serde_json::to_string(&statement.action).map_err(storage)?;
        let now = now_ms();
        let pending: Option<(String, String, i64)> = self
            .db()?
            .query_row(
                "SELECT fields, statements, at_ms FROM pending_enrolments WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(storage)?;
        let (mut statements, since): (Vec<SignedStatement>, i64) = match pending {
            Some((f, st, at)) if now - at < APPROVAL_WINDOW_MS => {
                if f != fields {
                    return Err(TrusteeError::Conflict(format!(
                        "an enrolment of {name} with another key, role, tenant or expiry is pending (it lapses 24 hours after it began)"
                    )));
                }
                (serde_json::from_str(&st).map_err(storage)?, at)
            }
            _ => (Vec::new(), now),
        };
        let signers = |all: &[SignedStatement]| -> Vec<String> {
            let mut v: Vec<String> = all
                .iter()
                .filter_map(|s| serde_json::from_str::<Statement>(&s.statement).ok())
                .map(|s| s.principal)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if !signers(&statements).contains(&who.name) {
            self.record(LogEvent::PrincipalApproval {
                name: name.clone(),
                role: *role,
                tenant: tenant.clone(),
                public_key: public_key.to_ascii_lowercase(),
                actor: who.name.clone(),
            })?;
            statements.push(signed.clone());
        }
        let officers = signers(&statements);
        let db = self.db()?;
        if officers.len() >= needed {
            db.execute("DELETE FROM pending_enrolments WHERE name = ?1", [name])
                .map_err(storage)?;
            return Ok(Ok(statements));
        }
        db.execute(
            "INSERT INTO pending_enrolments (name, fields, statements, at_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(name) DO UPDATE SET fields = excluded.fields, statements = excluded.statements, at_ms = excluded.at_ms",
            params![
                name,
                fields,
                serde_json::to_string(&statements).map_err(storage)?,
                since
            ],
        )
        .map_err(storage)?;
        Ok(Err(json!({
            "principal": name,
            "role": role,
            "state": "pending",
            "approvals": officers,
            "progress": format!("pending: {} of {needed} officers", officers.len()),
        })))
    }

    /// Carries out a verified statement that needs no key operation.
    pub fn act(
        &self,
        who: &PrincipalInfo,
        statement: &Statement,
        signed: &SignedStatement,
    ) -> Result<Value, TrusteeError> {
        let officer = || {
            if who.role == Role::Officer {
                Ok(())
            } else {
                Err(denied(format!("{} is not an officer", who.name)))
            }
        };
        match &statement.action {
            Action::CreatePrincipal {
                name,
                role,
                tenant,
                bearer_hash,
                public_key,
                expires_ms,
            } => {
                officer()?;
                let pk = hex_simd::decode_to_vec(public_key.as_bytes())
                    .map_err(|_| invalid("public_key must be hex"))?;
                let needed = enrolment_quorum(*role);
                let statements = if needed > 1 {
                    self.check_new_principal(name, *role, tenant.as_deref(), bearer_hash, &pk)?;
                    if self.principal_row(name)?.is_some() {
                        return Err(TrusteeError::Conflict(format!(
                            "a principal named {name:?} exists"
                        )));
                    }
                    match self.enrolment_approvals(who, statement, signed, needed)? {
                        Ok(all) => all,
                        Err(pending) => return Ok(pending),
                    }
                } else {
                    vec![signed.clone()]
                };
                let info = self.add_principal(
                    &who.name,
                    name,
                    *role,
                    tenant.as_deref(),
                    bearer_hash,
                    &pk,
                    *expires_ms,
                    &Vouch::Signed { statements },
                )?;
                Ok(json!(info))
            }
            Action::RevokePrincipal { name } => {
                officer()?;
                self.revoke_principal(&who.name, name)
            }
            Action::RegisterTenant {
                name,
                jurisdictions,
                min_sites,
            } => {
                officer()?;
                self.register_tenant(&who.name, name, jurisdictions, *min_sites)
            }
            Action::SetTenantPolicy {
                tenant,
                customer_approval,
                jurisdictions,
                min_sites,
                degraded_writes,
            } => {
                officer()?;
                self.set_policy(
                    &who.name,
                    tenant,
                    *customer_approval,
                    jurisdictions.as_deref(),
                    *min_sites,
                    *degraded_writes,
                )
            }
            Action::SetBucketPolicy {
                tenant,
                bucket,
                jurisdictions,
                min_sites,
            } => self.set_bucket_policy(who, tenant, bucket, jurisdictions.as_deref(), *min_sites),
            Action::AddSite {
                id,
                jurisdiction,
                location,
                backend,
            } => {
                officer()?;
                self.record(LogEvent::SiteAdded {
                    site: id.clone(),
                    jurisdiction: jurisdiction.clone(),
                    location: location.clone(),
                    backend: Some(backend.clone()),
                    actor: who.name.clone(),
                })?;
                Ok(json!({"site": id, "jurisdiction": jurisdiction, "location": location}))
            }
            Action::SetSiteState { id, state } => {
                officer()?;
                if !["active", "draining", "down"].contains(&state.as_str()) {
                    return Err(invalid("a site's state is active, draining or down"));
                }
                self.record(LogEvent::SiteStateChanged {
                    site: id.clone(),
                    state: state.clone(),
                    actor: who.name.clone(),
                })?;
                Ok(json!({"site": id, "state": state}))
            }
            Action::SetSiteBackend { id, backend } => {
                officer()?;
                self.record(LogEvent::SiteBackendChanged {
                    site: id.clone(),
                    backend: backend.clone(),
                    actor: who.name.clone(),
                })?;
                Ok(json!({"site": id, "backend": backend}))
            }
            Action::RemoveSite { id } => {
                officer()?;
                self.record(LogEvent::SiteRemoved {
                    site: id.clone(),
                    actor: who.name.clone(),
                })?;
                Ok(json!({"site": id, "removed": true}))
            }
            a @ Action::RequestGrant { .. } => self.request_grant(who, a),
            Action::ApproveGrant { id, scope } => {
                self.approve_grant(who, id, scope, signed, statement.at_ms)
            }
            Action::DenyGrant { id, reason } => self.end_grant(who, id, true, reason.as_deref()),
            Action::RevokeGrant { id } => self.end_grant(who, id, false, None),
            Action::GrantCredentials { id } => self.issue_credentials(who, id),
            a @ Action::RequestDisclosure { .. } => self.request_disclosure(who, a),
            Action::ApproveDisclosure { id } => self.decide_disclosure(who, id, true, None),
            Action::DenyDisclosure { id, reason } => {
                self.decide_disclosure(who, id, false, reason.as_deref())
            }
            Action::EnrolSigningKey {
                public_key,
                expires_ms,
                label,
            } => self.enrol_signing_key(who, signed, public_key, *expires_ms, label),
            Action::RevokeSigningKey { public_key } => self.revoke_signing_key(who, public_key),
            Action::SetDisclosureDelay { id, delay_ms } => {
                self.set_disclosure_delay(who, id, *delay_ms)
            }
            Action::Disconnect { reason } => {
                self.disconnect_vote(who, DisconnectMode::Disconnect, reason.as_deref(), signed)
            }
            Action::Reconnect {} => {
                self.disconnect_vote(who, DisconnectMode::Reconnect, None, signed)
            }
            Action::RecordDrill { drill, summary } => {
                officer()?;
                self.record_drill(&who.name, drill, summary)
            }
            Action::Shred { .. } => Err(invalid("crypto-shred is carried out by the keystore")),
            Action::CreateAccessKey { .. }
            | Action::RevokeAccessKey { .. }
            | Action::RotateBucketKey { .. }
            | Action::SetKeyRelease { .. } => {
                Err(invalid("access keys and bucket keys are the key custody's"))
            }
        }
    }
}

/// Serialises the disconnect votes of this process: two officers approving at the same moment
/// must not both complete the quorum.
static DISCONNECT_VOTES: Mutex<()> = Mutex::new(());

/// The longest drill name, and the most figures a drill record holds.
const MAX_DRILL_NAME: usize = 32;
const MAX_DRILL_FIGURES: usize = 64;
/// The longest text figure, and the most bytes a drill summary takes as JSON.
const MAX_DRILL_TEXT: usize = 256;
const MAX_DRILL_SUMMARY_BYTES: usize = 8 * 1024;

impl Governance {
    /// The disconnect in force, if any (from the log: it survives a restart).
    pub(crate) fn disconnected(
        &self,
    ) -> Result<Option<crate::log_facts::Disconnected>, TrusteeError> {
        Ok(self.facts()?.disconnected.clone())
    }

    /// `Err(Disconnected)` while officers have disconnected the provider: nothing is released
    /// and no request verified.
    pub fn check_connected(&self) -> Result<(), TrusteeError> {
        match &self.facts()?.disconnected {
            None => Ok(()),
            Some(d) => Err(TrusteeError::Disconnected(format!(
                "the trustee's officers {} disconnected it (log entry {}); no key is released and no request is served until a quorum of officers reconnects it",
                d.approvers.join(" and "),
                d.index
            ))),
        }
    }

    /// The disconnect state as officers and auditors see it, with the approvals pending for
    /// its next change.
    pub fn disconnect_status(&self) -> Result<Value, TrusteeError> {
        let now = now_ms();
        let facts = self.facts()?;
        let next = if facts.disconnected.is_some() {
            DisconnectMode::Reconnect
        } else {
            DisconnectMode::Disconnect
        };
        let mut pending: Vec<&String> = facts
            .disconnect_approvals
            .iter()
            .filter(|(_, (mode, at, _))| *mode == next && now - *at < APPROVAL_WINDOW_MS)
            .map(|(p, _)| p)
            .collect();
        pending.sort();
        Ok(match &facts.disconnected {
            Some(d) => json!({
                "state": "disconnected",
                "since_ms": d.at_ms,
                "log_index": d.index,
                "approvers": d.approvers,
                "reason": d.reason,
                "reconnect_approvals": pending,
            }),
            None => json!({
                "state": "connected",
                "disconnect_approvals": pending,
            }),
        })
    }

    /// One officer's approval of disconnecting or reconnecting the provider; the change is
    /// made (logged) when [`OFFICER_QUORUM`] distinct officers approved it within
    /// [`APPROVAL_WINDOW_MS`].
    fn disconnect_vote(
        &self,
        who: &PrincipalInfo,
        mode: DisconnectMode,
        reason: Option<&str>,
        signed: &SignedStatement,
    ) -> Result<Value, TrusteeError> {
        if who.role != Role::Officer {
            return Err(denied(format!(
                "{} is not an officer: only a quorum of officers can {} the provider",
                who.name,
                mode.as_str()
            )));
        }
        check_reason(reason)?;
        let _votes = DISCONNECT_VOTES
            .lock()
            .map_err(|_| storage("disconnect lock poisoned"))?;
        let now = now_ms();
        let (disconnected, mut approvals) = {
            let facts = self.facts()?;
            let mut approvals: Vec<(String, i64, Option<String>)> = facts
                .disconnect_approvals
                .iter()
                .filter(|(_, (m, at, _))| *m == mode && now - *at < APPROVAL_WINDOW_MS)
                .map(|(p, (_, at, why))| (p.clone(), *at, why.clone()))
                .collect();
            approvals.sort_by_key(|(p, at, _)| (*at, p.clone()));
            (facts.disconnected.clone(), approvals)
        };
        match (mode, &disconnected) {
            (DisconnectMode::Disconnect, Some(d)) => {
                return Err(TrusteeError::Conflict(format!(
                    "the provider is disconnected already (log entry {})",
                    d.index
                )));
            }
            (DisconnectMode::Reconnect, None) => {
                return Err(TrusteeError::Conflict(
                    "the provider is not disconnected".into(),
                ));
            }
            _ => {}
        }
        if !approvals.iter().any(|(p, _, _)| *p == who.name) {
            self.record(LogEvent::DisconnectApproval {
                mode,
                reason: reason.map(str::to_owned),
                statement: signed.statement.clone(),
                signature: signed.signature.clone(),
                actor: who.name.clone(),
            })?;
            approvals.push((who.name.clone(), now, reason.map(str::to_owned)));
        }
        // The reason recorded with the change: the latest one an approving officer gave.
        let reason = reason
            .map(str::to_owned)
            .or_else(|| approvals.iter().rev().find_map(|(_, _, why)| why.clone()));
        let approvers: Vec<String> = approvals.into_iter().map(|(p, _, _)| p).collect();
        if approvers.len() < OFFICER_QUORUM {
            return Ok(json!({
                "state": if disconnected.is_some() { "disconnected" } else { "connected" },
                "mode": mode.as_str(),
                "approvals": approvers,
                "progress": format!("pending: {} of {OFFICER_QUORUM} officers", approvers.len()),
            }));
        }
        let index = match mode {
            DisconnectMode::Disconnect => {
                let index = self.record(LogEvent::TrusteeDisconnected {
                    approvers: approvers.clone(),
                    reason,
                })?;
                tracing::warn!(
                    log_index = index,
                    approvers = ?approvers,
                    "officers disconnected the provider: no key is released and no request is served until they reconnect it"
                );
                index
            }
            DisconnectMode::Reconnect => {
                let index = self.record(LogEvent::TrusteeReconnected {
                    approvers: approvers.clone(),
                })?;
                tracing::warn!(
                    log_index = index,
                    approvers = ?approvers,
                    "officers reconnected the provider: service resumes"
                );
                index
            }
        };
        Ok(json!({
            "state": if mode == DisconnectMode::Disconnect { "disconnected" } else { "connected" },
            "mode": mode.as_str(),
            "approvals": approvers,
            "log_index": index,
        }))
    }

    /// Logs each gateway's acknowledgement of the revocation pushed for the disconnect at
    /// log index `disconnect`, and each gateway that did not acknowledge within `waited_ms`,
    /// in one durable write.
    pub fn record_gateway_acks(
        &self,
        disconnect: u64,
        acked: &[(crate::server::Follower, u64)],
        missing: &[(crate::server::Follower, Option<String>)],
        waited_ms: u64,
    ) -> Result<(), TrusteeError> {
        let mut events: Vec<LogEvent> = acked
            .iter()
            .map(|(gateway, latency_ms)| LogEvent::GatewayAcknowledged {
                gateway: gateway.client.clone(),
                certificate: gateway.certificate.clone(),
                disconnect,
                latency_ms: *latency_ms,
            })
            .collect();
        events.extend(
            missing
                .iter()
                .map(|(gateway, fault)| LogEvent::GatewayAckMissing {
                    gateway: gateway.client.clone(),
                    certificate: gateway.certificate.clone(),
                    disconnect,
                    waited_ms,
                    drill_fault: fault.clone(),
                }),
        );
        if events.is_empty() {
            return Ok(());
        }
        self.record_batch(events).map(|_| ())
    }

    /// Appends a drill's summary, checked to be a small flat record of figures.
    fn record_drill(
        &self,
        by: &str,
        drill: &str,
        summary: &serde_json::Map<String, Value>,
    ) -> Result<Value, TrusteeError> {
        if drill.is_empty()
            || drill.len() > MAX_DRILL_NAME
            || !drill
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(format!(
                "a drill's name is 1 to {MAX_DRILL_NAME} characters of a-z, 0-9 and -"
            )));
        }
        if summary.is_empty() || summary.len() > MAX_DRILL_FIGURES {
            return Err(invalid(format!(
                "a drill summary holds 1 to {MAX_DRILL_FIGURES} figures"
            )));
        }
        for (name, value) in summary {
            let fits_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let fits_value = match value {
                Value::Null | Value::Bool(_) | Value::Number(_) => true,
                Value::String(t) => {
                    t.chars().count() <= MAX_DRILL_TEXT && !t.chars().any(char::is_control)
                }
                Value::Array(_) | Value::Object(_) => false,
            };
            if !(fits_name && fits_value) {
                return Err(invalid(format!(
                    "drill figure {name:?}: a figure is named with a-z, 0-9, _ and - and is a number, a boolean, null or a short line of text"
                )));
            }
        }
        if serde_json::to_vec(summary).map_or(usize::MAX, |b| b.len()) > MAX_DRILL_SUMMARY_BYTES {
            return Err(invalid(format!(
                "a drill summary is at most {MAX_DRILL_SUMMARY_BYTES} bytes of JSON"
            )));
        }
        let index = self.record(LogEvent::DrillRecorded {
            drill: drill.to_owned(),
            summary: summary.clone(),
            actor: by.to_owned(),
        })?;
        Ok(json!({"drill": drill, "log_index": index}))
    }
}

/// A denial's reason: at most 1000 characters, no control characters but line breaks.
fn check_reason(reason: Option<&str>) -> Result<(), TrusteeError> {
    match reason {
        Some(r) if r.chars().count() > 1000 => Err(invalid("a reason is at most 1000 characters")),
        Some(r) if r.chars().any(|c| c.is_control() && c != '\n') => Err(invalid(
            "a reason holds no control characters other than line breaks",
        )),
        _ => Ok(()),
    }
}

fn disclosure_view(d: &Disclosure) -> DisclosureView {
    DisclosureView {
        id: d.id.clone(),
        tenant: d.tenant.clone(),
        authority: d.authority.clone(),
        jurisdiction: d.jurisdiction.clone(),
        legal_basis: d.legal_basis.clone(),
        scope: d.scope.clone(),
        requested_by: d.requested_by.clone(),
        created_ms: d.created_ms,
        state: d.state.clone(),
        approvals: d.approvals.clone(),
        decided_ms: d.decided_ms,
        reason: d.reason.clone(),
        visible_after_ms: d.visible_after_ms,
        progress: None,
    }
}

fn put_grant_in(db: &Connection, g: &Grant) -> Result<(), TrusteeError> {
    let record = serde_json::to_string(g).map_err(storage)?;
    let key = g.credentials.as_ref().map(|c| c.access_key_id.clone());
    db.execute(
        "INSERT INTO grants (id, access_key_id, record) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO UPDATE SET access_key_id = excluded.access_key_id, record = excluded.record",
        params![g.id, key, record],
    )
    .map_err(storage)?;
    Ok(())
}

fn put_disclosure_in(db: &Connection, d: &Disclosure) -> Result<(), TrusteeError> {
    let record = serde_json::to_string(d).map_err(storage)?;
    db.execute(
        "INSERT INTO disclosures (id, record) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET record = excluded.record",
        params![d.id, record],
    )
    .map_err(storage)?;
    Ok(())
}

/// A view as the JSON that crosses the trustee's interface.
fn to_json(view: &impl Serialize) -> Result<Value, TrusteeError> {
    serde_json::to_value(view).map_err(storage)
}

/// Files entry `idx` as read back from the log: by its type if it is a known event, under no
/// tenant if it is not (only officers and auditors then see it).
fn index_bytes(db: &Connection, idx: u64, bytes: &[u8]) -> Result<(), TrusteeError> {
    let entry = ParsedEntry::parse(bytes);
    index_entry(db, idx, entry.tenant(), entry.disclosure())
}

/// Files entry `idx` under the tenant whose admin may read it and the disclosure request
/// whose delay hides it, both as the entry's type says.
fn index_entry(
    db: &Connection,
    idx: u64,
    tenant: Option<&str>,
    disclosure: Option<&str>,
) -> Result<(), TrusteeError> {
    db.execute(
        "INSERT OR REPLACE INTO log_index (idx, tenant, disclosure) VALUES (?1, ?2, ?3)",
        params![i64::try_from(idx).map_err(storage)?, tenant, disclosure],
    )
    .map_err(storage)?;
    Ok(())
}

/// The log and its signing key (`log/log-key`, mode 0600, made on first start).
fn open_log(dir: &Path) -> Result<obhut_tlog::Log, TrusteeError> {
    std::fs::create_dir_all(dir).map_err(storage)?;
    let key_file = dir.join("log-key");
    let seed_hex = match std::fs::read_to_string(&key_file) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = random_hex(32)?;
            crate::write_private_file(&key_file, s.as_bytes(), 0o600).map_err(storage)?;
            s
        }
        Err(e) => return Err(storage(format!("{}: {e}", key_file.display()))),
    };
    let seed_bytes = hex_simd::decode_to_vec(seed_hex.trim().as_bytes())
        .map_err(|_| storage(format!("{} is not hex", key_file.display())))?;
    let seed: [u8; 32] = seed_bytes
        .try_into()
        .map_err(|_| storage(format!("{} is not a 32-byte seed", key_file.display())))?;
    let origin_file = dir.join("origin");
    let origin = match std::fs::read_to_string(&origin_file) {
        Ok(s) => s.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let o = format!("obhut.trustee/{}", random_hex(6)?);
            crate::write_private_file(&origin_file, o.as_bytes(), 0o644).map_err(storage)?;
            o
        }
        Err(e) => return Err(storage(format!("{}: {e}", origin_file.display()))),
    };
    obhut_tlog::Log::open(dir, &origin, seed).map_err(storage)
}
