//! SigV4 verification as obhut's S3 front end runs it (s3s's verifier, reached through
//! `S3Service::call`), measured as the difference between the same request sent unsigned to a
//! service without authentication and sent signed to one that checks the signature.
//!
//! The S3 implementation behind the service answers at once, so what is left is the request's
//! parsing and routing plus, in the signed cases, the canonical request, the signing key's
//! derivation (four HMACs), the signature's HMAC and the constant-time comparison, and for a
//! PUT with a signed payload the SHA-256 of the body.
//!
//! Run with `cargo bench -p obhut-bench --bench sigv4`.

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt;
use obhut_bench::sigv4::{EMPTY_SHA256, Signer, UNSIGNED_PAYLOAD, amz_date_now, sha256_hex};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::dto::{HeadObjectInput, HeadObjectOutput, PutObjectInput, PutObjectOutput};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, S3, S3Error, S3Request, S3Response, S3Result};
use std::hint::black_box;

const ACCESS_KEY: &str = "AKIABENCHMARK0000001";
const SECRET_KEY: &str = "bench/secret/key/0000000000000000000000";
const HOST: &str = "127.0.0.1:9000";
const PATH: &str = "/bench/objects/key-000042";

/// Answers at once: only the front end's own work is measured.
struct Answering;

#[async_trait::async_trait]
impl S3 for Answering {
    async fn head_object(
        &self,
        _req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(4096),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        // Read to the end, so that a signed payload's hash is checked.
        if let Some(body) = req.input.body {
            let mut body = Body::from(body);
            while let Some(frame) = body.frame().await {
                frame.map_err(|e| {
                    S3Error::with_message(s3s::S3ErrorCode::BadDigest, e.to_string())
                })?;
            }
        }
        Ok(S3Response::new(PutObjectOutput::default()))
    }
}

/// Lets every authenticated request through (obhut's own checks are not what is measured).
struct AllowAll;

#[async_trait::async_trait]
impl S3Access for AllowAll {
    async fn check(&self, _cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        Ok(())
    }
}

fn service(signed: bool) -> S3Service {
    let mut builder = S3ServiceBuilder::new(Answering);
    if signed {
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        builder.set_access(AllowAll);
    }
    builder.build()
}

/// A request with the headers the load generator sends; signed when `sign` is set.
fn request(method: &str, body: &Bytes, payload_hash: &str, sign: bool) -> http::Request<Body> {
    let date = amz_date_now();
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://{HOST}{PATH}"))
        .header("host", HOST)
        .header("x-amz-content-sha256", payload_hash)
        .header("x-amz-date", &date)
        .header("content-length", body.len().to_string());
    if sign {
        let signer = Signer {
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            region: "us-east-1".into(),
        };
        let headers = [
            ("host", HOST),
            ("x-amz-content-sha256", payload_hash),
            ("x-amz-date", date.as_str()),
        ];
        let authorization = signer.authorization(method, PATH, &[], &headers, payload_hash, &date);
        builder = builder.header("authorization", authorization);
    }
    builder.body(Body::from(body.clone())).expect("request")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let unsigned = service(false);
    let signed = service(true);
    let empty = Bytes::new();
    let object = Bytes::from(vec![7u8; 4096]);
    let object_hash = sha256_hex(&object);

    let call = |svc: &S3Service, req: http::Request<Body>| {
        let resp = rt.block_on(svc.call(req)).expect("call");
        assert!(resp.status().is_success(), "{:?}", resp.status());
        black_box(resp);
    };
    // Each signed case is checked once first: a signature the verifier refused would be
    // measured as an error path.
    call(&signed, request("HEAD", &empty, EMPTY_SHA256, true));
    call(&signed, request("PUT", &object, UNSIGNED_PAYLOAD, true));
    call(&signed, request("PUT", &object, &object_hash, true));
    // And a request the verifier must refuse is refused: the signed cases measure verification.
    let refused = |req| match rt.block_on(signed.call(req)) {
        Ok(resp) => !resp.status().is_success(),
        Err(_) => true,
    };
    let mut forged = request("HEAD", &empty, EMPTY_SHA256, true);
    let mut auth = forged.headers()["authorization"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let last = auth.pop();
    auth.push(if last == Some('0') { '1' } else { '0' });
    forged
        .headers_mut()
        .insert("authorization", auth.parse().expect("header"));
    assert!(refused(forged), "a wrong signature is refused");
    assert!(
        refused(request("PUT", &object, &sha256_hex(b"other"), true)),
        "a body that does not match its signed hash is refused"
    );

    let cases: [(&str, &S3Service, &str, &Bytes, &str, bool); 5] = [
        (
            "head/unsigned, no verification (baseline)",
            &unsigned,
            "HEAD",
            &empty,
            EMPTY_SHA256,
            false,
        ),
        (
            "head/signed header",
            &signed,
            "HEAD",
            &empty,
            EMPTY_SHA256,
            true,
        ),
        (
            "put 4 KiB/unsigned, no verification (baseline)",
            &unsigned,
            "PUT",
            &object,
            UNSIGNED_PAYLOAD,
            false,
        ),
        (
            "put 4 KiB/signed header, UNSIGNED-PAYLOAD",
            &signed,
            "PUT",
            &object,
            UNSIGNED_PAYLOAD,
            true,
        ),
        (
            "put 4 KiB/signed header, SHA-256 payload",
            &signed,
            "PUT",
            &object,
            &object_hash,
            true,
        ),
    ];
    let mut g = c.benchmark_group("sigv4");
    g.throughput(Throughput::Elements(1));
    for (name, svc, method, body, hash, sign) in cases {
        g.bench_function(name, |b| {
            b.iter_batched(
                || request(method, body, hash, sign),
                |req| call(svc, req),
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
