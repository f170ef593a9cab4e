//! Governance rules, each tested both ways: who may approve, quorums, signatures, scope,
//! expiry, revocation, disclosures, and the log entries that every decision leaves.

use super::*;
use obhut_core::BucketNarrowing;
use obhut_crypto::principal::PrincipalCredential;
use obhut_trustee_client::Statement;
use obhut_trustee_client::auth::KeyUse;
use serde_json::Value;

static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct World {
    _dir: tempfile::TempDir,
    t: Trustee,
    creds: std::collections::HashMap<String, PrincipalCredential>,
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let shares = SealedKeystore::init(dir.path(), 3, 2).unwrap();
        let t = Trustee::open(dir.path()).unwrap();
        t.unseal(&shares[0]).await.unwrap();
        t.unseal(&shares[1]).await.unwrap();
        t.bootstrap_tenant("a", &["DE".into()], 2).unwrap();
        t.bootstrap_tenant("b", &["DE".into(), "AT".into()], 2)
            .unwrap();
        let mut w = Self {
            _dir: dir,
            t,
            creds: std::collections::HashMap::new(),
        };
        for (name, role, tenant) in [
            ("o1", Role::Officer, None),
            ("o2", Role::Officer, None),
            ("o3", Role::Officer, None),
            ("op", Role::Operator, None),
            ("aud", Role::Auditor, None),
            ("adm-a", Role::TenantAdmin, Some("a")),
            ("adm-b", Role::TenantAdmin, Some("b")),
        ] {
            w.enrol(name, role, tenant);
        }
        w
    }

    fn enrol(&mut self, name: &str, role: Role, tenant: Option<&str>) {
        let c = PrincipalCredential::from_token(&format!("obt_{name}")).unwrap();
        self.t
            .bootstrap_principal(
                name,
                role,
                tenant,
                &obhut_crypto::principal::bearer_hash(c.bearer()),
                &c.public_key(),
            )
            .unwrap();
        self.creds.insert(name.to_owned(), c);
    }

    /// Enrols a principal by `by`'s signed statement, as `obhut principal create` does (an
    /// officer or a tenant admin with a second officer's confirmation).
    async fn enrol_by(&mut self, by: &str, name: &str, role: Role, tenant: Option<&str>) {
        let c = PrincipalCredential::from_token(&format!("obt_{name}")).unwrap();
        let action = Action::CreatePrincipal {
            name: name.into(),
            role,
            tenant: tenant.map(str::to_owned),
            bearer_hash: obhut_crypto::principal::bearer_hash(c.bearer()),
            public_key: hex_simd::encode_to_string(c.public_key(), hex_simd::AsciiCase::Lower),
            expires_ms: None,
        };
        self.act(by, action.clone()).await.unwrap();
        if matches!(role, Role::Officer | Role::TenantAdmin) {
            let second = if by == "o2" { "o1" } else { "o2" };
            self.act(second, action).await.unwrap();
        }
        self.creds.insert(name.to_owned(), c);
    }

    /// Runs SQL on governance.db, as its database's administrator could.
    fn edit(&self, sql: &str) {
        let db = self.t.governance.db().unwrap();
        assert!(db.execute(sql, []).unwrap() > 0, "{sql} changed nothing");
        drop(db);
    }

    fn bearer_of(&self, who: &str) -> String {
        obhut_crypto::principal::bearer_hash(self.creds[who].bearer())
    }

    fn signed(&self, who: &str, action: Action) -> SignedStatement {
        let st = Statement {
            principal: who.into(),
            at_ms: governance::now_ms(),
            nonce: NONCE
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_string(),
            action,
        };
        let text = serde_json::to_string(&st).unwrap();
        let sig = self.creds[who].sign_statement(&text);
        SignedStatement {
            statement: text,
            signature: base64_simd::STANDARD.encode_to_string(sig),
        }
    }

    async fn act(&self, who: &str, action: Action) -> Result<Value, TrusteeError> {
        self.t.act(&self.signed(who, action)).await
    }

    async fn request(&self, ops: &[&str]) -> String {
        let v = self
            .act(
                "op",
                Action::RequestGrant {
                    tenant: "a".into(),
                    bucket: "photos".into(),
                    prefix: "support/".into(),
                    ops: ops.iter().map(|s| (*s).to_owned()).collect(),
                    duration_ms: 3_600_000,
                    reason: "case 1".into(),
                },
            )
            .await
            .unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    async fn approve(&self, who: &str, id: &str) -> Result<Value, TrusteeError> {
        let scope = self.t.governance.grant(id).unwrap().scope_digest();
        self.act(
            who,
            Action::ApproveGrant {
                id: id.into(),
                scope,
            },
        )
        .await
    }

    /// Credentials of an approved grant: (access key id, session token).
    async fn credentials(&self, id: &str) -> (String, String) {
        let c = self
            .act("op", Action::GrantCredentials { id: id.into() })
            .await
            .unwrap();
        (
            c["access_key_id"].as_str().unwrap().to_owned(),
            c["session_token"].as_str().unwrap().to_owned(),
        )
    }

    fn access(
        &self,
        creds: &(String, String),
        class: &str,
        bucket: &str,
        key: &str,
    ) -> GrantAccess {
        GrantAccess {
            ticket: self.t.verifier.ticket(
                "test".into(),
                "a",
                &creds.0,
                vec![bucket.to_owned()],
                Vec::new(),
                crate::governance::now_ms(),
            ),
            access_key_id: creds.0.clone(),
            session_token: creds.1.clone(),
            operation: "GetObject".into(),
            class: class.into(),
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// Every log entry, parsed.
    fn entries(&self) -> Vec<Value> {
        let v = self
            .t
            .governance
            .query(
                "aud",
                &Query::LogEntries {
                    tenant: None,
                    from: 0,
                    limit: None,
                },
            )
            .unwrap();
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str(e["entry"].as_str().unwrap()).unwrap())
            .collect()
    }

    fn count(&self, kind: &str) -> usize {
        self.entries().iter().filter(|e| e["type"] == kind).count()
    }
}

fn is_denied<T: std::fmt::Debug>(r: &Result<T, TrusteeError>) -> bool {
    matches!(r, Err(TrusteeError::Denied(_)))
}

#[tokio::test]
async fn a_grant_needs_two_distinct_officers_other_than_the_requester_and_the_tenant() {
    let w = World::new().await;
    let id = w.request(&["read"]).await;
    // the requester cannot approve; operators and auditors cannot approve
    assert!(is_denied(&w.approve("op", &id).await));
    assert!(is_denied(&w.approve("aud", &id).await));
    // the tenant admin of another tenant cannot approve
    assert!(is_denied(&w.approve("adm-b", &id).await));
    // one officer, twice: still one
    let v = w.approve("o1", &id).await.unwrap();
    assert_eq!(v["state"], "pending");
    let v = w.approve("o1", &id).await.unwrap();
    assert_eq!(v["state"], "pending");
    assert_eq!(
        v["progress"],
        "pending: 1 of 2 officers, tenant admin has not approved"
    );
    // two officers without the tenant (customer approval required by default): pending
    let v = w.approve("o2", &id).await.unwrap();
    assert_eq!(v["state"], "pending");
    assert!(is_denied(
        &w.act("op", Action::GrantCredentials { id: id.clone() })
            .await
    ));
    // the tenant's admin completes it
    let v = w.approve("adm-a", &id).await.unwrap();
    assert_eq!(v["state"], "approved");
    assert!(v["expires_ms"].as_i64().unwrap() > governance::now_ms());
    assert_eq!(w.count("grant_approval"), 3);
    assert_eq!(w.count("grant_approved"), 1);
}

#[tokio::test]
async fn an_officer_requesting_does_not_count_and_optional_policy_needs_no_tenant() {
    let w = World::new().await;
    w.act(
        "o1",
        Action::SetTenantPolicy {
            tenant: "a".into(),
            customer_approval: Some(false),
            jurisdictions: None,
            min_sites: None,
            degraded_writes: None,
        },
    )
    .await
    .unwrap();
    assert!(is_denied(
        &w.act(
            "adm-a",
            Action::SetTenantPolicy {
                tenant: "a".into(),
                customer_approval: Some(false),
                jurisdictions: None,
                min_sites: None,
                degraded_writes: None,
            }
        )
        .await
    ));
    let v = w
        .act(
            "o1",
            Action::RequestGrant {
                tenant: "a".into(),
                bucket: "photos".into(),
                prefix: String::new(),
                ops: vec!["read".into()],
                duration_ms: 3_600_000,
                reason: "incident".into(),
            },
        )
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(is_denied(&w.approve("o1", &id).await));
    assert_eq!(w.approve("o2", &id).await.unwrap()["state"], "pending");
    assert_eq!(w.approve("o3", &id).await.unwrap()["state"], "approved");
    assert_eq!(w.count("policy_changed"), 1);
}

#[tokio::test]
async fn access_under_a_grant_is_checked_and_logged_before_it_happens() {
    let w = World::new().await;
    let id = w.request(&["read", "list"]).await;
    for who in ["o1", "o2", "adm-a"] {
        w.approve(who, &id).await.unwrap();
    }
    let creds = w.credentials(&id).await;
    let t = &w.t;
    // within scope: allowed, and logged
    let before = w.count("grant_access");
    let scope = t
        .authorize_grant_access(&w.access(&creds, "read", "photos", "support/x"))
        .await
        .unwrap();
    assert_eq!(
        (scope.grant_id.as_str(), scope.tenant.as_str()),
        (id.as_str(), "a")
    );
    assert_eq!(w.count("grant_access"), before + 1);
    // a write under a read grant, another bucket, another prefix, a wrong token: denied
    for bad in [
        w.access(&creds, "write", "photos", "support/x"),
        w.access(&creds, "read", "other", "support/x"),
        w.access(&creds, "read", "photos", "private/x"),
        w.access(
            &(creds.0.clone(), "obs_wrong".into()),
            "read",
            "photos",
            "support/x",
        ),
    ] {
        assert!(is_denied(&t.authorize_grant_access(&bad).await), "{bad:?}");
    }
    assert_eq!(w.count("grant_access"), before + 1);
    // key release for the grant: allowed for its bucket, logged with the grant
    t.ensure_tenant_key("a").await.unwrap();
    let wk = t
        .create_bucket_key("a", "photos", 1, &t.test_customer("a"))
        .await
        .unwrap_or_else(|_| panic!("no tenant key"));
    let grant = Justification::Grant {
        grant_id: id.clone(),
    };
    let releases = w.count("key_release");
    t.release_bucket_key("a", "photos", &wk, &grant)
        .await
        .unwrap();
    assert_eq!(w.count("key_release"), releases + 1);
    let last = w
        .entries()
        .into_iter()
        .rfind(|e| e["type"] == "key_release")
        .unwrap();
    assert_eq!(last["justification"]["grant_id"], id.as_str());
    // not for another bucket of the tenant
    let other = t
        .create_bucket_key("a", "other", 1, &t.test_customer("a"))
        .await
        .unwrap();
    assert!(is_denied(
        &t.release_bucket_key("a", "other", &other, &grant).await
    ));
    // revoked by the tenant admin: everything stops
    w.act("adm-a", Action::RevokeGrant { id: id.clone() })
        .await
        .unwrap();
    assert!(is_denied(
        &t.authorize_grant_access(&w.access(&creds, "read", "photos", "support/x"))
            .await
    ));
    assert!(is_denied(
        &t.release_bucket_key("a", "photos", &wk, &grant).await
    ));
    // the secret still verifies signatures (inside the trustee), so that the refusal is logged
    // as the requester's
    assert!(t.governance.grant_secret(&creds.0).unwrap().is_some());
    assert_eq!(w.count("grant_revoked"), 1);
}

#[tokio::test]
async fn a_forged_or_altered_approval_does_not_count() {
    let w = World::new().await;
    let id = w.request(&["read"]).await;
    // o2's name, signed with o1's key
    let scope = w.t.governance.grant(&id).unwrap().scope_digest();
    let mut forged = w.signed(
        "o1",
        Action::ApproveGrant {
            id: id.clone(),
            scope: scope.clone(),
        },
    );
    forged.statement = forged.statement.replace("\"o1\"", "\"o2\"");
    assert!(is_denied(&w.t.act(&forged).await));
    // a statement from long ago is refused (no replay)
    let old = Statement {
        principal: "o1".into(),
        at_ms: governance::now_ms() - 3_600_000,
        nonce: "n".into(),
        action: Action::ApproveGrant {
            id: id.clone(),
            scope: scope.clone(),
        },
    };
    let text = serde_json::to_string(&old).unwrap();
    let sig = base64_simd::STANDARD.encode_to_string(w.creds["o1"].sign_statement(&text));
    assert!(is_denied(
        &w.t.act(&SignedStatement {
            statement: text,
            signature: sig
        })
        .await
    ));
    assert_eq!(w.count("grant_approval"), 0);
}

#[tokio::test]
async fn revoked_and_expired_principals_cannot_act() {
    let mut w = World::new().await;
    w.act("o1", Action::RevokePrincipal { name: "o3".into() })
        .await
        .unwrap();
    let id = w.request(&["read"]).await;
    assert!(is_denied(&w.approve("o3", &id).await));
    let p =
        w.t.authenticate(&obhut_crypto::principal::bearer_hash(
            w.creds["o3"].bearer(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(p.revoked);
    // only officers enrol and revoke
    assert!(is_denied(
        &w.act("op", Action::RevokePrincipal { name: "o2".into() })
            .await
    ));
    // an expired principal
    w.enrol_by("o1", "tmp", Role::Officer, None).await;
    let c = PrincipalCredential::from_token("obt_late").unwrap();
    let late = Action::CreatePrincipal {
        name: "late".into(),
        role: Role::Officer,
        tenant: None,
        bearer_hash: obhut_crypto::principal::bearer_hash(c.bearer()),
        public_key: hex_simd::encode_to_string(c.public_key(), hex_simd::AsciiCase::Lower),
        expires_ms: Some(governance::now_ms() - 1),
    };
    w.act("o1", late.clone()).await.unwrap();
    w.act("o2", late).await.unwrap();
    w.creds.insert("late".into(), c);
    assert!(is_denied(&w.approve("late", &id).await));
    assert_eq!(w.count("principal_created"), 7 + 2);
}

#[tokio::test]
async fn disclosures_outside_the_tenants_jurisdictions_are_refused_the_rest_need_a_quorum() {
    let w = World::new().await;
    let ask = |j: &str| Action::RequestDisclosure {
        tenant: "a".into(),
        authority: "Some Agency".into(),
        jurisdiction: j.into(),
        legal_basis: "statute 1".into(),
        scope: "bucket photos".into(),
        delay_ms: 0,
    };
    let us = w.act("o1", ask("US")).await.unwrap();
    assert_eq!(us["state"], "refused");
    assert!(is_denied(&w.act("op", ask("DE")).await));
    let de = w.act("o1", ask("DE")).await.unwrap();
    let id = de["id"].as_str().unwrap().to_owned();
    assert_eq!(de["state"], "pending");
    assert!(is_denied(
        &w.act("adm-a", Action::ApproveDisclosure { id: id.clone() })
            .await
    ));
    // the officer who recorded it does not count
    assert!(is_denied(
        &w.act("o1", Action::ApproveDisclosure { id: id.clone() })
            .await
    ));
    assert_eq!(
        w.act("o3", Action::ApproveDisclosure { id: id.clone() })
            .await
            .unwrap()["state"],
        "pending"
    );
    assert_eq!(
        w.act("o3", Action::ApproveDisclosure { id: id.clone() })
            .await
            .unwrap()["state"],
        "pending"
    );
    // delayed: the tenant does not see it (nor its log entries) until the delay has passed
    w.act(
        "o2",
        Action::SetDisclosureDelay {
            id: id.clone(),
            delay_ms: 30 * 24 * 3_600_000,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        w.act("o2", Action::ApproveDisclosure { id: id.clone() })
            .await
            .unwrap()["state"],
        "approved"
    );
    let seen = w.t.query("adm-a", &Query::Disclosures).await.unwrap();
    let ids: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&id.as_str()) && ids.contains(&us["id"].as_str().unwrap()),
        "{seen}"
    );
    let officer_view = w.t.query("o3", &Query::Disclosures).await.unwrap();
    assert_eq!(officer_view.as_array().unwrap().len(), 2);
    let tenant_log =
        w.t.query(
            "adm-a",
            &Query::LogEntries {
                tenant: None,
                from: 0,
                limit: None,
            },
        )
        .await
        .unwrap()
        .to_string();
    assert!(
        !tenant_log.contains(&id),
        "a delayed disclosure leaked into the tenant's log view"
    );
    // Paged one index row at a time, the tenant's log holds the same entries, and pages that
    // hold only hidden rows still say where the next one starts.
    let whole: Value = serde_json::from_str(&tenant_log).unwrap();
    let whole: Vec<u64> = whole["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    let (mut paged, mut from, mut empty_pages_followed) = (Vec::new(), Some(0), 0);
    while let Some(f) = from {
        let page =
            w.t.query(
                "adm-a",
                &Query::LogEntries {
                    tenant: None,
                    from: f,
                    limit: Some(1),
                },
            )
            .await
            .unwrap();
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 1, "{page}");
        paged.extend(entries.iter().map(|e| e["index"].as_u64().unwrap()));
        from = page["next"].as_u64();
        if entries.is_empty() && from.is_some() {
            empty_pages_followed += 1;
        }
        assert!(
            !page.to_string().contains(&id),
            "a delayed disclosure leaked into a page"
        );
    }
    assert_eq!(paged, whole);
    assert!(
        empty_pages_followed > 0,
        "no page held only hidden entries: the test proves nothing about them"
    );
    for bad in [0, obhut_trustee_client::MAX_LOG_ENTRIES + 1] {
        let e =
            w.t.query(
                "adm-a",
                &Query::LogEntries {
                    tenant: None,
                    from: 0,
                    limit: Some(bad),
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
    }
    assert_eq!(w.count("disclosure_delay_set"), 1);
    assert_eq!(w.count("disclosure_refused"), 1);
    // tenant admins read only their own tenant's entries; operators none
    assert!(is_denied(
        &w.t.query(
            "adm-b",
            &Query::LogEntries {
                tenant: Some("a".into()),
                from: 0,
                limit: None,
            }
        )
        .await
    ));
    assert!(is_denied(
        &w.t.query(
            "op",
            &Query::LogEntries {
                tenant: None,
                from: 0,
                limit: None,
            }
        )
        .await
    ));
}

#[tokio::test]
async fn shred_quorum_is_counted_by_the_trustee() {
    let w = World::new().await;
    w.t.ensure_tenant_key("a").await.unwrap();
    let shred = |mode| Action::Shred {
        tenant: "a".into(),
        mode,
    };
    assert!(is_denied(&w.act("op", shred(ShredMode::Now)).await));
    assert!(is_denied(&w.act("adm-b", shred(ShredMode::Now)).await));
    assert_eq!(
        w.act("adm-a", shred(ShredMode::Now)).await.unwrap()["state"],
        "pending"
    );
    assert_eq!(
        w.act("adm-a", shred(ShredMode::Now)).await.unwrap()["state"],
        "pending"
    );
    assert_eq!(
        w.act("o1", shred(ShredMode::Now)).await.unwrap()["state"],
        "destroyed"
    );
    assert_eq!(w.count("tenant_key_destroyed"), 1);
}

/// The quorum actions in progress, as each role may see them: officers and auditors all of
/// them (shreds with their tenant's key state, and a pending disconnect), a tenant's admin its
/// own tenant's shreds only, an operator none.
#[tokio::test]
async fn quorum_actions_in_progress_are_shown_to_whom_they_concern() {
    let w = World::new().await;
    w.t.ensure_tenant_key("a").await.unwrap();
    w.t.ensure_tenant_key("b").await.unwrap();
    let q = |who: &'static str, tenant: Option<&str>| {
        let tenant = tenant.map(str::to_owned);
        let t = &w.t;
        async move { t.query(who, &Query::Quorum { tenant }).await }
    };
    // nothing in progress yet; the tenant admin sees its key's state
    assert_eq!(
        q("o1", None).await.unwrap()["actions"],
        serde_json::json!([])
    );
    let own = q("adm-a", None).await.unwrap();
    assert_eq!(own["tenant_key"]["tenant"], "a");
    assert_eq!(own["tenant_key"]["state"], "active");
    let before = governance::now_ms();
    for (who, tenant, mode) in [
        ("adm-a", "a", ShredMode::Disable),
        ("adm-b", "b", ShredMode::Now),
    ] {
        let r = w
            .act(
                who,
                Action::Shred {
                    tenant: tenant.into(),
                    mode,
                },
            )
            .await
            .unwrap();
        assert_eq!(r["state"], "pending");
    }
    w.act("o1", Action::Disconnect { reason: None })
        .await
        .unwrap();
    for who in ["o2", "aud"] {
        let all = q(who, None).await.unwrap();
        let actions = all["actions"].as_array().unwrap();
        let kinds: Vec<&str> = actions
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["shred", "shred-now", "disconnect"], "{who}");
        let shred = &actions[0];
        assert_eq!(shred["tenant"], "a");
        assert_eq!(shred["required"], 2);
        assert_eq!(shred["rule"], "2, at least one officer");
        assert_eq!(shred["officers"], 0);
        assert_eq!(shred["key_state"], "active");
        assert_eq!(shred["approvals"][0]["principal"], "adm-a");
        assert_eq!(shred["approvals"][0]["role"], "tenant-admin");
        let at = shred["approvals"][0]["at_ms"].as_i64().unwrap();
        assert!(at >= before);
        assert_eq!(shred["expires_ms"], at + governance::APPROVAL_WINDOW_MS);
        let disconnect = &actions[2];
        assert!(disconnect["tenant"].is_null());
        assert_eq!(disconnect["approvals"][0]["principal"], "o1");
        assert_eq!(disconnect["rule"], "2 officers");
        assert!(all.get("tenant_key").is_none());
    }
    // one tenant's, with its key
    let b = q("o1", Some("b")).await.unwrap();
    assert_eq!(b["actions"].as_array().unwrap().len(), 1);
    assert_eq!(b["actions"][0]["kind"], "shred-now");
    assert_eq!(b["tenant_key"]["state"], "active");
    // a tenant's admin: its own tenant's shred and key, nothing of b's, no disconnect
    let own = q("adm-a", None).await.unwrap();
    let actions = own["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{own}");
    assert_eq!(actions[0]["tenant"], "a");
    assert_eq!(q("adm-a", Some("a")).await.unwrap(), own);
    assert!(is_denied(&q("adm-a", Some("b")).await));
    // operators are refused, asking for all or for one tenant
    assert!(is_denied(&q("op", None).await));
    assert!(is_denied(&q("op", Some("a")).await));
    // an officer's approval completes the shred: it leaves the list, and the key is disabled
    w.act(
        "o1",
        Action::Shred {
            tenant: "a".into(),
            mode: ShredMode::Disable,
        },
    )
    .await
    .unwrap();
    let own = q("adm-a", None).await.unwrap();
    assert_eq!(own["actions"], serde_json::json!([]));
    assert_eq!(own["tenant_key"]["state"], "disabled");
    assert!(own["tenant_key"]["destroy_after_ms"].as_i64().unwrap() > before);
    // an approval older than the window no longer counts, nor is it shown
    w.edit("UPDATE approvals SET at_ms = 1 WHERE action = 'shred-now:b'");
    let all = q("o1", None).await.unwrap();
    let kinds: Vec<&str> = all["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["disconnect"]);
}

/// A browser's enrolled key signs approvals of a shred that disables a key and of a disconnect
/// (each counts like one signed with the principal's own key), but nothing irreversible or
/// giving access back: not a shred now, not a cancel, not a reconnect. Revoking the key
/// withdraws its principal's pending shred approvals; a cancel is refused while the key is
/// active, so that none can be kept in store.
#[tokio::test]
async fn an_enrolled_key_approves_disabling_shreds_and_disconnects_only() {
    let w = World::new().await;
    w.t.ensure_tenant_key("a").await.unwrap();
    w.t.ensure_tenant_key("b").await.unwrap();
    let (ka, k1, k2) = (browser_key("adm-a"), browser_key("o1"), browser_key("o2"));
    w.enrol_key("adm-a", &ka, 3_600_000).await.unwrap();
    w.enrol_key("o1", &k1, 3_600_000).await.unwrap();
    w.enrol_key("o2", &k2, 3_600_000).await.unwrap();
    let shred = |tenant: &str, mode| Action::Shred {
        tenant: tenant.into(),
        mode,
    };
    // irreversible or giving access back: refused from a browser key, both roles
    for (k, who, tenant, mode) in [
        (&k1, "o1", "b", ShredMode::Now),
        (&ka, "adm-a", "a", ShredMode::Now),
        (&k1, "o1", "a", ShredMode::Cancel),
    ] {
        let r = w.t.act(&w.signed_with(k, who, shred(tenant, mode))).await;
        assert!(is_denied(&r), "{who} {mode:?}: {r:?}");
    }
    // a cancel kept in store while the key is active: refused, with the own key too
    let r = w.act("o1", shred("a", ShredMode::Cancel)).await;
    assert!(matches!(r, Err(TrusteeError::Conflict(_))), "{r:?}");
    // o1's browser approves disabling b; o1 then revokes that key: the approval is withdrawn,
    // so o2's approval alone is pending, not a quorum
    let r =
        w.t.act(&w.signed_with(&k1, "o1", shred("b", ShredMode::Disable)))
            .await
            .unwrap();
    assert_eq!(r["state"], "pending");
    w.act(
        "o1",
        Action::RevokeSigningKey {
            public_key: key_hex(&k1),
        },
    )
    .await
    .unwrap();
    let r =
        w.t.act(&w.signed_with(&k2, "o2", shred("b", ShredMode::Disable)))
            .await
            .unwrap();
    assert_eq!(r["state"], "pending", "{r}");
    // disabling a: the tenant admin's browser and an officer's
    let r =
        w.t.act(&w.signed_with(&ka, "adm-a", shred("a", ShredMode::Disable)))
            .await
            .unwrap();
    assert_eq!(r["state"], "pending");
    let r =
        w.t.act(&w.signed_with(&k2, "o2", shred("a", ShredMode::Disable)))
            .await
            .unwrap();
    assert_eq!(r["state"], "disabled");
    // a key enrolled for one principal signs nothing in another's name
    let r =
        w.t.act(&w.signed_with(&ka, "o2", shred("b", ShredMode::Disable)))
            .await;
    assert!(is_denied(&r), "{r:?}");
    // the cancel of a's shred: the principals' own keys only
    let r =
        w.t.act(&w.signed_with(&k2, "o2", shred("a", ShredMode::Cancel)))
            .await;
    assert!(is_denied(&r), "{r:?}");
    w.act("o1", shred("a", ShredMode::Cancel)).await.unwrap();
    let r = w.act("adm-a", shred("a", ShredMode::Cancel)).await.unwrap();
    assert_eq!(r["state"], "active", "{r}");
    // disconnect: browser keys; reconnect: own keys only
    let k1b = browser_key("o1-again");
    w.enrol_key("o1", &k1b, 3_600_000).await.unwrap();
    for (k, who) in [(&k1b, "o1"), (&k2, "o2")] {
        w.t.act(&w.signed_with(k, who, Action::Disconnect { reason: None }))
            .await
            .unwrap();
    }
    assert!(w.t.seal_status().await.unwrap().disconnected);
    let r =
        w.t.act(&w.signed_with(&k1b, "o1", Action::Reconnect {}))
            .await;
    assert!(is_denied(&r), "{r:?}");
    assert_eq!(w.count("disconnect_approval"), 2);
}

#[tokio::test]
async fn the_log_survives_a_restart_and_only_grows() {
    let dir = tempfile::tempdir().unwrap();
    let shares = SealedKeystore::init(dir.path(), 3, 2).unwrap();
    let first = {
        let t = Trustee::open(dir.path()).unwrap();
        t.unseal(&shares[0]).await.unwrap();
        t.unseal(&shares[1]).await.unwrap();
        t.bootstrap_tenant("a", &["DE".into()], 2).unwrap();
        String::from_utf8(t.log_read(&LogRead::Checkpoint).await.unwrap().unwrap()).unwrap()
    };
    let t = Trustee::open(dir.path()).unwrap();
    let key = String::from_utf8(t.log_read(&LogRead::Key).await.unwrap().unwrap()).unwrap();
    let again =
        String::from_utf8(t.log_read(&LogRead::Checkpoint).await.unwrap().unwrap()).unwrap();
    let a = obhut_tlog::verify_checkpoint(&first, &key).unwrap();
    let b = obhut_tlog::verify_checkpoint(&again, &key).unwrap();
    assert_eq!((a.size, a.root), (b.size, b.root));
    t.bootstrap_tenant("b", &["DE".into()], 2).unwrap();
    let grown =
        String::from_utf8(t.log_read(&LogRead::Checkpoint).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        obhut_tlog::verify_checkpoint(&grown, &key).unwrap().size,
        a.size + 1
    );
}

#[tokio::test]
async fn an_approval_covers_exactly_the_scope_it_signed() {
    let w = World::new().await;
    let id = w.request(&["read"]).await;
    // signed for another scope: refused
    assert!(matches!(
        w.act(
            "o1",
            Action::ApproveGrant {
                id: id.clone(),
                scope: "0".repeat(64)
            }
        )
        .await,
        Err(TrusteeError::Conflict(_))
    ));
    for who in ["o1", "o2", "adm-a"] {
        w.approve(who, &id).await.unwrap();
    }
    let creds = w.credentials(&id).await;
    let read = w.access(&creds, "read", "photos", "support/x");
    w.t.authorize_grant_access(&read).await.unwrap();
    // the stored grant widened behind the approvers' backs: nothing works any more
    let mut g = w.t.governance.grant(&id).unwrap();
    g.prefix = String::new();
    g.ops = vec!["read".into(), "write".into()];
    w.t.governance.put_grant(&g).unwrap();
    assert!(is_denied(&w.t.authorize_grant_access(&read).await));
    assert!(is_denied(
        &w.t.authorize_grant_access(&w.access(&creds, "write", "photos", "x"))
            .await
    ));
    // and made to last longer: still bounded by the signed approval times
    let mut g = w.t.governance.grant(&id).unwrap();
    g.prefix = "support/".into();
    g.ops = vec!["read".into()];
    g.expires_ms = Some(i64::MAX);
    g.duration_ms = 3_600_000;
    w.t.governance.put_grant(&g).unwrap();
    w.t.authorize_grant_access(&read).await.unwrap();
}

#[tokio::test]
async fn a_statement_counts_once() {
    let w = World::new().await;
    let policy = |required| Action::SetTenantPolicy {
        tenant: "a".into(),
        customer_approval: Some(required),
        jurisdictions: None,
        min_sites: None,
        degraded_writes: None,
    };
    let optional = w.signed("o1", policy(false));
    w.t.act(&optional).await.unwrap();
    w.act("o1", policy(true)).await.unwrap();
    assert!(is_denied(&w.t.act(&optional).await));
    let v =
        w.t.query("o1", &Query::TenantPolicy { tenant: "a".into() })
            .await
            .unwrap();
    assert_eq!(v["customer_approval"], "required");
}

#[tokio::test]
async fn revoking_a_principal_ends_what_rests_on_it() {
    let w = World::new().await;
    let id = w.request(&["read"]).await;
    for who in ["o1", "o2", "adm-a"] {
        w.approve(who, &id).await.unwrap();
    }
    let creds = w.credentials(&id).await;
    let read = w.access(&creds, "read", "photos", "support/x");
    w.t.authorize_grant_access(&read).await.unwrap();
    // an approver revoked: its approval no longer counts, the grant stops
    w.act("o3", Action::RevokePrincipal { name: "o2".into() })
        .await
        .unwrap();
    assert!(is_denied(&w.t.authorize_grant_access(&read).await));
    assert!(matches!(
        w.act("o3", Action::RevokePrincipal { name: "o2".into() })
            .await,
        Err(TrusteeError::Conflict(_))
    ));
    // a second grant; its requester revoked: the grant stops
    let id2 = w.request(&["read"]).await;
    for who in ["o1", "o3", "adm-a"] {
        w.approve(who, &id2).await.unwrap();
    }
    let creds2 = w.credentials(&id2).await;
    let read2 = w.access(&creds2, "read", "photos", "support/x");
    w.t.authorize_grant_access(&read2).await.unwrap();
    w.act("o1", Action::RevokePrincipal { name: "op".into() })
        .await
        .unwrap();
    assert!(is_denied(&w.t.authorize_grant_access(&read2).await));
    assert!(w.count("grant_access_denied") >= 2);
}

#[tokio::test]
async fn entries_are_visible_by_their_type_and_unknown_ones_only_to_officers_and_auditors() {
    let w = World::new().await;
    let entries_of = |who: &str| -> Vec<Value> {
        let v =
            w.t.governance
                .query(
                    who,
                    &Query::LogEntries {
                        tenant: None,
                        from: 0,
                        limit: None,
                    },
                )
                .unwrap();
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str(e["entry"].as_str().unwrap()).unwrap())
            .collect()
    };
    // as the first release wrote a key release, and a type from a later release
    let old = w
        .t
        .governance
        .append_raw(br#"{"at_ms":1700000000000,"bucket":"photos","justification":{"grant_id":"g-01","kind":"grant"},"key_version":2,"salt":"00","tenant":"a","type":"key_release"}"#)
        .unwrap();
    let later =
        w.t.governance
            .append_raw(
                br#"{"at_ms":1900000000000,"salt":"00","tenant":"a","type":"quantum_key_rotated"}"#,
            )
            .unwrap();
    let has = |entries: &[Value], at: i64| entries.iter().any(|e| e["at_ms"] == at);
    let tenant_view = entries_of("adm-a");
    assert!(
        has(&tenant_view, 1_700_000_000_000),
        "entry {old} is tenant a's"
    );
    assert!(
        !has(&tenant_view, 1_900_000_000_000),
        "entry {later} is of a type this version cannot judge: not shown to a tenant"
    );
    assert!(!has(&entries_of("adm-b"), 1_700_000_000_000));
    for who in ["aud", "o1"] {
        let all = entries_of(who);
        assert!(has(&all, 1_700_000_000_000) && has(&all, 1_900_000_000_000));
    }
    // every entry a tenant admin sees is about its tenant
    assert!(tenant_view.iter().all(|e| e["tenant"] == "a"));
}

#[tokio::test]
async fn residency_is_kept_here_announced_and_taken_from_the_log_after_an_upgrade() {
    let w = World::new().await;
    let mut changes = w.t.subscribe_revocations();
    w.act(
        "o1",
        Action::SetTenantPolicy {
            tenant: "b".into(),
            customer_approval: None,
            jurisdictions: None,
            min_sites: Some(3),
            degraded_writes: Some(true),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        changes.try_recv().unwrap(),
        Revocation::Policy { tenant: "b".into() }
    );
    let narrow = |jurisdictions: Option<Vec<String>>, min_sites| Action::SetBucketPolicy {
        tenant: "b".into(),
        bucket: "photos".into(),
        jurisdictions,
        min_sites,
    };
    w.act("adm-b", narrow(Some(vec!["AT".into()]), None))
        .await
        .unwrap();
    // Fields not given keep their value.
    w.act("adm-b", narrow(None, Some(4))).await.unwrap();
    // Widening is refused and changes nothing.
    assert!(is_denied(
        &w.act("adm-b", narrow(Some(vec!["US".into()]), None)).await
    ));
    let expected = TenantResidency {
        tenant: "b".into(),
        jurisdictions: vec!["DE".into(), "AT".into()],
        min_sites: 3,
        degraded_writes: true,
        buckets: std::collections::BTreeMap::from([(
            "photos".to_owned(),
            BucketNarrowing {
                jurisdictions: Some(vec!["AT".into()]),
                min_sites: Some(4),
            },
        )]),
    };
    assert_eq!(w.t.residency("b").await.unwrap(), expected);
    assert!(w.t.residency("a").await.unwrap().buckets.is_empty());

    // A database of schema version 1 kept neither: they are taken from the log, once.
    let World { _dir: dir, t, .. } = w;
    t.governance
        .db()
        .unwrap()
        .execute_batch(
            "DELETE FROM bucket_policies; INSERT INTO policies_from_log (pending) VALUES (1);",
        )
        .unwrap();
    let mut record = t.governance.tenant("b").unwrap().unwrap();
    record.degraded_writes = false;
    t.governance.put_tenant(&record).unwrap();
    assert_ne!(t.governance.residency("b").unwrap(), expected);
    drop(t);
    let reopened = Governance::open(dir.path()).unwrap();
    assert_eq!(reopened.residency("b").unwrap(), expected);
}

#[tokio::test]
async fn principals_edited_or_inserted_in_governance_db_count_for_nothing() {
    let mut w = World::new().await;
    w.enrol_by("o1", "aud2", Role::Auditor, None).await;
    w.enrol_by("o1", "adm-b2", Role::TenantAdmin, Some("b"))
        .await;
    w.enrol_by("o1", "spare", Role::Auditor, None).await;
    let id = w.request(&["read"]).await;
    // a signed auditor made an officer; tenant admins of b (one bootstrap, one signed) moved
    // to tenant a; a signed auditor's row renamed into a new officer nothing vouches for
    w.edit("UPDATE principals SET role = 'officer' WHERE name = 'aud2'");
    w.edit("UPDATE principals SET tenant = 'a' WHERE name IN ('adm-b', 'adm-b2')");
    w.edit(
        "UPDATE principals SET name = 'o9', role = 'officer', vouch = NULL WHERE name = 'spare'",
    );
    w.creds.insert(
        "o9".into(),
        PrincipalCredential::from_token("obt_spare").unwrap(),
    );
    for who in ["aud2", "adm-b", "adm-b2", "o9"] {
        assert!(
            is_denied(&w.approve(who, &id).await),
            "{who}'s approval counted"
        );
        assert!(
            w.t.authenticate(&w.bearer_of(who)).await.unwrap().is_none(),
            "{who} authenticates"
        );
    }
    let g = w.t.governance.grant(&id).unwrap();
    assert!(g.approvals.is_empty(), "{:?}", g.approvals);
    let reported: Vec<String> = w
        .entries()
        .iter()
        .filter(|e| e["type"] == "integrity_failure")
        .map(|e| {
            format!(
                "{}:{}",
                e["what"].as_str().unwrap(),
                e["subject"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        reported,
        [
            "principal:aud2",
            "principal:adm-b",
            "principal:adm-b2",
            "principal:o9"
        ]
    );
    // the edit undone: the row counts again
    w.edit("UPDATE principals SET role = 'auditor' WHERE name = 'aud2'");
    assert!(
        w.t.authenticate(&w.bearer_of("aud2"))
            .await
            .unwrap()
            .is_some()
    );
    // the untouched still decide
    w.approve("o1", &id).await.unwrap();
    w.approve("o2", &id).await.unwrap();
    let done = w.approve("adm-a", &id).await.unwrap();
    assert_eq!(done["progress"], "approved");
}

#[tokio::test]
async fn principals_are_enrolled_without_a_signature_only_on_a_new_installation() {
    let w = World::new().await;
    w.act("o1", Action::RevokePrincipal { name: "o3".into() })
        .await
        .unwrap();
    let c = PrincipalCredential::from_token("obt_late").unwrap();
    let r = w.t.bootstrap_principal(
        "late",
        Role::Officer,
        None,
        &obhut_crypto::principal::bearer_hash(c.bearer()),
        &c.public_key(),
    );
    assert!(is_denied(&r), "{r:?}");
}

#[tokio::test]
async fn revocations_and_disclosure_decisions_are_what_the_log_recorded() {
    let w = World::new().await;
    // a revoked principal revived by an edit
    w.act("o1", Action::RevokePrincipal { name: "o3".into() })
        .await
        .unwrap();
    w.edit("UPDATE principals SET revoked = 0 WHERE name = 'o3'");
    let p = w.t.authenticate(&w.bearer_of("o3")).await.unwrap().unwrap();
    assert!(p.revoked);
    // a revoked grant revived by an edit
    let id = w.request(&["read"]).await;
    for who in ["o1", "o2", "adm-a"] {
        w.approve(who, &id).await.unwrap();
    }
    let creds = w.credentials(&id).await;
    w.act("o1", Action::RevokeGrant { id: id.clone() })
        .await
        .unwrap();
    let mut g = w.t.governance.grant(&id).unwrap();
    g.state = "approved".into();
    g.ended_by = None;
    w.t.governance.put_grant(&g).unwrap();
    assert!(is_denied(
        &w.t.authorize_grant_access(&w.access(&creds, "read", "photos", "support/x"))
            .await
    ));
    assert_eq!(w.t.governance.grant(&id).unwrap().state, "revoked");
    // a denied disclosure flipped to approved, a delay lengthened
    let d = w
        .act(
            "o1",
            Action::RequestDisclosure {
                tenant: "a".into(),
                authority: "Some Agency".into(),
                jurisdiction: "DE".into(),
                legal_basis: "statute 1".into(),
                scope: "bucket photos".into(),
                delay_ms: 0,
            },
        )
        .await
        .unwrap();
    let did = d["id"].as_str().unwrap().to_owned();
    w.act(
        "o2",
        Action::DenyDisclosure {
            id: did.clone(),
            reason: None,
        },
    )
    .await
    .unwrap();
    w.edit(&format!(
        "UPDATE disclosures SET record = json_set(record, '$.state', 'approved', '$.visible_after_ms', 99999999999999) WHERE id = '{did}'"
    ));
    let list = w.t.governance.query("adm-a", &Query::Disclosures).unwrap();
    let seen: Vec<&Value> = list.as_array().unwrap().iter().collect();
    assert_eq!(seen.len(), 1, "{list}");
    assert_eq!(seen[0]["state"], "denied");
    let subjects: Vec<String> = w
        .entries()
        .iter()
        .filter(|e| e["type"] == "integrity_failure")
        .map(|e| {
            format!(
                "{}:{}",
                e["what"].as_str().unwrap(),
                e["subject"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        subjects,
        [
            "principal:o3",
            format!("grant:{id}").as_str(),
            format!("disclosure:{did}").as_str()
        ]
    );
}

#[tokio::test]
async fn an_officer_is_enrolled_by_two_officers_not_one() {
    let mut w = World::new().await;
    let c = PrincipalCredential::from_token("obt_o4").unwrap();
    let action = |expires_ms: Option<i64>| Action::CreatePrincipal {
        name: "o4".into(),
        role: Role::Officer,
        tenant: None,
        bearer_hash: obhut_crypto::principal::bearer_hash(c.bearer()),
        public_key: hex_simd::encode_to_string(c.public_key(), hex_simd::AsciiCase::Lower),
        expires_ms,
    };
    let first = w.act("o1", action(None)).await.unwrap();
    assert_eq!(first["progress"], "pending: 1 of 2 officers");
    w.creds.insert(
        "o4".into(),
        PrincipalCredential::from_token("obt_o4").unwrap(),
    );
    assert!(
        w.t.authenticate(&w.bearer_of("o4"))
            .await
            .unwrap()
            .is_none()
    );
    // the same officer again counts once; other fields are refused while it is pending
    let again = w.act("o1", action(None)).await.unwrap();
    assert_eq!(again["progress"], "pending: 1 of 2 officers");
    assert!(matches!(
        w.act("o2", action(Some(governance::now_ms() + 3_600_000)))
            .await,
        Err(TrusteeError::Conflict(_))
    ));
    // a tenant admin or an operator cannot confirm it
    assert!(is_denied(&w.act("adm-a", action(None)).await));
    let done = w.act("o2", action(None)).await.unwrap();
    assert_eq!(done["role"], "officer");
    let me = w.t.authenticate(&w.bearer_of("o4")).await.unwrap().unwrap();
    assert_eq!(me.role, Role::Officer);
    assert_eq!(w.count("principal_approval"), 2);
    // its vouch is both statements: with one of them gone, it is no officer
    w.edit("UPDATE principals SET vouch = json_remove(vouch, '$.statements[1]') WHERE name = 'o4'");
    assert!(
        w.t.authenticate(&w.bearer_of("o4"))
            .await
            .unwrap()
            .is_none()
    );
}

/// A new access key's secret crosses the admin API and gateways only encrypted to the one-time
/// key the tenant admin's CLI named in its signed statement; a statement without one gets no
/// key, and a key of another tenant's admin is refused.
#[tokio::test]
async fn a_new_access_keys_secret_is_answered_only_encrypted_to_its_admin() {
    let w = World::new().await;
    let (seed, public) = obhut_crypto::delivery::recipient().unwrap();
    let deliver_to = hex_simd::encode_to_string(public, hex_simd::AsciiCase::Lower);
    let answer = w
        .act(
            "adm-a",
            Action::CreateAccessKey {
                tenant: "a".into(),
                deliver_to: deliver_to.clone(),
                policy: None,
            },
        )
        .await
        .unwrap();
    assert!(answer.get("secret_access_key").is_none(), "{answer}");
    let b64 = |f: &str| {
        base64_simd::STANDARD
            .decode_to_vec(answer[f].as_str().unwrap().as_bytes())
            .unwrap()
    };
    let id = answer["access_key_id"].as_str().unwrap().to_owned();
    let secret =
        obhut_crypto::delivery::open(&seed, &id, "a", &b64("enc"), &b64("sealed_secret")).unwrap();
    let secret = String::from_utf8(secret.to_vec()).unwrap();
    // The secret opened is the key's: a request signed with it verifies at the trustee.
    let date = obhut_sigv4::amz_date_now();
    let headers = [
        ("host", "localhost"),
        ("x-amz-content-sha256", obhut_sigv4::EMPTY_SHA256),
        ("x-amz-date", date.as_str()),
    ];
    let auth = obhut_sigv4::Signer {
        access_key: id.clone(),
        secret_key: secret,
        region: crate::DEFAULT_REGION.into(),
    }
    .authorization(
        "GET",
        "/bucket",
        &[],
        &headers,
        obhut_sigv4::EMPTY_SHA256,
        &date,
    );
    let request = obhut_sigv4::SignedRequest {
        access_key_id: id,
        amz_date: date.clone(),
        scope_date: date[..8].into(),
        region: crate::DEFAULT_REGION.into(),
        service: "s3".into(),
        method: "GET".into(),
        path: "/bucket".into(),
        query: vec![],
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        payload: obhut_sigv4::EMPTY_SHA256.into(),
        presigned_expires: None,
        signature: auth.rsplit("Signature=").next().unwrap().to_owned(),
    };
    assert_eq!(
        w.t.verify_request(&request).await.unwrap().signer.tenant(),
        "a"
    );
    // No usable one-time key: no key at all.
    for bad in ["", "00", "zz"] {
        assert!(matches!(
            w.act(
                "adm-a",
                Action::CreateAccessKey {
                    tenant: "a".into(),
                    deliver_to: bad.into(),
                    policy: None,
                },
            )
            .await,
            Err(TrusteeError::Invalid(_))
        ));
    }
    // Another tenant's keys: refused.
    assert!(matches!(
        w.act(
            "adm-a",
            Action::CreateAccessKey {
                tenant: "b".into(),
                deliver_to,
                policy: None,
            },
        )
        .await,
        Err(TrusteeError::Denied(_))
    ));
}

/// A request to `method path` signed now with `id` and `secret`, as a gateway hands it on.
fn signed_request(id: &str, secret: &str, method: &str, path: &str) -> obhut_sigv4::SignedRequest {
    let date = obhut_sigv4::amz_date_now();
    let headers = [
        ("host", "localhost"),
        ("x-amz-content-sha256", obhut_sigv4::EMPTY_SHA256),
        ("x-amz-date", date.as_str()),
    ];
    let auth = obhut_sigv4::Signer {
        access_key: id.to_owned(),
        secret_key: secret.to_owned(),
        region: crate::DEFAULT_REGION.into(),
    }
    .authorization(
        method,
        path,
        &[],
        &headers,
        obhut_sigv4::EMPTY_SHA256,
        &date,
    );
    obhut_sigv4::SignedRequest {
        access_key_id: id.to_owned(),
        amz_date: date.clone(),
        scope_date: date[..8].into(),
        region: crate::DEFAULT_REGION.into(),
        service: "s3".into(),
        method: method.into(),
        path: path.into(),
        query: vec![],
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        payload: obhut_sigv4::EMPTY_SHA256.into(),
        presigned_expires: None,
        signature: auth.rsplit("Signature=").next().unwrap().to_owned(),
    }
}

/// A scoped key's policy comes back with every verification, bound by the seal of its
/// secret: the ticket covers only objects the policy could allow, and an edit of the stored
/// policy (wider, or none at all) with the database's own tool is refused as an integrity
/// failure instead of widening the key.
#[tokio::test]
async fn a_scoped_keys_policy_is_bound_and_an_edit_does_not_widen_it() {
    let w = World::new().await;
    let (seed, public) = obhut_crypto::delivery::recipient().unwrap();
    let deliver_to = hex_simd::encode_to_string(public, hex_simd::AsciiCase::Lower);
    let policy = obhut_core::iam::Preset::ReadOnly
        .document(&["bk".to_owned()], Some("home/"))
        .unwrap();
    // A policy that does not parse makes no key.
    assert!(matches!(
        w.act(
            "adm-a",
            Action::CreateAccessKey {
                tenant: "a".into(),
                deliver_to: deliver_to.clone(),
                policy: Some("{\"Statement\":[]}".into()),
            },
        )
        .await,
        Err(TrusteeError::Invalid(_))
    ));
    let answer = w
        .act(
            "adm-a",
            Action::CreateAccessKey {
                tenant: "a".into(),
                deliver_to,
                policy: Some(policy.clone()),
            },
        )
        .await
        .unwrap();
    let b64 = |f: &str| {
        base64_simd::STANDARD
            .decode_to_vec(answer[f].as_str().unwrap().as_bytes())
            .unwrap()
    };
    let id = answer["access_key_id"].as_str().unwrap().to_owned();
    let secret =
        obhut_crypto::delivery::open(&seed, &id, "a", &b64("enc"), &b64("sealed_secret")).unwrap();
    let secret = String::from_utf8(secret.to_vec()).unwrap();
    let inside =
        w.t.verify_request(&signed_request(&id, &secret, "GET", "/bk/home/x"))
            .await
            .unwrap();
    assert_eq!(
        inside.signer,
        obhut_trustee_client::auth::Signer::Tenant {
            tenant: "a".into(),
            policy: Some(policy.clone())
        }
    );
    assert!(inside.ticket.covers("bk", "home/x", None, KeyUse::Open));
    // Outside the prefix, or a write: the ticket opens and wraps nothing.
    let outside =
        w.t.verify_request(&signed_request(&id, &secret, "GET", "/bk/etc/x"))
            .await
            .unwrap();
    assert!(!outside.ticket.covers("bk", "etc/x", None, KeyUse::Open));
    let write =
        w.t.verify_request(&signed_request(&id, &secret, "PUT", "/bk/home/x"))
            .await
            .unwrap();
    assert!(!write.ticket.covers("bk", "home/x", None, KeyUse::Wrap));
    // Another bucket is not in its ticket at all: no bucket key is released for it.
    let elsewhere =
        w.t.verify_request(&signed_request(&id, &secret, "GET", "/other/home/x"))
            .await
            .unwrap();
    assert!(elsewhere.ticket.buckets.is_empty());
    assert!(
        !elsewhere
            .ticket
            .covers("other", "home/x", None, KeyUse::Open)
    );
    assert_eq!(inside.ticket.buckets, vec!["bk".to_owned()]);
    // The policy is listed with the key.
    let listed =
        w.t.query("adm-a", &Query::AccessKeys { tenant: "a".into() })
            .await
            .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["access_key_id"] == id.as_str() && k["policy"] == policy.as_str()),
        "{listed}"
    );
    // Whoever can write access-keys.db widens the policy, or drops it.
    let wider = obhut_core::iam::Preset::Full.document(&[], None).unwrap();
    for edit in [Some(wider.as_str()), None] {
        {
            let db = rusqlite::Connection::open(w._dir.path().join("access-keys.db")).unwrap();
            db.execute(
                "UPDATE access_keys SET policy = ?1 WHERE access_key_id = ?2",
                rusqlite::params![edit, id],
            )
            .unwrap();
        }
        w.t.verifier.forget(None);
        let r =
            w.t.verify_request(&signed_request(&id, &secret, "PUT", "/bk/etc/x"))
                .await;
        assert!(
            matches!(
                r,
                Err(TrusteeError::Unauthenticated(
                    obhut_trustee_client::auth::AuthFailure::Integrity
                ))
            ),
            "{edit:?}: {r:?}"
        );
    }
    assert!(
        w.entries().iter().any(|e| e["type"] == "integrity_failure"
            && e["what"] == "access_key"
            && e["subject"] == id.as_str()),
        "no integrity alarm in the log"
    );
    // The key's creation was logged with its scope, for the tenant and its auditors to see.
    assert!(w.entries().iter().any(|e| e["type"] == "access_key_created"
        && e["access_key_id"] == id.as_str()
        && e["policy"] == policy.as_str()));
}

#[tokio::test]
async fn a_grant_reaches_versions_by_id_only_with_the_versions_op() {
    let w = World::new().await;
    // `versions` alone widens nothing, and is refused.
    assert!(matches!(
        w.act(
            "o1",
            Action::RequestGrant {
                tenant: "a".into(),
                bucket: "photos".into(),
                prefix: String::new(),
                ops: vec!["versions".into()],
                duration_ms: 3_600_000,
                reason: "incident".into(),
            },
        )
        .await,
        Err(TrusteeError::Invalid(_))
    ));
    let current_only = w.request(&["read", "list"]).await;
    let with_versions = w.request(&["read", "versions"]).await;
    for id in [&current_only, &with_versions] {
        for who in ["o1", "o2", "adm-a"] {
            w.approve(who, id).await.unwrap();
        }
    }
    let t = &w.t;
    let narrow = w.credentials(&current_only).await;
    let wide = w.credentials(&with_versions).await;
    for (creds, class, allowed) in [
        (&narrow, "read", true),
        (&narrow, "read+versions", false),
        (&narrow, "list+versions", false),
        (&wide, "read", true),
        (&wide, "read+versions", true),
        (&wide, "list+versions", false),
        (&wide, "write+versions", false),
    ] {
        let got = t
            .authorize_grant_access(&w.access(creds, class, "photos", "support/x"))
            .await;
        assert_eq!(got.is_ok(), allowed, "{class}: {got:?}");
    }
}

// ------------------------------------------------------------ enrolled (browser) signing keys

/// A key made outside the CLI, as a browser's WebCrypto makes one: an Ed25519 key pair that
/// signs in the statement context.
fn browser_key(name: &str) -> PrincipalCredential {
    PrincipalCredential::from_token(&format!("obt_browser_{name}")).unwrap()
}

fn key_hex(c: &PrincipalCredential) -> String {
    hex_simd::encode_to_string(c.public_key(), hex_simd::AsciiCase::Lower)
}

impl World {
    /// `action` in `who`'s name, signed with `key` instead of `who`'s own key.
    fn signed_with(&self, key: &PrincipalCredential, who: &str, action: Action) -> SignedStatement {
        let st = Statement {
            principal: who.into(),
            at_ms: governance::now_ms(),
            nonce: NONCE
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_string(),
            action,
        };
        let text = serde_json::to_string(&st).unwrap();
        SignedStatement {
            signature: base64_simd::STANDARD.encode_to_string(key.sign_statement(&text)),
            statement: text,
        }
    }

    /// `who` enrols `key` with its own key, valid for `ms`.
    async fn enrol_key(
        &self,
        who: &str,
        key: &PrincipalCredential,
        ms: i64,
    ) -> Result<Value, TrusteeError> {
        self.act(
            who,
            Action::EnrolSigningKey {
                public_key: key_hex(key),
                expires_ms: governance::now_ms() + ms,
                label: "Chromium on laptop".into(),
            },
        )
        .await
    }

    async fn approve_with(
        &self,
        key: &PrincipalCredential,
        who: &str,
        id: &str,
    ) -> Result<Value, TrusteeError> {
        let scope = self.t.governance.grant(id).unwrap().scope_digest();
        let signed = self.signed_with(
            key,
            who,
            Action::ApproveGrant {
                id: id.into(),
                scope,
            },
        );
        self.t.act(&signed).await
    }
}

#[tokio::test]
async fn an_enrolled_key_approves_for_its_principal_beside_the_cli_key() {
    let w = World::new().await;
    let k1 = browser_key("o1");
    let ka = browser_key("adm-a");
    let id = w.request(&["read"]).await;
    // not enrolled yet: refused
    assert!(is_denied(&w.approve_with(&k1, "o1", &id).await));
    let enrolled = w.enrol_key("o1", &k1, 3_600_000).await.unwrap();
    assert_eq!(enrolled["state"], "active");
    w.enrol_key("adm-a", &ka, 3_600_000).await.unwrap();
    assert_eq!(w.count("signing_key_enrolled"), 2);
    let logged = w
        .entries()
        .into_iter()
        .find(|e| e["type"] == "signing_key_enrolled")
        .unwrap();
    assert_eq!(logged["principal"], "o1");
    assert_eq!(logged["public_key"], key_hex(&k1));
    // browser key for o1, CLI key for o2, browser key for the tenant admin
    w.approve_with(&k1, "o1", &id).await.unwrap();
    w.approve("o2", &id).await.unwrap();
    let v = w.approve_with(&ka, "adm-a", &id).await.unwrap();
    assert_eq!(v["state"], "approved");
    let creds = w.credentials(&id).await;
    w.t.authorize_grant_access(&w.access(&creds, "read", "photos", "support/x"))
        .await
        .unwrap();
    // the principal's own list
    let keys = w.t.governance.query("o1", &Query::SigningKeys).unwrap();
    assert_eq!(keys[0]["public_key"], key_hex(&k1));
    assert_eq!(keys[0]["state"], "active");
    assert_eq!(
        w.t.governance.query("o2", &Query::SigningKeys).unwrap(),
        serde_json::json!([])
    );
    // after a restart, the log still says which keys are enrolled
    let again = Governance::open(w._dir.path()).unwrap();
    assert_eq!(
        again.query("o1", &Query::SigningKeys).unwrap()[0]["state"],
        "active"
    );
}

#[tokio::test]
async fn a_key_enrolled_for_one_officer_never_approves_as_another() {
    let w = World::new().await;
    let k1 = browser_key("o1");
    w.enrol_key("o1", &k1, 3_600_000).await.unwrap();
    let id = w.request(&["read"]).await;
    assert!(is_denied(&w.approve_with(&k1, "o2", &id).await));
    assert!(is_denied(&w.approve_with(&k1, "o3", &id).await));
    // nor can another officer take the key over by enrolling it too
    assert!(matches!(
        w.enrol_key("o2", &k1, 3_600_000).await,
        Err(TrusteeError::Conflict(_))
    ));
    assert_eq!(w.count("grant_approval"), 0);
    w.approve_with(&k1, "o1", &id).await.unwrap();
    assert_eq!(w.count("grant_approval"), 1);
}

#[tokio::test]
async fn an_enrolled_key_signs_decisions_only_never_its_own_enrolment_or_anything_else() {
    let w = World::new().await;
    let k1 = browser_key("o1");
    w.enrol_key("o1", &k1, 3_600_000).await.unwrap();
    let k2 = browser_key("o1-second");
    for action in [
        Action::EnrolSigningKey {
            public_key: key_hex(&k2),
            expires_ms: governance::now_ms() + 3_600_000,
            label: String::new(),
        },
        Action::RevokePrincipal { name: "o2".into() },
        Action::RegisterTenant {
            name: "c".into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
        },
        Action::Reconnect {},
    ] {
        let r = w.t.act(&w.signed_with(&k1, "o1", action.clone())).await;
        assert!(is_denied(&r), "{action:?}: {r:?}");
    }
    assert_eq!(w.count("signing_key_enrolled"), 1);
    // the same enrolment signed with o1's own key is carried out
    w.enrol_key("o1", &k2, 3_600_000).await.unwrap();
    assert_eq!(w.count("signing_key_enrolled"), 2);
    // a denial with a reason, signed with the browser key, is logged with its reason
    let id = w.request(&["read"]).await;
    let deny = w.signed_with(
        &k1,
        "o1",
        Action::DenyGrant {
            id: id.clone(),
            reason: Some("no ticket for this".into()),
        },
    );
    assert_eq!(w.t.act(&deny).await.unwrap()["state"], "denied");
    let denied_entry = w
        .entries()
        .into_iter()
        .find(|e| e["type"] == "grant_denied")
        .unwrap();
    assert_eq!(denied_entry["reason"], "no ticket for this");
}

/// A tenant admin's enrolled key revokes its tenant's access keys (which only takes access
/// away), and creates none: minting a key needs the admin's own key.
#[tokio::test]
async fn an_enrolled_key_revokes_its_tenants_access_keys_and_creates_none() {
    let w = World::new().await;
    let ka = browser_key("adm-a");
    w.enrol_key("adm-a", &ka, 3_600_000).await.unwrap();
    let (_, public) = obhut_crypto::delivery::recipient().unwrap();
    let create = Action::CreateAccessKey {
        tenant: "a".into(),
        deliver_to: hex_simd::encode_to_string(public, hex_simd::AsciiCase::Lower),
        policy: None,
    };
    let r = w.t.act(&w.signed_with(&ka, "adm-a", create.clone())).await;
    assert!(is_denied(&r), "{r:?}");
    let made = w.act("adm-a", create).await.unwrap();
    let id = made["access_key_id"].as_str().unwrap().to_owned();
    let revoke = |tenant: &str| Action::RevokeAccessKey {
        tenant: tenant.into(),
        access_key_id: id.clone(),
    };
    // Another tenant's key is not this admin's to revoke, with any key of its own.
    assert!(is_denied(
        &w.t.act(&w.signed_with(&ka, "adm-a", revoke("b"))).await
    ));
    w.t.act(&w.signed_with(&ka, "adm-a", revoke("a")))
        .await
        .unwrap();
    assert_eq!(w.count("access_key_revoked"), 1);
    // The key signs nothing once revoked.
    w.act(
        "adm-a",
        Action::RevokeSigningKey {
            public_key: key_hex(&ka),
        },
    )
    .await
    .unwrap();
    assert!(is_denied(
        &w.t.act(&w.signed_with(&ka, "adm-a", revoke("a"))).await
    ));
}

#[tokio::test]
async fn only_officers_and_tenant_admins_enrol_keys_within_bounds() {
    let w = World::new().await;
    for who in ["op", "aud"] {
        assert!(is_denied(
            &w.enrol_key(who, &browser_key(who), 3_600_000).await
        ));
    }
    for (ms, what) in [(-1_000, "past"), (91 * 24 * 3_600_000, "too long")] {
        assert!(
            matches!(
                w.enrol_key("o1", &browser_key("o1"), ms).await,
                Err(TrusteeError::Invalid(_))
            ),
            "{what}"
        );
    }
    let not_a_key = w
        .act(
            "o1",
            Action::EnrolSigningKey {
                public_key: "abcd".into(),
                expires_ms: governance::now_ms() + 60_000,
                label: String::new(),
            },
        )
        .await;
    assert!(matches!(not_a_key, Err(TrusteeError::Invalid(_))));
    assert_eq!(w.count("signing_key_enrolled"), 0);
}

#[tokio::test]
async fn a_revoked_key_approves_nothing_and_its_approvals_stop_counting() {
    let w = World::new().await;
    let k1 = browser_key("o1");
    w.enrol_key("o1", &k1, 3_600_000).await.unwrap();
    let id = w.request(&["read"]).await;
    w.approve_with(&k1, "o1", &id).await.unwrap();
    w.approve("o2", &id).await.unwrap();
    w.approve("adm-a", &id).await.unwrap();
    let creds = w.credentials(&id).await;
    let access = w.access(&creds, "read", "photos", "support/x");
    w.t.authorize_grant_access(&access).await.unwrap();
    // only the principal itself revokes its key
    let revoke = Action::RevokeSigningKey {
        public_key: key_hex(&k1),
    };
    assert!(matches!(
        w.act("o2", revoke.clone()).await,
        Err(TrusteeError::NotFound(_))
    ));
    // and not with the key itself
    assert!(is_denied(
        &w.t.act(&w.signed_with(&k1, "o1", revoke.clone())).await
    ));
    w.act("o1", revoke.clone()).await.unwrap();
    assert_eq!(w.count("signing_key_revoked"), 1);
    assert!(matches!(
        w.act("o1", revoke).await,
        Err(TrusteeError::Conflict(_))
    ));
    // the grant it approved no longer has its quorum
    assert!(w.t.authorize_grant_access(&access).await.is_err());
    let other = w.request(&["read"]).await;
    let r = w.approve_with(&k1, "o1", &other).await;
    assert!(is_denied(&r), "{r:?}");
    assert!(format!("{r:?}").contains("revoked"));
    // o1's own key still approves
    w.approve("o1", &other).await.unwrap();
    assert_eq!(
        w.t.governance.query("o1", &Query::SigningKeys).unwrap()[0]["state"],
        "revoked"
    );
}

#[tokio::test]
async fn an_expired_key_approves_nothing() {
    let w = World::new().await;
    let k1 = browser_key("o1");
    w.enrol_key("o1", &k1, 1_500).await.unwrap();
    let id = w.request(&["read"]).await;
    let other = w.request(&["read"]).await;
    w.approve_with(&k1, "o1", &id).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    let r = w.approve_with(&k1, "o1", &other).await;
    assert!(is_denied(&r), "{r:?}");
    assert!(format!("{r:?}").contains("expired"));
    assert_eq!(
        w.t.governance.query("o1", &Query::SigningKeys).unwrap()[0]["state"],
        "expired"
    );
    // an approval signed while the key was live still counts
    w.approve("o2", &id).await.unwrap();
    assert_eq!(w.approve("adm-a", &id).await.unwrap()["state"], "approved");
}

impl World {
    /// The grant record `id` as governance.db holds it.
    fn grant_record(&self, id: &str) -> Value {
        let db = self.t.governance.db().unwrap();
        let text: String = db
            .query_row("SELECT record FROM grants WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Approvals of grant `id` (at its current scope) signed by `who`, never sent to the
    /// trustee: what a page that signs something other than it shows could collect.
    fn approvals_signed_elsewhere(&self, id: &str, scope: &str, who: &[(&str, &str)]) -> Value {
        Value::Array(
            who.iter()
                .map(|(name, role)| {
                    let s = self.signed(
                        name,
                        Action::ApproveGrant {
                            id: id.into(),
                            scope: scope.into(),
                        },
                    );
                    serde_json::json!({
                        "principal": name,
                        "role": role,
                        "at_ms": governance::now_ms(),
                        "statement": s.statement,
                        "signature": s.signature,
                    })
                })
                .collect(),
        )
    }

    fn integrity_failures(&self) -> usize {
        self.count("integrity_failure")
    }
}

#[tokio::test]
async fn approvals_and_grants_that_never_reached_the_log_grant_nothing() {
    let w = World::new().await;
    let quorum = [
        ("o1", "officer"),
        ("o2", "officer"),
        ("adm-a", "tenant-admin"),
    ];
    // A pending grant the log saw requested, made "approved" in governance.db with genuine
    // signatures that were collected elsewhere and never submitted.
    let id = w.request(&["read"]).await;
    let scope = w.t.governance.grant(&id).unwrap().scope_digest();
    let mut rec = w.grant_record(&id);
    rec["approvals"] = w.approvals_signed_elsewhere(&id, &scope, &quorum);
    rec["state"] = "approved".into();
    rec["expires_ms"] = (governance::now_ms() + 3_600_000).into();
    let before = w.integrity_failures();
    w.edit(&format!(
        "UPDATE grants SET record = '{}' WHERE id = '{id}'",
        rec.to_string().replace('\'', "''")
    ));
    let r = w
        .act("op", Action::GrantCredentials { id: id.clone() })
        .await;
    assert!(is_denied(&r), "{r:?}");
    assert!(w.integrity_failures() > before, "{r:?}");
    // Approvals submitted to the trustee do count: the refusal was about the log, not the
    // signatures.
    let id = w.request(&["read"]).await;
    for (name, _) in quorum {
        w.approve(name, &id).await.unwrap();
    }
    let (key_id, _) = w.credentials(&id).await;
    assert!(!key_id.is_empty());

    // A grant written into governance.db that the log never saw requested, carrying a genuine
    // quorum signed for its id and scope.
    let mut forged = w.grant_record(&id);
    forged["id"] = "g-forged".into();
    let forged_grant: governance::Grant = serde_json::from_value(forged.clone()).unwrap();
    let forged_scope = forged_grant.scope_digest();
    forged["approvals"] = w.approvals_signed_elsewhere("g-forged", &forged_scope, &quorum);
    let before = w.integrity_failures();
    w.edit(&format!(
        "INSERT INTO grants (id, access_key_id, record) VALUES ('g-forged', NULL, '{}')",
        forged.to_string().replace('\'', "''")
    ));
    assert!(is_denied(
        &w.act(
            "op",
            Action::GrantCredentials {
                id: "g-forged".into()
            }
        )
        .await
    ));
    assert!(w.integrity_failures() > before);
}

#[tokio::test]
async fn a_disconnect_takes_two_officers_refuses_every_release_and_survives_a_reopen() {
    let w = World::new().await;
    let t = &w.t;
    let why = t.test_customer("a");
    t.ensure_tenant_key("a").await.unwrap();
    let wk = t.create_bucket_key("a", "photos", 1, &why).await.unwrap();
    t.release_bucket_key("a", "photos", &wk, &why)
        .await
        .unwrap();
    let mut disconnects = t.subscribe_disconnects();
    let mut revocations = t.subscribe_revocations();
    let disconnect = || Action::Disconnect {
        reason: Some("drill".into()),
    };
    for who in ["op", "aud", "adm-a"] {
        assert!(
            matches!(w.act(who, disconnect()).await, Err(TrusteeError::Denied(_))),
            "{who} may not disconnect"
        );
    }
    let one = w.act("o1", disconnect()).await.unwrap();
    assert_eq!(one["progress"], "pending: 1 of 2 officers");
    let again = w.act("o1", disconnect()).await.unwrap();
    assert_eq!(
        again["progress"], "pending: 1 of 2 officers",
        "the same officer counts once"
    );
    assert!(
        !disconnects.has_changed().unwrap(),
        "a pending approval announces nothing"
    );
    t.release_bucket_key("a", "photos", &wk, &why)
        .await
        .expect("one approval stops nothing");
    assert!(!t.seal_status().await.unwrap().disconnected);

    let done = w.act("o2", disconnect()).await.unwrap();
    assert_eq!(done["state"], "disconnected");
    let index = done["log_index"].as_u64().unwrap();
    assert_eq!(*disconnects.borrow_and_update(), Some(index));
    assert_eq!(revocations.try_recv().unwrap(), Revocation::All);
    assert!(t.seal_status().await.unwrap().disconnected);
    for refused in [
        t.release_bucket_key("a", "photos", &wk, &why)
            .await
            .map(|_| ()),
        t.create_bucket_key("a", "photos", 2, &why)
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(refused, Err(TrusteeError::Disconnected(ref m)) if m.contains("o1 and o2")),
            "{refused:?}"
        );
    }
    assert!(matches!(
        w.act("o1", disconnect()).await,
        Err(TrusteeError::Conflict(_))
    ));
    let kinds: Vec<&'static str> = t
        .governance
        .test_entries()
        .iter()
        .map(|e| e.event.kind())
        .filter(|k| k.contains("disconnect") || *k == "key_release")
        .collect();
    let cut = kinds
        .iter()
        .position(|k| *k == "trustee_disconnected")
        .unwrap();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "disconnect_approval")
            .count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        cut,
        kinds.len() - 1,
        "no release after the disconnect: {kinds:?}"
    );

    // the log decides: a trustee opened again on the same directory is still disconnected
    let again = governance::Governance::open(w._dir.path()).unwrap();
    assert_eq!(again.disconnected().unwrap().map(|d| d.index), Some(index));
    assert!(matches!(
        again.check_connected(),
        Err(TrusteeError::Disconnected(_))
    ));
    drop(again);

    assert!(matches!(
        w.act("op", Action::Reconnect {}).await,
        Err(TrusteeError::Denied(_))
    ));
    let one = w.act("o3", Action::Reconnect {}).await.unwrap();
    assert_eq!(one["progress"], "pending: 1 of 2 officers");
    assert!(!disconnects.has_changed().unwrap());
    let done = w.act("o1", Action::Reconnect {}).await.unwrap();
    assert_eq!(done["state"], "connected");
    assert_eq!(*disconnects.borrow_and_update(), None);
    t.release_bucket_key("a", "photos", &wk, &why)
        .await
        .expect("released again after the reconnect");
    let status = t.governance.query("aud", &Query::Disconnect).unwrap();
    assert_eq!(status["state"], "connected");
    assert!(t.governance.query("adm-a", &Query::Disconnect).is_err());
}

#[tokio::test]
async fn drill_records_are_officers_and_flat() {
    let w = World::new().await;
    let summary = |v: Value| v.as_object().unwrap().clone();
    let ok =
        summary(serde_json::json!({"lost": 0, "gateways_acked": true, "time_to_full_stop_s": 0.5}));
    assert!(matches!(
        w.act(
            "op",
            Action::RecordDrill {
                drill: "disconnect".into(),
                summary: ok.clone()
            }
        )
        .await,
        Err(TrusteeError::Denied(_))
    ));
    for (drill, s) in [
        ("disconnect", summary(serde_json::json!({"lost": {"n": 0}}))),
        ("disconnect", summary(serde_json::json!({}))),
        ("Disconnect", ok.clone()),
        ("disconnect", summary(serde_json::json!({"bad name": 1}))),
    ] {
        assert!(
            matches!(
                w.act(
                    "o1",
                    Action::RecordDrill {
                        drill: drill.into(),
                        summary: s.clone()
                    }
                )
                .await,
                Err(TrusteeError::Invalid(_))
            ),
            "{drill} {s:?}"
        );
    }
    let v = w
        .act(
            "o1",
            Action::RecordDrill {
                drill: "disconnect".into(),
                summary: ok.clone(),
            },
        )
        .await
        .unwrap();
    let entries = w.t.governance.test_entries();
    let last = entries.last().unwrap();
    assert_eq!(v["log_index"].as_u64().unwrap() + 1, entries.len() as u64);
    assert_eq!(
        last.event,
        LogEvent::DrillRecorded {
            drill: "disconnect".into(),
            summary: ok,
            actor: "o1".into()
        }
    );
}

/// A governance.db of the release before bucket defaults (schema 6) opens with its lock list
/// as it was, and no default of any bucket: none is known until the tenant sets it again.
#[tokio::test]
async fn a_schema_6_database_gains_bucket_defaults_empty_and_keeps_its_locks() {
    use obhut_trustee_client::object_lock::{DefaultRetention, LockMode, LockState, LockTarget};
    let w = World::new().await;
    let World { _dir: dir, t, .. } = w;
    let target = LockTarget {
        tenant: "b".into(),
        bucket: "bk".into(),
        key: "k".into(),
        version_id: "v".into(),
    };
    let state = LockState {
        retention: Some((LockMode::Compliance, now_ms() + 3_600_000)),
        legal_hold: false,
    };
    t.governance.note_lock(&target, &state, "digest").unwrap();
    let default = DefaultRetention {
        mode: LockMode::Governance,
        days: Some(1),
        years: None,
    };
    assert!(
        t.governance
            .note_bucket_default("b", "bk", Some(&default), 5)
            .unwrap()
    );
    assert_eq!(
        t.governance.bucket_default("b", "bk").unwrap(),
        Some(Some(default))
    );
    // As the release before wrote it: version 6, no table of defaults.
    t.governance
        .db()
        .unwrap()
        .execute_batch("DROP TABLE bucket_lock_defaults; PRAGMA user_version = 6;")
        .unwrap();
    drop(t);
    let reopened = Governance::open(dir.path()).unwrap();
    assert_eq!(reopened.bucket_default("b", "bk").unwrap(), None);
    assert_eq!(
        reopened.latest_lock(&target).unwrap(),
        Some((state, Some("digest".into())))
    );
    assert!(reopened.note_bucket_default("b", "bk", None, 5).unwrap());
    assert_eq!(reopened.bucket_default("b", "bk").unwrap(), Some(None));
    // An older request than the one recorded changes nothing.
    assert!(
        !reopened
            .note_bucket_default("b", "bk", Some(&default), 4)
            .unwrap()
    );
    assert_eq!(reopened.bucket_default("b", "bk").unwrap(), Some(None));
}
