//! Checking SigV4 signatures inside the trustee: the request's scope and time against the
//! trustee's own region and clock, signing keys derived from secrets that never leave it
//! (cached per key and day, never handed out), tickets that bind key releases to verified
//! requests, the chain of a streaming upload's chunk signatures, browser form uploads'
//! signatures over their policy documents (and the policies' conditions), and a limit on failed
//! checks so the trustee cannot be used to guess secrets at speed.
//!
//! It looks secrets up through [`SecretSource`] and appends nothing to the log.

use aws_lc_rs::hmac;
use obhut_sigv4::post::PolicyError;
use obhut_sigv4::{
    MAX_CLOCK_SKEW_SECS, MAX_PRESIGNED_EXPIRES_SECS, Payload, SigningKey, chunk_string_to_sign,
    trailer_string_to_sign,
};
use obhut_trustee_client::TrusteeError;
use obhut_trustee_client::auth::{
    AuthFailure, ChainToken, ChunkBatch, RequestTicket, SignedPost, SignedRequest, Signer,
    TicketScope, Verified,
};
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a ticket may be used for key releases after its request was verified.
pub const TICKET_LIFETIME_MS: i64 = 15 * 60 * 1000;
/// Failed checks allowed per access key id in one window, and in all.
const FAILURES_PER_KEY: u32 = 20;
const FAILURES_IN_ALL: u32 = 2_000;
const FAILURE_WINDOW_MS: i64 = 60_000;
/// Cached signing keys kept at most (the cache is emptied when full).
const CACHE_ENTRIES: usize = 10_000;
/// Most chunks in one batch.
pub const MAX_CHUNKS_PER_BATCH: usize = 1024;

fn fail(f: AuthFailure) -> TrusteeError {
    TrusteeError::Unauthenticated(f)
}

/// Where the verifier gets a key's signer and secret from.
pub trait SecretSource {
    /// The signer of `access_key_id` and its secret; `Unauthenticated(UnknownKey)` if none.
    fn secret(
        &self,
        access_key_id: &str,
        request: Option<&SignedRequest>,
    ) -> Result<(Signer, zeroize::Zeroizing<String>), TrusteeError>;
    /// Whether a key's signing keys may be cached (a grant's credentials are looked up each
    /// time: the grant's state decides).
    fn cacheable(&self, access_key_id: &str) -> bool;
}

/// Cached signing keys by access key id, then credential scope: looked up with the request's
/// own strings, without building a key.
#[derive(Default)]
struct SigningKeys {
    by_key: HashMap<String, HashMap<String, (Signer, SigningKey)>>,
    len: usize,
}

impl SigningKeys {
    fn get(&self, access_key_id: &str, scope: &str) -> Option<&(Signer, SigningKey)> {
        self.by_key.get(access_key_id)?.get(scope)
    }

    fn insert(&mut self, access_key_id: &str, scope: String, entry: (Signer, SigningKey)) {
        if self.len >= CACHE_ENTRIES {
            self.clear();
        }
        let scopes = self.by_key.entry(access_key_id.to_owned()).or_default();
        if scopes.insert(scope, entry).is_none() {
            self.len += 1;
        }
    }

    fn forget(&mut self, access_key_id: &str) {
        if let Some(scopes) = self.by_key.remove(access_key_id) {
            self.len -= scopes.len();
        }
    }

    fn clear(&mut self) {
        self.by_key.clear();
        self.len = 0;
    }
}

#[derive(Default)]
struct Failures {
    window_start_ms: i64,
    in_all: u32,
    per_key: HashMap<String, u32>,
}

pub struct Verifier {
    region: String,
    /// MACs tickets and chain tokens; new at every start, so they die with the process.
    mac_key: hmac::Key,
    signing_keys: Mutex<SigningKeys>,
    failures: Mutex<Failures>,
}

impl Verifier {
    pub fn new(region: &str) -> Result<Self, TrusteeError> {
        let mut raw = zeroize::Zeroizing::new([0u8; 32]);
        obhut_crypto::random_bytes(raw.as_mut())
            .map_err(|e| TrusteeError::Storage(e.to_string()))?;
        Ok(Self {
            region: region.to_owned(),
            mac_key: hmac::Key::new(hmac::HMAC_SHA256, raw.as_ref()),
            signing_keys: Mutex::new(SigningKeys::default()),
            failures: Mutex::new(Failures::default()),
        })
    }

    #[must_use]
    pub fn region(&self) -> &str {
        &self.region
    }

    fn mac(&self, parts: &[&str]) -> String {
        // One buffer, one HMAC call: the same bytes as feeding the parts one by one, at a
        // fraction of the calls.
        let mut framed = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
        for p in parts {
            framed.extend_from_slice(&(p.len() as u64).to_be_bytes());
            framed.extend_from_slice(p.as_bytes());
        }
        obhut_sigv4::hex(hmac::sign(&self.mac_key, &framed).as_ref())
    }

    fn mac_matches(&self, parts: &[&str], mac: &str) -> bool {
        let expected = self.mac(parts);
        expected.len() == mac.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                expected.as_bytes(),
                mac.as_bytes(),
            )
            .is_ok()
    }

    /// Forgets every cached signing key of `access_key_id` (revoked), or all (`None`: sealed,
    /// a tenant key disabled).
    pub fn forget(&self, access_key_id: Option<&str>) {
        if let Ok(mut cache) = self.signing_keys.lock() {
            match access_key_id {
                Some(id) => cache.forget(id),
                None => cache.clear(),
            }
        }
    }

    fn limited(&self, access_key_id: &str, now_ms: i64) -> bool {
        let Ok(mut f) = self.failures.lock() else {
            return true;
        };
        if now_ms - f.window_start_ms >= FAILURE_WINDOW_MS {
            *f = Failures {
                window_start_ms: now_ms,
                ..Failures::default()
            };
        }
        f.in_all >= FAILURES_IN_ALL
            || f.per_key.get(access_key_id).copied().unwrap_or(0) >= FAILURES_PER_KEY
    }

    fn record_failure(&self, access_key_id: Option<&str>) {
        if let Ok(mut f) = self.failures.lock() {
            f.in_all = f.in_all.saturating_add(1);
            if let Some(id) = access_key_id
                && (f.per_key.len() < CACHE_ENTRIES || f.per_key.contains_key(id))
            {
                *f.per_key.entry(id.to_owned()).or_default() += 1;
            }
        }
    }

    /// Checks a signed request; failures count towards the rate limit.
    pub fn verify(
        &self,
        req: &SignedRequest,
        source: &dyn SecretSource,
        now_ms: i64,
    ) -> Result<Verified, TrusteeError> {
        self.verify_with(req, Some(source), now_ms)
            .and_then(|v| v.ok_or_else(|| fail(AuthFailure::UnknownKey)))
    }

    /// Checks a signed request only if its key's signing key is cached (no storage, no
    /// keystore: cheap enough for the caller's thread); `Ok(None)` if it is not.
    pub fn verify_cached(
        &self,
        req: &SignedRequest,
        now_ms: i64,
    ) -> Result<Option<Verified>, TrusteeError> {
        self.verify_with(req, None, now_ms)
    }

    fn verify_with(
        &self,
        req: &SignedRequest,
        source: Option<&dyn SecretSource>,
        now_ms: i64,
    ) -> Result<Option<Verified>, TrusteeError> {
        if self.limited(&req.access_key_id, now_ms) {
            return Err(fail(AuthFailure::RateLimited));
        }
        let outcome = self.verify_unlimited(req, source, now_ms);
        if let Err(TrusteeError::Unauthenticated(f)) = &outcome
            && *f != AuthFailure::RateLimited
        {
            // An unknown id is no attempt at a secret: it counts only towards the limit in all.
            self.record_failure((*f != AuthFailure::UnknownKey).then_some(&*req.access_key_id));
        }
        outcome
    }

    fn verify_unlimited(
        &self,
        req: &SignedRequest,
        source: Option<&dyn SecretSource>,
        now_ms: i64,
    ) -> Result<Option<Verified>, TrusteeError> {
        if req.service != "s3" || req.region != self.region {
            return Err(fail(AuthFailure::WrongScope));
        }
        let time = req.time().ok_or_else(|| fail(AuthFailure::Malformed))?;
        if req.amz_date.get(..8) != Some(req.scope_date.as_str()) {
            return Err(fail(AuthFailure::Malformed));
        }
        let age_secs = now_ms / 1000 - time.unix_timestamp();
        match req.presigned_expires {
            None => {
                if age_secs.abs() > MAX_CLOCK_SKEW_SECS {
                    return Err(fail(AuthFailure::Skewed));
                }
            }
            Some(expires) => {
                if expires == 0 || expires > MAX_PRESIGNED_EXPIRES_SECS {
                    return Err(fail(AuthFailure::Malformed));
                }
                if age_secs < -MAX_CLOCK_SKEW_SECS {
                    return Err(fail(AuthFailure::Skewed));
                }
                if age_secs > i64::try_from(expires).unwrap_or(i64::MAX) {
                    return Err(fail(AuthFailure::Expired));
                }
            }
        }
        let payload = Payload::of(&req.payload).ok_or_else(|| fail(AuthFailure::Malformed))?;
        let scope = req.scope();
        let Some((signer, key)) = self.signing_key(req, &scope, source)? else {
            return Ok(None);
        };
        // Each canonical request is hashed once: for the signature and for the ticket's
        // digest. The second form of the path is built only if the first does not verify.
        let Some(signed) = req
            .canonical_request_candidates()
            .map(|c| obhut_sigv4::HashedCanonical::new(&c))
            .find(|c| key.verifies(&c.string_to_sign(&req.amz_date, &scope), &req.signature))
        else {
            return Err(fail(AuthFailure::SignatureMismatch));
        };
        // The digest of what the customer signed, so that it finds its request in the log.
        let path = req.decoded_path_ref();
        let op = lock_op_of(req, path.as_deref()).filter(|_| in_lock_window(age_secs));
        let mut covers = scope_texts_of(req, path.as_deref());
        let mut buckets = buckets_of(req, path.as_deref());
        if let Signer::Tenant {
            policy: Some(policy),
            ..
        } = &signer
        {
            (buckets, covers) = narrowed(policy, &req.access_key_id, buckets, covers);
        }
        let mut ticket = RequestTicket {
            digest: signed.digest(&req.signature),
            tenant: signer.tenant().to_owned(),
            access_key_id: req.access_key_id.clone(),
            buckets,
            scope: covers,
            // What the write asks of object lock, as signed: the only lock a first seal of
            // its version may have beyond a bucket's default retention.
            lock: signed_lock_of(req, op, path.as_deref(), &signer),
            op: op.map(str::to_owned),
            issued_ms: now_ms,
            mac: String::new(),
        };
        ticket.mac = self.ticket_mac(&ticket);
        let chain = matches!(payload, Payload::SignedChunks { .. })
            .then(|| self.chain(&req.access_key_id, &req.amz_date, &scope, &req.signature));
        Ok(Some(Verified {
            signer,
            ticket,
            chain,
        }))
    }

    /// The signer and signing key of the request's key and scope: from the cache, else from
    /// `source` (`None` without one).
    fn signing_key(
        &self,
        req: &SignedRequest,
        scope: &str,
        source: Option<&dyn SecretSource>,
    ) -> Result<Option<(Signer, SigningKey)>, TrusteeError> {
        let parts = KeyScope {
            access_key_id: &req.access_key_id,
            date: &req.scope_date,
            region: &req.region,
            service: &req.service,
            scope,
        };
        self.signing_key_of(&parts, Some(req), source)
    }

    /// [`Self::signing_key`] for a key and scope given as parts (`request`, if there is one,
    /// goes to the source).
    fn signing_key_of(
        &self,
        parts: &KeyScope<'_>,
        request: Option<&SignedRequest>,
        source: Option<&dyn SecretSource>,
    ) -> Result<Option<(Signer, SigningKey)>, TrusteeError> {
        if let Ok(cache) = self.signing_keys.lock()
            && let Some((signer, key)) = cache.get(parts.access_key_id, parts.scope)
        {
            return Ok(Some((signer.clone(), key.clone())));
        }
        let Some(source) = source else {
            return Ok(None);
        };
        let (signer, secret) = source.secret(parts.access_key_id, request)?;
        let key = SigningKey::derive(&secret, parts.date, parts.region, parts.service);
        if source.cacheable(parts.access_key_id)
            && let Ok(mut cache) = self.signing_keys.lock()
        {
            cache.insert(
                parts.access_key_id,
                parts.scope.to_owned(),
                (signer.clone(), key.clone()),
            );
        }
        Ok(Some((signer, key)))
    }

    /// Checks a browser form upload: the signature over its policy document first, then the
    /// policy's expiry and conditions. Failures count towards the rate limit as a request's
    /// do, except a policy's refusals of a form whose signature held (no attempt at a secret).
    pub fn verify_post(
        &self,
        post: &SignedPost,
        source: &dyn SecretSource,
        now_ms: i64,
    ) -> Result<Verified, TrusteeError> {
        if self.limited(&post.access_key_id, now_ms) {
            return Err(fail(AuthFailure::RateLimited));
        }
        let outcome = self.verify_post_unlimited(post, source, now_ms);
        if let Err(TrusteeError::Unauthenticated(f)) = &outcome
            && !matches!(
                f,
                AuthFailure::RateLimited
                    | AuthFailure::PolicyExpired
                    | AuthFailure::PolicyConditionFailed
                    | AuthFailure::PolicyMalformed
            )
        {
            self.record_failure((*f != AuthFailure::UnknownKey).then_some(&*post.access_key_id));
        }
        outcome
    }

    fn verify_post_unlimited(
        &self,
        post: &SignedPost,
        source: &dyn SecretSource,
        now_ms: i64,
    ) -> Result<Verified, TrusteeError> {
        if post.service != "s3" || post.region != self.region {
            return Err(fail(AuthFailure::WrongScope));
        }
        if obhut_sigv4::parse_amz_date(&post.amz_date).is_none()
            || post.amz_date.get(..8) != Some(post.scope_date.as_str())
            || post.bucket.is_empty()
            || post.key.is_empty()
            || post.policy.len() > obhut_sigv4::post::MAX_POLICY_BYTES
        {
            return Err(fail(AuthFailure::Malformed));
        }
        let scope = post.scope();
        let parts = KeyScope {
            access_key_id: &post.access_key_id,
            date: &post.scope_date,
            region: &post.region,
            service: &post.service,
            scope: &scope,
        };
        let (signer, key) = self
            .signing_key_of(&parts, None, Some(source))?
            .ok_or_else(|| fail(AuthFailure::UnknownKey))?;
        // The string a form signs is its policy field, exactly as sent.
        if !key.verifies(&post.policy, &post.signature) {
            return Err(fail(AuthFailure::SignatureMismatch));
        }
        post.check_policy(now_ms.div_euclid(1000)).map_err(|e| {
            fail(match e {
                PolicyError::Expired => AuthFailure::PolicyExpired,
                PolicyError::Malformed(_) => AuthFailure::PolicyMalformed,
                PolicyError::ConditionFailed(_) | PolicyError::ExtraField(_) => {
                    AuthFailure::PolicyConditionFailed
                }
            })
        })?;
        let mut buckets = vec![post.bucket.clone()];
        let mut covers = vec![
            TicketScope::Write {
                bucket: post.bucket.clone(),
                key: post.key.clone(),
            }
            .text(),
        ];
        if let Signer::Tenant {
            policy: Some(policy),
            ..
        } = &signer
        {
            (buckets, covers) = narrowed(policy, &post.access_key_id, buckets, covers);
        }
        let mut ticket = self.ticket_of(
            post.digest(),
            signer.tenant(),
            &post.access_key_id,
            buckets,
            covers,
            now_ms,
        );
        // A form's upload makes a version (its lock fields are not read: it has none), and
        // may seal its first object lock record only within the clock skew of the form's
        // signing date, as a presigned URL: a form's policy may stay valid for long, and the
        // trustee remembers which version a signed request sealed only for `LOCK_CLAIM_MS`.
        let age_secs = obhut_sigv4::parse_amz_date(&post.amz_date)
            .map(|t| now_ms.div_euclid(1000) - t.unix_timestamp());
        ticket.op = age_secs
            .is_some_and(in_lock_window)
            .then(|| obhut_trustee_client::object_lock::OP_POST_OBJECT.to_owned());
        ticket.mac = self.ticket_mac(&ticket);
        Ok(Verified {
            signer,
            ticket,
            chain: None,
        })
    }

    /// A ticket for a request verified (or a statement checked) now.
    pub fn ticket(
        &self,
        digest: String,
        tenant: &str,
        access_key_id: &str,
        buckets: Vec<String>,
        scope: Vec<TicketScope>,
        now_ms: i64,
    ) -> RequestTicket {
        let scope = scope.iter().map(TicketScope::text).collect();
        self.ticket_of(digest, tenant, access_key_id, buckets, scope, now_ms)
    }

    /// `ticket` as this trustee issues it for a write with the lock headers `lock` (their
    /// text as [`obhut_trustee_client::object_lock::signed_lock_headers`] makes it).
    #[cfg(test)]
    pub fn with_lock(&self, mut ticket: RequestTicket, lock: Option<String>) -> RequestTicket {
        ticket.lock = lock;
        ticket.mac = self.ticket_mac(&ticket);
        ticket
    }

    /// `ticket` as this trustee issues it for a request of the S3 operation `op`.
    #[cfg(test)]
    pub fn with_op(&self, mut ticket: RequestTicket, op: Option<&str>) -> RequestTicket {
        ticket.op = op.map(str::to_owned);
        ticket.mac = self.ticket_mac(&ticket);
        ticket
    }

    /// [`Self::ticket`], with the scope already in its text forms.
    fn ticket_of(
        &self,
        digest: String,
        tenant: &str,
        access_key_id: &str,
        buckets: Vec<String>,
        scope: Vec<String>,
        now_ms: i64,
    ) -> RequestTicket {
        let mut ticket = RequestTicket {
            digest,
            tenant: tenant.to_owned(),
            access_key_id: access_key_id.to_owned(),
            buckets,
            scope,
            lock: None,
            op: None,
            issued_ms: now_ms,
            mac: String::new(),
        };
        ticket.mac = self.ticket_mac(&ticket);
        ticket
    }

    /// The MAC over every field of `ticket` but the MAC itself: the same framing as [`Self::mac`]
    /// of `["ticket", digest, tenant, access key id, issued, number of buckets, buckets…,
    /// number of scopes, scopes…]` (numbers in decimal), then `"lock", lock` for a ticket with
    /// lock headers and `"op", op` for one with an operation, built in one buffer.
    fn ticket_mac(&self, ticket: &RequestTicket) -> String {
        let mut numbers = [0u8; 60];
        let (issued, rest) = numbers.split_at_mut(20);
        let (buckets, scope) = rest.split_at_mut(20);
        let issued = decimal(ticket.issued_ms, issued);
        let buckets = decimal(ticket.buckets.len(), buckets);
        let scope = decimal(ticket.scope.len(), scope);
        let fixed = [
            b"ticket".as_slice(),
            ticket.digest.as_bytes(),
            ticket.tenant.as_bytes(),
            ticket.access_key_id.as_bytes(),
            issued,
            buckets,
        ];
        let listed = ticket.buckets.iter().chain(&ticket.scope);
        let mut framed = Vec::with_capacity(
            fixed.iter().map(|p| p.len() + 8).sum::<usize>()
                + scope.len()
                + 8
                + listed.clone().map(|p| p.len() + 8).sum::<usize>(),
        );
        let mut frame = |p: &[u8]| {
            framed.extend_from_slice(&(p.len() as u64).to_be_bytes());
            framed.extend_from_slice(p);
        };
        for p in fixed {
            frame(p);
        }
        for b in &ticket.buckets {
            frame(b.as_bytes());
        }
        frame(scope);
        for s in &ticket.scope {
            frame(s.as_bytes());
        }
        // Only a write with lock headers has the field: other tickets keep their framing.
        if let Some(lock) = &ticket.lock {
            frame(b"lock");
            frame(lock.as_bytes());
        }
        // Likewise only a ticket for an operation that may seal a lock has its operation.
        if let Some(op) = &ticket.op {
            frame(b"op");
            frame(op.as_bytes());
        }
        obhut_sigv4::hex(hmac::sign(&self.mac_key, &framed).as_ref())
    }

    /// Whether `ticket` is this trustee's, recent, for `tenant`, `principal` and `bucket`.
    pub fn check_ticket(
        &self,
        ticket: &RequestTicket,
        tenant: &str,
        principal: &str,
        bucket: &str,
        now_ms: i64,
    ) -> Result<(), TrusteeError> {
        let expected = self.ticket_mac(ticket);
        let genuine = expected.len() == ticket.mac.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                expected.as_bytes(),
                ticket.mac.as_bytes(),
            )
            .is_ok();
        let denied = |m: &str| Err(TrusteeError::Denied(m.to_owned()));
        if !genuine {
            return denied("the request ticket is not one this trustee issued");
        }
        if now_ms - ticket.issued_ms > TICKET_LIFETIME_MS || ticket.issued_ms > now_ms + 60_000 {
            return denied("the request ticket has expired");
        }
        if ticket.tenant != tenant || ticket.access_key_id != principal {
            return denied("the request ticket is for another tenant or principal");
        }
        if !ticket.buckets.iter().any(|b| b == bucket) {
            return denied("the verified request does not name this bucket");
        }
        Ok(())
    }

    fn chain(
        &self,
        access_key_id: &str,
        amz_date: &str,
        scope: &str,
        previous: &str,
    ) -> ChainToken {
        ChainToken {
            access_key_id: access_key_id.to_owned(),
            amz_date: amz_date.to_owned(),
            scope: scope.to_owned(),
            previous_signature: previous.to_owned(),
            mac: self.mac(&["chain", access_key_id, amz_date, scope, previous]),
        }
    }

    /// Checks a batch of chunk signatures continuing `batch.chain`.
    pub fn verify_chunks(
        &self,
        batch: &ChunkBatch,
        source: &dyn SecretSource,
    ) -> Result<ChainToken, TrusteeError> {
        let c = &batch.chain;
        if !self.mac_matches(
            &[
                "chain",
                &c.access_key_id,
                &c.amz_date,
                &c.scope,
                &c.previous_signature,
            ],
            &c.mac,
        ) {
            return Err(TrusteeError::Denied(
                "the chain token is not one this trustee issued".into(),
            ));
        }
        if batch.chunks.len() > MAX_CHUNKS_PER_BATCH {
            return Err(TrusteeError::Invalid(format!(
                "at most {MAX_CHUNKS_PER_BATCH} chunks per batch"
            )));
        }
        let mut scope = c.scope.splitn(4, '/');
        let (Some(date), Some(region), Some(service)) = (scope.next(), scope.next(), scope.next())
        else {
            return Err(fail(AuthFailure::Malformed));
        };
        let cached = self.signing_keys.lock().ok().and_then(|cache| {
            cache
                .get(&c.access_key_id, &c.scope)
                .map(|(_, k)| k.clone())
        });
        let key = match cached {
            Some(k) => k,
            None => {
                let (_, secret) = source.secret(&c.access_key_id, None)?;
                SigningKey::derive(&secret, date, region, service)
            }
        };
        let mut previous = c.previous_signature.clone();
        for chunk in &batch.chunks {
            let to_sign = chunk_string_to_sign(&c.amz_date, &c.scope, &previous, &chunk.sha256);
            if !key.verifies(&to_sign, &chunk.signature) {
                return Err(fail(AuthFailure::SignatureMismatch));
            }
            previous.clone_from(&chunk.signature);
        }
        if let Some(trailer) = &batch.trailer {
            let signature = batch
                .trailer_signature
                .as_deref()
                .ok_or_else(|| fail(AuthFailure::SignatureMismatch))?;
            let to_sign =
                trailer_string_to_sign(&c.amz_date, &c.scope, &previous, trailer.as_bytes());
            if !key.verifies(&to_sign, signature) {
                return Err(fail(AuthFailure::SignatureMismatch));
            }
            previous = signature.to_owned();
        }
        Ok(self.chain(&c.access_key_id, &c.amz_date, &c.scope, &previous))
    }
}

/// An access key and the credential scope a signing key is derived for.
struct KeyScope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    /// `date/region/service/aws4_request`.
    scope: &'a str,
}

/// The buckets a request names: its path's first segment, and a copy's source bucket (from
/// the signed `x-amz-copy-source`).
#[must_use]
pub fn request_buckets(req: &SignedRequest) -> Vec<String> {
    buckets_of(req, req.decoded_path_ref().as_deref())
}

/// [`request_buckets`], given the request's decoded path.
fn buckets_of(req: &SignedRequest, path: Option<&str>) -> Vec<String> {
    let mut out = Vec::with_capacity(1);
    if let Some(path) = path
        && let Some(bucket) = path.trim_start_matches('/').split('/').next()
        && !bucket.is_empty()
    {
        out.push(bucket.to_owned());
    }
    if let Some(source) = req.signed_header("x-amz-copy-source") {
        let decoded = percent_encoding_decode(source);
        if let Some(bucket) = decoded.trim_start_matches('/').split('/').next()
            && !bucket.is_empty()
            && !out.iter().any(|b| b == bucket)
        {
            out.push(bucket.to_owned());
        }
    }
    out
}

/// Query parameters a listing may carry; a GET of a bucket with any other (a sub-resource such
/// as `?acl` or `?policy`) is not a listing and opens no ETag.
const LISTING_PARAMETERS: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "encoding-type",
    "marker",
    "uploads",
    "key-marker",
    "upload-id-marker",
    "max-uploads",
    "versions",
    "version-id-marker",
    "x-id",
];

/// What object keys a request may have opened ([`TicketScope`]): for a GET or HEAD the object
/// its path names (read), for a PUT, POST or DELETE that object as written, with the
/// multipart upload its `uploadId` names; a copy's source object (read); for a listing the
/// names under its `prefix`. Anything else at the bucket level opens nothing.
#[must_use]
pub fn request_scope(req: &SignedRequest) -> Vec<TicketScope> {
    scope_of(req, req.decoded_path_ref().as_deref(), |s| s.owned())
}

/// [`request_scope`] in the text forms a ticket carries, given the request's decoded path:
/// each scope is written once, straight into its text.
/// Whether a request signed `age_secs` ago may seal an object lock record: only within the
/// clock skew a signed header request is held to (a presigned URL, valid up to 7 days, seals
/// only in its first 15 minutes). Every verification of the same signed request is then
/// within 30 minutes of the first, and the trustee remembers which version each one sealed
/// for that long (`LOCK_CLAIM_MS`): a replay cannot seal a second version.
fn in_lock_window(age_secs: i64) -> bool {
    age_secs.abs() <= MAX_CLOCK_SKEW_SECS
}

/// The query parameters of a presigned URL's authentication.
const PRESIGNED_PARAMETERS: [&str; 6] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Security-Token",
];

/// The S3 operation of a signed request, for the operations that may seal an object lock
/// record ([`obhut_trustee_client::object_lock::LOCK_OPS`]): read from its method, its query
/// (all signed) and its signed `x-amz-copy-source`; `None` for any other.
fn lock_op_of(req: &SignedRequest, path: Option<&str>) -> Option<&'static str> {
    use obhut_trustee_client::object_lock as ol;
    let names_object = path
        .map(|p| p.trim_start_matches('/'))
        .and_then(|p| p.split_once('/'))
        .is_some_and(|(b, k)| !b.is_empty() && !k.is_empty());
    // A presigned URL's authentication parameters, and the operation's name some SDKs add
    // (`x-id`), say nothing of the operation.
    let query = || {
        req.query
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !PRESIGNED_PARAMETERS.contains(k) && *k != "x-id")
    };
    let has = |name: &str| query().any(|k| k == name);
    // Only `versionId` may come beside a subresource; anything else is another operation.
    let only = |names: &[&str]| query().all(|k| names.contains(&k));
    if !names_object {
        let names_bucket = path
            .map(|p| p.trim_matches('/'))
            .is_some_and(|b| !b.is_empty() && !b.contains('/'));
        if !names_bucket || req.method != "PUT" {
            return None;
        }
        if has("object-lock") && only(&["object-lock"]) {
            return Some(ol::OP_PUT_OBJECT_LOCK_CONFIGURATION);
        }
        let with_lock = req
            .signed_header("x-amz-bucket-object-lock-enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        return (with_lock && query().next().is_none()).then_some(ol::OP_CREATE_BUCKET_WITH_LOCK);
    }
    match req.method.as_str() {
        "PUT" if has("retention") && only(&["retention", "versionId"]) => {
            Some(ol::OP_PUT_OBJECT_RETENTION)
        }
        "PUT" if has("legal-hold") && only(&["legal-hold", "versionId"]) => {
            Some(ol::OP_PUT_OBJECT_LEGAL_HOLD)
        }
        "PUT" if query().next().is_none() => {
            Some(if req.signed_header("x-amz-copy-source").is_some() {
                ol::OP_COPY_OBJECT
            } else {
                ol::OP_PUT_OBJECT
            })
        }
        "POST" if has("uploads") && only(&["uploads"]) => Some(ol::OP_CREATE_MULTIPART_UPLOAD),
        "POST" if has("uploadId") && only(&["uploadId"]) => Some(ol::OP_COMPLETE_MULTIPART_UPLOAD),
        _ => None,
    }
}

/// What a signed request says about object lock, for its ticket: a write's lock headers, or a
/// retention or legal hold change's version and bypass (the bypass counts only if the
/// header is signed and the key's own policy, if it has one, allows it on the object).
fn signed_lock_of(
    req: &SignedRequest,
    op: Option<&str>,
    path: Option<&str>,
    signer: &Signer,
) -> Option<String> {
    use obhut_trustee_client::object_lock as ol;
    let body = || {
        ol::body_binding(
            &req.payload,
            req.signed_header("content-md5"),
            req.signed_header("x-amz-checksum-sha256"),
            req.signed_header("x-amz-checksum-sha1"),
        )
    };
    match op {
        // A bucket's default retention: what binds its body (names no version, no bypass).
        Some(ol::OP_PUT_OBJECT_LOCK_CONFIGURATION) => {
            Some(ol::signed_lock_change(None, "", &body()))
        }
        Some(ol::OP_PUT_OBJECT_RETENTION | ol::OP_PUT_OBJECT_LEGAL_HOLD) => {
            let asked = req
                .signed_header("x-amz-bypass-governance-retention")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            let may = || match signer {
                Signer::Tenant {
                    policy: Some(policy),
                    ..
                } => path
                    .map(|p| p.trim_start_matches('/'))
                    .and_then(|p| p.split_once('/'))
                    .is_some_and(|(bucket, key)| {
                        may_bypass(policy, &req.access_key_id, bucket, key)
                    }),
                Signer::Tenant { policy: None, .. } => true,
                // The provider's staff never change a lock.
                Signer::Grant { .. } => false,
            };
            let bypass = match (asked, asked && may()) {
                (false, _) => "",
                (true, true) => "true",
                (true, false) => "refused",
            };
            // What binds the body (the XML the trustee reads), as signed.
            Some(ol::signed_lock_change(
                req.query_param("versionId"),
                bypass,
                &body(),
            ))
        }
        _ => ol::signed_lock_headers(
            req.signed_header("x-amz-object-lock-mode"),
            req.signed_header("x-amz-object-lock-retain-until-date"),
            req.signed_header("x-amz-object-lock-legal-hold"),
        ),
    }
}

/// Whether a key's own policy allows `s3:BypassGovernanceRetention` on the object.
fn may_bypass(policy: &str, access_key_id: &str, bucket: &str, key: &str) -> bool {
    use obhut_core::iam::{Decision, Kind, Policy, Request, object_arn};
    Policy::parse(policy, Kind::Key).is_ok_and(|policy| {
        policy.evaluate(&Request {
            principal: access_key_id,
            action: "s3:BypassGovernanceRetention",
            resource: &object_arn(bucket, key),
            secure_transport: None,
            source_ip: None,
            prefix: None,
            delimiter: None,
            partial: false,
        }) == Decision::Allow
    })
}

fn scope_texts_of(req: &SignedRequest, path: Option<&str>) -> Vec<String> {
    scope_of(req, path, |s| s.text())
}

fn scope_of<T>(
    req: &SignedRequest,
    path: Option<&str>,
    form: impl Fn(ScopeRef<'_>) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(1);
    let reading = matches!(req.method.as_str(), "GET" | "HEAD");
    if let Some(path) = path {
        let path = path.trim_start_matches('/');
        match path.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                if let Some(upload) = req.query_param("uploadId") {
                    out.push(form(ScopeRef::Upload { bucket, upload }));
                }
                out.push(form(if reading {
                    ScopeRef::Read { bucket, key }
                } else {
                    ScopeRef::Write { bucket, key }
                }));
            }
            _ => {
                let bucket = path.trim_end_matches('/');
                let listing = req.method == "GET"
                    && req
                        .query
                        .iter()
                        .all(|(k, _)| LISTING_PARAMETERS.contains(&k.as_str()));
                if !bucket.is_empty() && listing {
                    out.push(form(ScopeRef::Prefix {
                        bucket,
                        prefix: req.query_param("prefix").unwrap_or_default(),
                    }));
                }
            }
        }
    }
    if let Some(source) = req.signed_header("x-amz-copy-source")
        && let Some(decoded) = strict_decode(source)
        && let Some((bucket, key)) = decoded.trim_start_matches('/').split_once('/')
        && !bucket.is_empty()
        && !key.is_empty()
    {
        out.push(form(ScopeRef::Read { bucket, key }));
    }
    out
}

/// The actions that may need an object's key opened for reading (`r:`), or a key wrapped or
/// an upload's key opened for writing (`w:`), and that may list under a prefix (`p:`).
const READ_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
];
const WRITE_ACTIONS: &[&str] = &[
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
];
const LIST_ACTIONS: &[&str] = &[
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
];

/// A scoped key's ticket: only the buckets its policy reaches, and only the scopes its policy
/// could allow some action of. The trustee does not see the connection, so a condition on it
/// counts as met for an `Allow` and unmet for a `Deny` (the gateway decides those with the
/// connection in hand); what is left is at most what the key may do, so a gateway that ignored
/// the key's policy still could not have keys released for buckets, or opened or wrapped for
/// objects, outside it. A policy that does not parse (it was checked when the key was made,
/// and its seal binds it) leaves nothing.
fn narrowed(
    policy: &str,
    access_key_id: &str,
    buckets: Vec<String>,
    scope: Vec<String>,
) -> (Vec<String>, Vec<String>) {
    use obhut_core::iam::{Decision, Kind, Policy, Request, bucket_arn, object_arn};
    let Ok(policy) = Policy::parse(policy, Kind::Key) else {
        return (Vec::new(), Vec::new());
    };
    let buckets = buckets
        .into_iter()
        .filter(|b| policy.may_reach_bucket(b))
        .collect();
    let any_allowed = |actions: &[&str], resource: &str, prefix: Option<&str>| {
        actions.iter().any(|action| {
            policy.evaluate(&Request {
                principal: access_key_id,
                action,
                resource,
                secure_transport: None,
                source_ip: None,
                prefix,
                delimiter: None,
                partial: true,
            }) == Decision::Allow
        })
    };
    let scope = scope
        .into_iter()
        .filter(|text| match TicketScope::parse(text) {
            Some(TicketScope::Read { bucket, key }) => {
                any_allowed(READ_ACTIONS, &object_arn(&bucket, &key), None)
            }
            Some(TicketScope::Write { bucket, key }) => {
                any_allowed(WRITE_ACTIONS, &object_arn(&bucket, &key), None)
            }
            Some(TicketScope::Prefix { bucket, prefix }) => {
                any_allowed(LIST_ACTIONS, &bucket_arn(&bucket), Some(&prefix))
            }
            // An upload's key opens only together with a read or write scope of its object.
            Some(TicketScope::Upload { .. }) => true,
            Some(TicketScope::Statement { .. }) | None => false,
        })
        .collect();
    (buckets, scope)
}

/// A [`TicketScope`] borrowed from the request it was read from.
enum ScopeRef<'a> {
    Read { bucket: &'a str, key: &'a str },
    Write { bucket: &'a str, key: &'a str },
    Upload { bucket: &'a str, upload: &'a str },
    Prefix { bucket: &'a str, prefix: &'a str },
}

impl ScopeRef<'_> {
    fn owned(&self) -> TicketScope {
        match *self {
            Self::Read { bucket, key } => TicketScope::Read {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
            Self::Write { bucket, key } => TicketScope::Write {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
            Self::Upload { bucket, upload } => TicketScope::Upload {
                bucket: bucket.to_owned(),
                upload: upload.to_owned(),
            },
            Self::Prefix { bucket, prefix } => TicketScope::Prefix {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            },
        }
    }

    /// [`TicketScope::text`] of [`Self::owned`], written at once.
    fn text(&self) -> String {
        let (tag, bucket, name) = match *self {
            Self::Read { bucket, key } => ("r:", bucket, key),
            Self::Write { bucket, key } => ("w:", bucket, key),
            Self::Upload { bucket, upload } => ("u:", bucket, upload),
            Self::Prefix { bucket, prefix } => ("p:", bucket, prefix),
        };
        let mut out = String::with_capacity(tag.len() + bucket.len() + 1 + name.len());
        out.push_str(tag);
        out.push_str(bucket);
        out.push('/');
        out.push_str(name);
        out
    }
}

/// `n` in decimal, written into `buf` (20 bytes hold any `i64` or `u64`).
fn decimal(n: impl std::fmt::Display, buf: &mut [u8]) -> &[u8] {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut *buf);
    let _ = write!(cursor, "{n}");
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    &buf[..len]
}

fn percent_encoding_decode(text: &str) -> String {
    let path = text.split('?').next().unwrap_or_default();
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// A copy source's path decoded strictly: `None` if it is not UTF-8 once decoded (a lossy
/// decoding could name another object).
fn strict_decode(text: &str) -> Option<String> {
    let path = text.split('?').next().unwrap_or_default();
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use obhut_sigv4::{EMPTY_SHA256, Signer as ClientSigner, amz_date_now, format_amz_date};
    use obhut_trustee_client::auth::KeyUse;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    struct OneKey;

    impl SecretSource for OneKey {
        fn secret(
            &self,
            access_key_id: &str,
            _: Option<&SignedRequest>,
        ) -> Result<(Signer, zeroize::Zeroizing<String>), TrusteeError> {
            if access_key_id == "OBKGOOD" {
                Ok((
                    Signer::Tenant {
                        tenant: "t".into(),
                        policy: None,
                    },
                    zeroize::Zeroizing::new(SECRET.to_owned()),
                ))
            } else {
                Err(fail(AuthFailure::UnknownKey))
            }
        }
        fn cacheable(&self, _: &str) -> bool {
            true
        }
    }

    fn signed(key: &str, secret: &str, region: &str, date: &str, path: &str) -> SignedRequest {
        let headers = [
            ("host", "localhost:9000"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", date),
        ];
        let auth = ClientSigner {
            access_key: key.into(),
            secret_key: secret.into(),
            region: region.into(),
        }
        .authorization("GET", path, &[], &headers, EMPTY_SHA256, date);
        let signature = auth.rsplit("Signature=").next().unwrap().to_owned();
        SignedRequest {
            access_key_id: key.into(),
            amz_date: date.into(),
            scope_date: date[..8].into(),
            region: region.into(),
            service: "s3".into(),
            method: "GET".into(),
            path: path.into(),
            query: vec![],
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            payload: EMPTY_SHA256.into(),
            presigned_expires: None,
            signature,
        }
    }

    fn now_ms() -> i64 {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    }

    /// A form as boto3's `generate_presigned_post` makes one, for `key` in bucket `b`.
    fn form(key: &str, secret: &str, expiration: &str) -> SignedPost {
        form_signed(key, secret, expiration, amz_date_now())
    }

    /// [`form`], signed at `date` (`YYYYMMDDTHHMMSSZ`).
    fn form_signed(key: &str, secret: &str, expiration: &str, date: String) -> SignedPost {
        let policy = base64_simd::STANDARD.encode_to_string(format!(
            r#"{{"expiration": "{expiration}", "conditions": [{{"bucket": "b"}}, ["starts-with", "$key", "up/"], {{"x-amz-date": "{date}"}}]}}"#
        ));
        let signature = SigningKey::derive(secret, &date[..8], "us-east-1", "s3").sign(&policy);
        SignedPost {
            access_key_id: "OBKGOOD".into(),
            amz_date: date.clone(),
            scope_date: date[..8].into(),
            region: "us-east-1".into(),
            service: "s3".into(),
            policy,
            signature,
            bucket: "b".into(),
            key: key.into(),
            fields: vec![("key".into(), key.into()), ("X-Amz-Date".into(), date)],
        }
    }

    /// A form's policy may stay valid for long: its upload seals an object lock record only
    /// within the clock skew of the form's signing date, as a presigned URL's.
    #[test]
    fn a_form_seals_object_locks_only_within_the_clock_skew_of_its_signing() {
        let v = Verifier::new("us-east-1").unwrap();
        let now = now_ms();
        let later = "2999-01-01T00:00:00Z";
        let fresh = v
            .verify_post(&form("up/a", SECRET, later), &OneKey, now)
            .unwrap();
        assert_eq!(
            fresh.ticket.op.as_deref(),
            Some(obhut_trustee_client::object_lock::OP_POST_OBJECT)
        );
        let signed = time::OffsetDateTime::now_utc() - time::Duration::minutes(20);
        let old = v
            .verify_post(
                &form_signed("up/a", SECRET, later, format_amz_date(signed)),
                &OneKey,
                now,
            )
            .unwrap();
        assert!(old.ticket.covers("b", "up/a", None, KeyUse::Wrap));
        assert_eq!(old.ticket.op, None);
    }

    #[test]
    fn a_form_verifies_by_its_policy_and_its_ticket_writes_its_key_only() {
        let v = Verifier::new("us-east-1").unwrap();
        let now = now_ms();
        let later = "2999-01-01T00:00:00Z";
        let ok = v
            .verify_post(&form("up/a", SECRET, later), &OneKey, now)
            .unwrap();
        assert_eq!(ok.signer.tenant(), "t");
        assert!(v.check_ticket(&ok.ticket, "t", "OBKGOOD", "b", now).is_ok());
        assert!(ok.ticket.covers("b", "up/a", None, KeyUse::Wrap));
        assert!(!ok.ticket.covers("b", "up/b", None, KeyUse::Wrap));
        assert!(!ok.ticket.covers("b", "up/a", None, KeyUse::Open));
        let refused = |post: &SignedPost| match v.verify_post(post, &OneKey, now) {
            Err(TrusteeError::Unauthenticated(f)) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(&form("up/a", "not the secret", later)),
            AuthFailure::SignatureMismatch
        );
        assert_eq!(
            refused(&form("up/a", SECRET, "2001-01-01T00:00:00Z")),
            AuthFailure::PolicyExpired
        );
        assert_eq!(
            refused(&form("down/a", SECRET, later)),
            AuthFailure::PolicyConditionFailed
        );
        let mut tampered = form("up/a", SECRET, later);
        tampered.key = "down/a".into();
        assert_eq!(refused(&tampered), AuthFailure::PolicyConditionFailed);
        let mut extra = form("up/a", SECRET, later);
        extra
            .fields
            .push(("Content-Type".into(), "text/html".into()));
        assert_eq!(refused(&extra), AuthFailure::PolicyConditionFailed);
    }

    #[test]
    fn a_genuine_request_verifies_and_its_ticket_names_its_bucket_only() {
        let v = Verifier::new("us-east-1").unwrap();
        let now = now_ms();
        let req = signed(
            "OBKGOOD",
            SECRET,
            "us-east-1",
            &amz_date_now(),
            "/photos/a.jpg",
        );
        let ok = v.verify(&req, &OneKey, now).unwrap();
        assert_eq!(ok.signer.tenant(), "t");
        assert!(
            v.check_ticket(&ok.ticket, "t", "OBKGOOD", "photos", now)
                .is_ok()
        );
        assert!(
            v.check_ticket(&ok.ticket, "t", "OBKGOOD", "other", now)
                .is_err()
        );
        assert!(
            v.check_ticket(&ok.ticket, "u", "OBKGOOD", "photos", now)
                .is_err()
        );
        assert!(
            v.check_ticket(
                &ok.ticket,
                "t",
                "OBKGOOD",
                "photos",
                now + TICKET_LIFETIME_MS + 1
            )
            .is_err()
        );
        let mut forged = ok.ticket.clone();
        forged.buckets.push("other".into());
        assert!(
            v.check_ticket(&forged, "t", "OBKGOOD", "other", now)
                .is_err()
        );
        // Another trustee's (or an earlier start's) tickets are not accepted.
        let other = Verifier::new("us-east-1").unwrap();
        assert!(
            other
                .check_ticket(&ok.ticket, "t", "OBKGOOD", "photos", now)
                .is_err()
        );
    }

    #[test]
    fn wrong_secret_region_time_and_key_are_refused_and_failures_are_limited() {
        let v = Verifier::new("us-east-1").unwrap();
        let now = now_ms();
        let date = amz_date_now();
        let expect = |req: SignedRequest, f: AuthFailure| {
            assert_eq!(
                v.verify(&req, &OneKey, now).unwrap_err(),
                TrusteeError::Unauthenticated(f)
            );
        };
        expect(
            signed("OBKGOOD", "wrong", "us-east-1", &date, "/b/k"),
            AuthFailure::SignatureMismatch,
        );
        expect(
            signed("OBKGOOD", SECRET, "eu-central-1", &date, "/b/k"),
            AuthFailure::WrongScope,
        );
        expect(
            signed("OBKNONE", SECRET, "us-east-1", &date, "/b/k"),
            AuthFailure::UnknownKey,
        );
        let old = format_amz_date(time::OffsetDateTime::now_utc() - time::Duration::minutes(16));
        expect(
            signed("OBKGOOD", SECRET, "us-east-1", &old, "/b/k"),
            AuthFailure::Skewed,
        );
        let mut tampered = signed("OBKGOOD", SECRET, "us-east-1", &date, "/b/k");
        tampered.path = "/b/other".into();
        expect(tampered, AuthFailure::SignatureMismatch);
        // After enough failures for one key, even a genuine request waits.
        for _ in 0..FAILURES_PER_KEY {
            let _ = v.verify(
                &signed("OBKGOOD", "wrong", "us-east-1", &date, "/b/k"),
                &OneKey,
                now,
            );
        }
        expect(
            signed("OBKGOOD", SECRET, "us-east-1", &date, "/b/k"),
            AuthFailure::RateLimited,
        );
        assert!(
            v.verify(
                &signed("OBKGOOD", SECRET, "us-east-1", &date, "/b/k"),
                &OneKey,
                now + FAILURE_WINDOW_MS
            )
            .is_ok()
        );
    }

    #[test]
    fn a_ticket_mac_frames_its_fields_as_the_generic_mac_does() {
        let v = Verifier::new("us-east-1").unwrap();
        for (buckets, scope, issued) in [
            (vec![], vec![], 0),
            (
                vec!["b".to_owned()],
                vec!["r:b/k".to_owned()],
                1_765_000_000_000,
            ),
            (
                vec!["dst".to_owned(), "src".to_owned()],
                vec!["w:dst/k".to_owned(), "r:src/a b".to_owned()],
                -5,
            ),
        ] {
            let t = v.ticket_of("d".into(), "t", "OBKGOOD", buckets, scope, issued);
            let (issued, nb, ns) = (
                t.issued_ms.to_string(),
                t.buckets.len().to_string(),
                t.scope.len().to_string(),
            );
            let mut parts = vec![
                "ticket",
                &t.digest,
                &t.tenant,
                &t.access_key_id,
                &issued,
                &nb,
            ];
            parts.extend(t.buckets.iter().map(String::as_str));
            parts.push(&ns);
            parts.extend(t.scope.iter().map(String::as_str));
            assert_eq!(t.mac, v.mac(&parts));
            // The lock headers a write signed are bound too, framed after the scopes.
            let mut locked = t.clone();
            locked.lock = Some("COMPLIANCE\n2030-01-01T00:00:00Z\n".into());
            locked.mac = v.ticket_mac(&locked);
            parts.extend(["lock", locked.lock.as_deref().unwrap()]);
            assert_eq!(locked.mac, v.mac(&parts));
            // A ticket whose lock headers were added, changed or removed is not the trustee's.
            let mut added = t.clone();
            added.lock = locked.lock.clone();
            let mut changed = locked.clone();
            changed.lock = Some("COMPLIANCE\n2099-01-01T00:00:00Z\n".into());
            let mut removed = locked.clone();
            removed.lock = None;
            for forged in [added, changed, removed] {
                assert!(matches!(
                    v.check_ticket(&forged, "t", "OBKGOOD", "b", forged.issued_ms),
                    Err(TrusteeError::Denied(m)) if m.contains("not one this trustee issued")
                ));
            }
        }
    }

    #[test]
    fn a_tickets_lock_is_what_the_write_signed() {
        let v = Verifier::new("us-east-1").unwrap();
        let date = amz_date_now();
        let headers = [
            ("host", "localhost:9000"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", date.as_str()),
            ("x-amz-object-lock-legal-hold", "ON"),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
            (
                "x-amz-object-lock-retain-until-date",
                "2030-01-01T00:00:00Z",
            ),
        ];
        let auth = ClientSigner {
            access_key: "OBKGOOD".into(),
            secret_key: SECRET.into(),
            region: "us-east-1".into(),
        }
        .authorization("PUT", "/b/k", &[], &headers, EMPTY_SHA256, &date);
        let mut req = signed("OBKGOOD", SECRET, "us-east-1", &date, "/b/k");
        req.method = "PUT".into();
        req.headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        req.signature = auth.rsplit("Signature=").next().unwrap().to_owned();
        let verified = v.verify(&req, &OneKey, now_ms()).unwrap();
        assert_eq!(
            verified.ticket.lock.as_deref(),
            Some("COMPLIANCE\n2030-01-01T00:00:00Z\nON")
        );
        // Without lock headers, none.
        let plain = signed("OBKGOOD", SECRET, "us-east-1", &date, "/b/k");
        assert_eq!(
            v.verify(&plain, &OneKey, now_ms()).unwrap().ticket.lock,
            None
        );
    }

    #[test]
    fn a_tickets_operation_is_read_from_what_was_signed() {
        use obhut_trustee_client::object_lock as ol;
        let date = amz_date_now();
        let op = |method: &str, path: &str, query: &[(&str, &str)], copy: bool| {
            let mut req = signed("OBKGOOD", SECRET, "us-east-1", &date, path);
            req.method = method.into();
            req.query = query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            if copy {
                req.headers
                    .push(("x-amz-copy-source".into(), "/b/source".into()));
            }
            lock_op_of(&req, req.decoded_path_ref().as_deref())
        };
        assert_eq!(op("PUT", "/b/k", &[], false), Some(ol::OP_PUT_OBJECT));
        // A presigned PUT's authentication parameters are no subresource.
        assert_eq!(
            op(
                "PUT",
                "/b/k",
                &[
                    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
                    ("X-Amz-Credential", "c"),
                    ("X-Amz-Date", "d"),
                    ("X-Amz-Expires", "60"),
                    ("X-Amz-SignedHeaders", "host"),
                    ("x-id", "PutObject"),
                ],
                false
            ),
            Some(ol::OP_PUT_OBJECT)
        );
        assert_eq!(op("PUT", "/b/k", &[], true), Some(ol::OP_COPY_OBJECT));
        assert_eq!(
            op("POST", "/b/k", &[("uploads", "")], false),
            Some(ol::OP_CREATE_MULTIPART_UPLOAD)
        );
        assert_eq!(
            op("POST", "/b/k", &[("uploadId", "u")], false),
            Some(ol::OP_COMPLETE_MULTIPART_UPLOAD)
        );
        assert_eq!(
            op(
                "PUT",
                "/b/k",
                &[("retention", ""), ("versionId", "v")],
                false
            ),
            Some(ol::OP_PUT_OBJECT_RETENTION)
        );
        assert_eq!(
            op("PUT", "/b/k", &[("legal-hold", "")], false),
            Some(ol::OP_PUT_OBJECT_LEGAL_HOLD)
        );
        assert_eq!(
            op("PUT", "/b", &[("object-lock", "")], false),
            Some(ol::OP_PUT_OBJECT_LOCK_CONFIGURATION)
        );
        assert_eq!(op("PUT", "/b/k", &[("object-lock", "")], false), None);
        assert_eq!(
            op("PUT", "/b", &[("object-lock", ""), ("x", "")], false),
            None
        );
        assert_eq!(op("GET", "/b", &[("object-lock", "")], false), None);
        let mut create = signed("OBKGOOD", SECRET, "us-east-1", &date, "/b");
        create.method = "PUT".into();
        assert_eq!(lock_op_of(&create, Some("/b")), None);
        create
            .headers
            .push(("x-amz-bucket-object-lock-enabled".into(), "True".into()));
        assert_eq!(
            lock_op_of(&create, Some("/b")),
            Some(ol::OP_CREATE_BUCKET_WITH_LOCK)
        );
        create.query = vec![("acl".into(), String::new())];
        assert_eq!(lock_op_of(&create, Some("/b")), None);
        // Requests that write no version and change no lock have none.
        for (method, path, query) in [
            ("DELETE", "/b/k", &[][..]),
            ("PUT", "/b/k", &[("tagging", "")][..]),
            ("PUT", "/b/k", &[("partNumber", "1"), ("uploadId", "u")][..]),
            ("POST", "/b/k", &[("uploadId", "u"), ("x", "")][..]),
            ("GET", "/b/k", &[][..]),
            ("PUT", "/b", &[][..]),
            ("PUT", "/b/k", &[("retention", ""), ("tagging", "")][..]),
        ] {
            assert_eq!(
                op(method, path, query, false),
                None,
                "{method} {path} {query:?}"
            );
        }
    }

    #[test]
    fn only_a_request_within_the_clock_skew_of_its_signature_seals_a_lock() {
        assert!(in_lock_window(0));
        assert!(in_lock_window(MAX_CLOCK_SKEW_SECS));
        assert!(in_lock_window(-MAX_CLOCK_SKEW_SECS));
        // A presigned URL used later, or one dated further ahead.
        assert!(!in_lock_window(MAX_CLOCK_SKEW_SECS + 1));
        assert!(!in_lock_window(7 * 86_400));
        assert!(!in_lock_window(-MAX_CLOCK_SKEW_SECS - 1));
    }

    #[test]
    fn a_lock_changes_bypass_counts_only_signed_and_allowed_by_the_keys_policy() {
        use obhut_trustee_client::object_lock as ol;
        let date = amz_date_now();
        let mut req = signed("OBKGOOD", SECRET, "us-east-1", &date, "/b/k");
        req.method = "PUT".into();
        req.query = vec![
            ("retention".into(), String::new()),
            ("versionId".into(), "v1".into()),
        ];
        let path = req.decoded_path_ref().map(|p| p.into_owned());
        let op = lock_op_of(&req, path.as_deref());
        let full = Signer::Tenant {
            tenant: "t".into(),
            policy: None,
        };
        let no_bypass = Signer::Tenant {
            tenant: "t".into(),
            policy: Some(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:BypassGovernanceRetention","Resource":"*"}]}"#.into(),
            ),
        };
        let grant = Signer::Grant {
            grant_id: "g".into(),
            tenant: "t".into(),
        };
        let of =
            |req: &SignedRequest, signer: &Signer| signed_lock_of(req, op, path.as_deref(), signer);
        // The body is bound by the signed payload hash (here the empty body's).
        let hash = format!("sha256={EMPTY_SHA256}");
        // Not asked (or asked in a header that was not signed: it is not among the signed).
        assert_eq!(
            of(&req, &full),
            Some(ol::signed_lock_change(Some("v1"), "", &hash))
        );
        req.headers
            .push(("x-amz-bypass-governance-retention".into(), "true".into()));
        assert_eq!(
            of(&req, &full),
            Some(ol::signed_lock_change(Some("v1"), "true", &hash))
        );
        for signer in [&no_bypass, &grant] {
            assert_eq!(
                of(&req, signer),
                Some(ol::signed_lock_change(Some("v1"), "refused", &hash))
            );
        }
        assert_eq!(
            ol::read_lock_change(&ol::signed_lock_change(Some("v1"), "true", &hash)),
            Some((Some("v1"), true, Some(hash.as_str())))
        );
        assert_eq!(
            ol::read_lock_change(&ol::signed_lock_change(None, "refused", "")),
            Some((None, false, None))
        );
        // A ticket of the form before bodies were bound reads as nothing.
        assert_eq!(ol::read_lock_change("v1\ntrue"), None);
    }

    #[test]
    fn a_lock_changes_body_is_bound_by_a_signed_hash_or_digest_never_a_crc() {
        use obhut_trustee_client::object_lock as ol;
        let date = amz_date_now();
        let mut req = signed("OBKGOOD", SECRET, "us-east-1", &date, "/b/k");
        req.method = "PUT".into();
        req.query = vec![("legal-hold".into(), String::new())];
        let path = req.decoded_path_ref().map(|p| p.into_owned());
        let op = lock_op_of(&req, path.as_deref());
        let full = Signer::Tenant {
            tenant: "t".into(),
            policy: None,
        };
        let binding = |req: &SignedRequest| {
            let text = signed_lock_of(req, op, path.as_deref(), &full).unwrap();
            ol::read_lock_change(&text).unwrap().2.map(str::to_owned)
        };
        let upper = "AB".repeat(32);
        req.payload = upper.clone();
        assert_eq!(
            binding(&req),
            Some(format!("sha256={}", upper.to_ascii_lowercase()))
        );
        // Without a payload hash: a signed Content-MD5, SHA-256 or SHA-1 checksum, never a CRC.
        req.payload = "UNSIGNED-PAYLOAD".into();
        req.headers
            .push(("x-amz-checksum-crc32".into(), "fKO38A==".into()));
        assert_eq!(binding(&req), None);
        req.headers
            .push(("x-amz-checksum-sha1".into(), "c2hhMQ==".into()));
        assert_eq!(
            binding(&req).as_deref(),
            Some("x-amz-checksum-sha1=c2hhMQ==")
        );
        req.headers
            .push(("x-amz-checksum-sha256".into(), "c2hhMjU2".into()));
        assert_eq!(
            binding(&req).as_deref(),
            Some("x-amz-checksum-sha256=c2hhMjU2")
        );
        req.headers.push(("content-md5".into(), "bWQ1".into()));
        assert_eq!(binding(&req).as_deref(), Some("content-md5=bWQ1"));
        req.payload = "STREAMING-UNSIGNED-PAYLOAD-TRAILER".into();
        assert_eq!(binding(&req).as_deref(), Some("content-md5=bWQ1"));
    }

    #[test]
    fn scope_texts_are_the_texts_of_the_request_scope() {
        let date = amz_date_now();
        let mut cases = vec![
            signed("OBKGOOD", SECRET, "us-east-1", &date, "/b/a%20b/c"),
            signed("OBKGOOD", SECRET, "us-east-1", &date, "/b"),
            signed("OBKGOOD", SECRET, "us-east-1", &date, "/"),
        ];
        let mut put = signed("OBKGOOD", SECRET, "us-east-1", &date, "/dst/k");
        put.method = "PUT".into();
        put.query = vec![("uploadId".into(), "u1".into())];
        put.headers
            .push(("x-amz-copy-source".into(), "/src/x%2Fy?versionId=1".into()));
        cases.push(put);
        let mut listing = signed("OBKGOOD", SECRET, "us-east-1", &date, "/b/");
        listing.query = vec![("prefix".into(), "p/".into())];
        cases.push(listing);
        for req in cases {
            let texts: Vec<String> = request_scope(&req).iter().map(TicketScope::text).collect();
            assert_eq!(
                scope_texts_of(&req, req.decoded_path_ref().as_deref()),
                texts,
                "{}",
                req.path
            );
        }
    }

    #[test]
    fn forgetting_a_key_drops_its_cached_signing_keys_only() {
        let v = Verifier::new("us-east-1").unwrap();
        let now = now_ms();
        let req = signed("OBKGOOD", SECRET, "us-east-1", &amz_date_now(), "/b/k");
        v.verify(&req, &OneKey, now).unwrap();
        assert!(v.verify_cached(&req, now).unwrap().is_some(), "cached");
        v.forget(Some("OBKOTHER"));
        assert!(
            v.verify_cached(&req, now).unwrap().is_some(),
            "another key's"
        );
        v.forget(Some("OBKGOOD"));
        assert!(v.verify_cached(&req, now).unwrap().is_none(), "forgotten");
        v.verify(&req, &OneKey, now).unwrap();
        v.forget(None);
        assert!(
            v.verify_cached(&req, now).unwrap().is_none(),
            "all forgotten"
        );
    }

    #[test]
    fn copy_sources_name_their_bucket() {
        let mut req = signed("OBKGOOD", SECRET, "us-east-1", &amz_date_now(), "/dst/k");
        req.headers
            .push(("x-amz-copy-source".into(), "/src%2Fx/a?versionId=1".into()));
        assert_eq!(
            request_buckets(&req),
            vec!["dst".to_owned(), "src".to_owned()]
        );
    }
}
