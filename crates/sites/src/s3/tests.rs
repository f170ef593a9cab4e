//! S3Site against fake servers that misbehave on purpose: no answer, refused connections,
//! lost connections, 5xx, bodies cut short; and the retries that carry a write through them.
//! (The conformance suite runs against real S3 services: obhut itself in
//! `crates/obhut/tests/s3_site.rs`, Garage in `tests/garage_site.rs`.)

use super::*;
use futures::StreamExt;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECRET: &str = "S3CRET-never-print-me";

fn config(endpoint: &str) -> S3SiteConfig {
    let mut c = S3SiteConfig::new(endpoint, "bucket", "us-east-1", "AKTEST", SECRET);
    c.connect_timeout = Duration::from_millis(500);
    c.request_timeout = Duration::from_millis(500);
    c
}

fn test_site(endpoint: &str) -> S3Site {
    S3Site::connect("s3-test".into(), config(endpoint)).expect("valid config")
}

/// A server that reads each request's head and answers with `answer(head)`, or holds the
/// connection open without a word when that is `None`.
async fn fake_server(answer: fn(&str) -> Option<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                match answer(&String::from_utf8_lossy(&head)) {
                    Some(reply) => {
                        let _ = sock.write_all(&reply).await;
                        let _ = sock.shutdown().await;
                    }
                    None => {
                        // Silent until the client gives up (bounded: the test ends first).
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn reply(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

async fn read_all(stream: BlobStream) -> Result<Vec<u8>, SiteError> {
    let mut stream = stream;
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

fn assert_remote(e: &SiteError, status: Option<u16>, what: &str) {
    match e {
        SiteError::Remote {
            site, status: s, ..
        } => {
            assert_eq!(site, "s3-test", "{what}: error names the site");
            assert_eq!(*s, status, "{what}: status in {e}");
        }
        other => panic!("{what}: expected a Remote error, got {other}"),
    }
    let text = e.to_string();
    assert!(!text.contains(SECRET), "{what}: secret in {text}");
    assert!(!text.contains("X-Amz-Signature"), "{what}: a URL in {text}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let endpoint = fake_server(|_| None).await;
    let site = test_site(&endpoint);
    let started = Instant::now();
    let e = site.len(BlobId::random()).await.expect_err("no answer");
    assert_remote(&e, None, "len");
    assert!(e.to_string().contains("no answer within"), "{e}");
    let e = S3Site::open("s3-test", config(&endpoint), "x")
        .await
        .expect_err("no answer");
    assert_remote(&e, None, "open");
    let e = site.clear_temporary().await.expect_err("no answer");
    assert_remote(&e, None, "clear_temporary");
    // Bounded by the 500 ms request timeout, not by the server.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_refused_connection_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let site = test_site(&endpoint);
    let e = site.delete(BlobId::random()).await.expect_err("refused");
    assert_remote(&e, None, "delete");
    let w = site.create(BlobId::random()).await.expect("create");
    let e = w.commit().await.expect_err("refused");
    assert_remote(&e, None, "commit");
    let e = site.list().await.expect_err("refused");
    assert_remote(&e, None, "list");
}

#[tokio::test]
async fn server_errors_are_errors_never_success() {
    let endpoint = fake_server(|_| {
        Some(reply(
            "503 Service Unavailable",
            "content-type: application/xml\r\n",
            b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        ))
    })
    .await;
    let site = test_site(&endpoint);
    let blob = BlobId::random();
    let e = site.delete(blob).await.expect_err("5xx delete");
    assert_remote(&e, Some(503), "delete");
    assert!(e.to_string().contains("SlowDown"), "{e}");
    assert!(e.to_string().contains("delete blob"), "{e}");
    assert_remote(&site.len(blob).await.expect_err("5xx"), Some(503), "len");
    assert_remote(
        &site.read(blob, 0..10).await.err().expect("5xx"),
        Some(503),
        "read",
    );
    assert_remote(&site.list().await.expect_err("5xx"), Some(503), "list");
    assert_remote(
        &site.clear_temporary().await.expect_err("5xx"),
        Some(503),
        "clear",
    );
    let w = site.create(blob).await.expect("create");
    assert_remote(&w.commit().await.expect_err("5xx"), Some(503), "commit");
    let mut w = site.create(blob).await.expect("create");
    let big = Bytes::from(vec![0u8; S3SiteConfig::DEFAULT_PART_SIZE]);
    assert_remote(&w.write(big).await.expect_err("5xx"), Some(503), "part");
    assert!(
        w.write(Bytes::from_static(b"x")).await.is_err(),
        "a failed writer stays failed"
    );
    let e = S3Site::create("s3-test", config(&endpoint))
        .await
        .expect_err("5xx create");
    assert_remote(&e, Some(503), "create");
}

#[tokio::test]
async fn a_body_cut_off_is_an_error_and_a_short_blob_is_truncated() {
    // Promises 100 bytes, sends 50, hangs up: the transfer failed, not the blob.
    let endpoint = fake_server(|_| {
        let mut r = b"HTTP/1.1 206 Partial Content\r\nconnection: close\r\ncontent-length: 100\r\ncontent-range: bytes 0-99/100\r\n\r\n".to_vec();
        r.extend_from_slice(&[7u8; 50]);
        Some(r)
    })
    .await;
    let site = test_site(&endpoint);
    let stream = site.read(BlobId::random(), 0..100).await.expect("head");
    let e = read_all(stream).await.expect_err("cut off");
    assert_remote(&e, None, "read");

    // Honest and short: the blob ends at 50.
    let endpoint = fake_server(|_| {
        Some(reply(
            "206 Partial Content",
            "content-range: bytes 0-49/50\r\n",
            &[7u8; 50],
        ))
    })
    .await;
    let site = test_site(&endpoint);
    let stream = site.read(BlobId::random(), 0..100).await.expect("head");
    assert!(matches!(
        read_all(stream).await,
        Err(SiteError::Truncated { .. })
    ));
}

#[tokio::test]
async fn a_server_that_ignores_the_range_still_gives_the_range() {
    let endpoint = fake_server(|_| {
        let body: Vec<u8> = (0..=255u8).collect();
        Some(reply("200 OK", "", &body))
    })
    .await;
    let site = test_site(&endpoint);
    let stream = site.read(BlobId::random(), 10..20).await.expect("read");
    assert_eq!(
        read_all(stream).await.expect("stream"),
        (10..20u8).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_missing_key_is_not_found_but_a_missing_bucket_is_not() {
    let endpoint = fake_server(|head| {
        let code = if head.contains("/bucket/blobs/") {
            "NoSuchKey"
        } else {
            "NoSuchBucket"
        };
        Some(reply(
            "404 Not Found",
            "",
            format!("<Error><Code>{code}</Code><Message>m</Message></Error>").as_bytes(),
        ))
    })
    .await;
    let site = test_site(&endpoint);
    let blob = BlobId::random();
    assert!(
        site.read(blob, 0..1)
            .await
            .err()
            .expect("404")
            .is_not_found()
    );
    site.delete(blob)
        .await
        .expect("deleting a missing key succeeds");
    // The identity object is not under blobs/: this server says the bucket is gone.
    let e = S3Site::open("s3-test", config(&endpoint), "x")
        .await
        .expect_err("no bucket");
    assert!(matches!(e, SiteError::Identity { .. }), "{e}");
    let e = S3Site::create("s3-test", config(&endpoint))
        .await
        .expect_err("no bucket");
    assert_remote(&e, Some(404), "create");
}

#[tokio::test]
async fn a_200_that_carries_an_error_does_not_commit() {
    // CompleteMultipartUpload may answer 200 with an <Error> body.
    let endpoint = fake_server(|head| {
        if head.starts_with("POST") && head.contains("uploads") {
            return Some(reply(
                "200 OK",
                "",
                b"<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>bucket</Bucket><Key>k</Key><UploadId>up1</UploadId></InitiateMultipartUploadResult>",
            ));
        }
        if head.starts_with("PUT") {
            return Some(reply("200 OK", "etag: \"abc\"\r\n", b""));
        }
        if head.starts_with("POST") {
            return Some(reply(
                "200 OK",
                "",
                b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
            ));
        }
        Some(reply("204 No Content", "", b""))
    })
    .await;
    let site = test_site(&endpoint);
    let mut w = site.create(BlobId::random()).await.expect("create");
    w.write(Bytes::from(vec![1u8; S3SiteConfig::DEFAULT_PART_SIZE + 1]))
        .await
        .expect("first part");
    let e = w.commit().await.expect_err("error in a 200");
    assert_remote(&e, Some(200), "complete");
    assert!(e.to_string().contains("InternalError"), "{e}");
}

#[tokio::test]
async fn the_secret_key_is_never_printed() {
    let c = config("http://user:pw@127.0.0.1:1");
    let debug = format!("{c:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(!debug.contains("pw"), "{debug}");
    let site = S3Site::connect("s3-test".into(), c).expect("config");
    let debug = format!("{site:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(!debug.contains("AKTEST"), "{debug}");
}

#[test]
fn unusable_configurations_are_refused() {
    for (what, change) in [
        (
            "scheme",
            (|c: &mut S3SiteConfig| c.endpoint = "ftp://x".into()) as fn(&mut _),
        ),
        ("url", |c| c.endpoint = "not a url".into()),
        ("bucket", |c| c.bucket = String::new()),
        ("part size", |c| c.part_size = 1024),
        ("secret", |c| c.secret_key = String::new()),
        ("timeout", |c| c.request_timeout = Duration::ZERO),
        ("ca", |c| c.ca_pem = Some("not pem".into())),
    ] {
        let mut c = config("http://127.0.0.1:1");
        change(&mut c);
        let e = S3Site::connect("s3-test".into(), c).expect_err(what);
        assert!(matches!(e, SiteError::Config { .. }), "{what}: {e}");
        assert!(!e.to_string().contains(SECRET));
    }
}

#[test]
fn only_old_enough_uploads_are_leftovers() {
    let mut c = config("http://127.0.0.1:1");
    let zero = S3Site::connect("s3-test".into(), c.clone()).expect("config");
    assert!(zero.is_leftover(None));
    c.temporary_min_age = Duration::from_secs(3600);
    let hour = S3Site::connect("s3-test".into(), c).expect("config");
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    let young = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(5);
    assert!(hour.is_leftover(Some(&old.to_string())));
    assert!(!hour.is_leftover(Some(&young.to_string())));
    assert!(!hour.is_leftover(Some("yesterday")));
    assert!(!hour.is_leftover(None));
}

fn multipart_server(head: &str, complete_len: usize) -> Option<Vec<u8>> {
    if head.starts_with("POST") && head.contains("uploads") {
        return Some(reply(
            "200 OK",
            "",
            b"<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><UploadId>up1</UploadId></InitiateMultipartUploadResult>",
        ));
    }
    if head.starts_with("PUT") {
        return Some(reply("200 OK", "etag: \"abc\"\r\n", b""));
    }
    if head.starts_with("POST") {
        return Some(reply(
            "200 OK",
            "",
            b"<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><ETag>\"x-2\"</ETag></CompleteMultipartUploadResult>",
        ));
    }
    if head.starts_with("HEAD") {
        // A HEAD answer's content-length describes the object; no body follows.
        return Some(
            format!(
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {complete_len}\r\n\r\n"
            )
            .into_bytes(),
        );
    }
    Some(reply("204 No Content", "", b""))
}

#[tokio::test]
async fn a_completed_upload_of_the_wrong_length_does_not_commit() {
    let len = S3SiteConfig::DEFAULT_PART_SIZE + 1;
    let good = fake_server(|h| multipart_server(h, S3SiteConfig::DEFAULT_PART_SIZE + 1)).await;
    let mut w = test_site(&good)
        .create(BlobId::random())
        .await
        .expect("create");
    w.write(Bytes::from(vec![1u8; len])).await.expect("write");
    assert_eq!(w.commit().await.expect("commit"), len as u64);

    let short = fake_server(|h| multipart_server(h, 5)).await;
    let mut w = test_site(&short)
        .create(BlobId::random())
        .await
        .expect("create");
    w.write(Bytes::from(vec![1u8; len])).await.expect("write");
    let e = w.commit().await.expect_err("a part went missing");
    assert_remote(&e, None, "commit");
    assert!(e.to_string().contains("holds 5 bytes"), "{e}");
}

#[tokio::test]
async fn a_write_cut_short_poisons_the_writer() {
    // Uploads start, parts never get an answer.
    let endpoint = fake_server(|h| {
        if h.starts_with("PUT") {
            None
        } else {
            multipart_server(h, 0)
        }
    })
    .await;
    let site = test_site(&endpoint);
    let mut w = site.create(BlobId::random()).await.expect("create");
    let part = Bytes::from(vec![1u8; S3SiteConfig::DEFAULT_PART_SIZE]);
    // The caller gives up before the request timeout: the part's fate is unknown.
    let cut = tokio::time::timeout(Duration::from_millis(100), w.write(part)).await;
    assert!(cut.is_err(), "the write was cut short");
    assert!(w.write(Bytes::from_static(b"more")).await.is_err());
    assert!(
        w.commit().await.is_err(),
        "a writer with a lost part never commits"
    );
}

/// What a [`counting_server`] does with one request.
enum Answer {
    Reply(Vec<u8>),
    /// Closes the connection without a word, as a lost link does.
    HangUp,
}

/// A server that reads each request whole (head and body), counts it, and answers with
/// `answer(n, head)`, `n` being the number of requests seen before this one. Returns its
/// endpoint and the heads of the requests it got.
async fn counting_server(
    answer: impl Fn(usize, &str) -> Answer + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(answer);
    let heads = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let answer = Arc::clone(&answer);
            let heads = Arc::clone(&heads);
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                let head_end = loop {
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
                let body_len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while data.len() < head_end + body_len {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let n = {
                    let mut heads = heads.lock().expect("heads");
                    heads.push(head.clone());
                    heads.len() - 1
                };
                match answer(n, &head) {
                    Answer::Reply(reply) => {
                        let _ = sock.write_all(&reply).await;
                        let _ = sock.shutdown().await;
                    }
                    Answer::HangUp => drop(sock),
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn heads_of(seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    seen.lock().expect("heads").clone()
}

#[tokio::test]
async fn a_write_that_meets_two_dropped_connections_succeeds() {
    let (endpoint, seen) = counting_server(|n, _| {
        if n < 2 {
            Answer::HangUp
        } else {
            Answer::Reply(reply("200 OK", "etag: \"e\"\r\n", b""))
        }
    })
    .await;
    let mut c = config(&endpoint);
    c.request_timeout = Duration::from_secs(10);
    let site = S3Site::connect("s3-test".into(), c).expect("config");
    let mut w = site.create(BlobId::random()).await.expect("create");
    w.write(Bytes::from_static(b"ciphertext"))
        .await
        .expect("write");
    assert_eq!(
        w.commit().await.expect("commit after two lost connections"),
        10
    );
    let heads = heads_of(&seen);
    assert_eq!(
        heads.len(),
        3,
        "two lost attempts and one answered: {heads:?}"
    );
    assert!(heads.iter().all(|h| h.starts_with("PUT ")), "{heads:?}");
}

#[tokio::test]
async fn slow_down_is_retried_and_forbidden_is_not() {
    let (endpoint, seen) = counting_server(|n, _| {
        if n < 2 {
            Answer::Reply(reply(
                "503 Service Unavailable",
                "",
                b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
            ))
        } else {
            Answer::Reply(reply("204 No Content", "", b""))
        }
    })
    .await;
    let mut c = config(&endpoint);
    c.request_timeout = Duration::from_secs(10);
    let site = S3Site::connect("s3-test".into(), c.clone()).expect("config");
    site.delete(BlobId::random())
        .await
        .expect("delete after two SlowDowns");
    assert_eq!(heads_of(&seen).len(), 3);

    let (endpoint, seen) = counting_server(|_, _| {
        Answer::Reply(reply(
            "403 Forbidden",
            "",
            b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        ))
    })
    .await;
    c.endpoint = endpoint;
    let site = S3Site::connect("s3-test".into(), c).expect("config");
    let w = site.create(BlobId::random()).await.expect("create");
    let e = w.commit().await.expect_err("403");
    assert_remote(&e, Some(403), "commit");
    assert!(e.to_string().contains("AccessDenied"), "{e}");
    assert_eq!(heads_of(&seen).len(), 1, "a 403 is final: sent once");
}

#[tokio::test]
async fn a_lost_part_is_sent_again_and_acknowledged_parts_are_not() {
    let len = 3 * S3SiteConfig::DEFAULT_PART_SIZE + 5;
    // The first attempt at part 2 loses its connection.
    let (endpoint, seen) = counting_server(move |_, head| {
        static PART_TWO_LOST: std::sync::atomic::AtomicBool =
            std::sync::atomic::AtomicBool::new(false);
        if head.starts_with("PUT")
            && head.contains("partNumber=2&")
            && !PART_TWO_LOST.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Answer::HangUp;
        }
        match multipart_server(head, len) {
            Some(r) => Answer::Reply(r),
            None => Answer::HangUp,
        }
    })
    .await;
    let mut c = config(&endpoint);
    c.request_timeout = Duration::from_secs(10);
    let site = S3Site::connect("s3-test".into(), c).expect("config");
    let mut w = site.create(BlobId::random()).await.expect("create");
    for _ in 0..3 {
        w.write(Bytes::from(vec![2u8; S3SiteConfig::DEFAULT_PART_SIZE]))
            .await
            .expect("a part, retried if need be");
    }
    w.write(Bytes::from_static(b"12345")).await.expect("rest");
    assert_eq!(w.commit().await.expect("commit"), len as u64);
    let heads = heads_of(&seen);
    let sends = |n: u16| {
        heads
            .iter()
            .filter(|h| h.starts_with("PUT") && h.contains(&format!("partNumber={n}&")))
            .count()
    };
    assert_eq!(sends(1), 1, "part 1 was acknowledged: sent once");
    assert_eq!(sends(2), 2, "part 2 lost its first connection: sent twice");
    assert_eq!(sends(3), 1, "part 3 sent once");
    assert_eq!(sends(4), 1, "the last part sent once");
    let starts = heads
        .iter()
        .filter(|h| h.starts_with("POST") && h.contains("uploads"))
        .count();
    assert_eq!(starts, 1, "one upload: {heads:?}");
}

#[tokio::test]
async fn a_dead_site_fails_within_the_deadline_naming_the_site() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let mut c = config(&endpoint);
    let deadline = Duration::from_secs(2);
    c.request_timeout = deadline;
    let site = S3Site::connect("s3-test".into(), c).expect("config");
    let mut w = site.create(BlobId::random()).await.expect("create");
    w.write(Bytes::from_static(b"x")).await.expect("buffered");
    let started = Instant::now();
    let e = w.commit().await.expect_err("dead site");
    let took = started.elapsed();
    assert_remote(&e, None, "commit");
    let text = e.to_string();
    assert!(
        text.starts_with("site s3-test: commit blob: no answer after "),
        "{text}"
    );
    let attempts: u32 = text
        .split("no answer after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count in {text}"));
    assert!(
        attempts >= 3,
        "a refused connection is retried with backoff: {text}"
    );
    // Bounded by the deadline (and a loaded machine's scheduling), not by the retries.
    assert!(took < deadline * 2, "took {took:?}, deadline {deadline:?}");
}

#[tokio::test]
async fn a_read_from_a_dead_site_gives_up_soon_for_another_replica() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let mut c = config(&endpoint);
    c.request_timeout = Duration::from_secs(60);
    c.retry_for = Duration::from_secs(60);
    let site = S3Site::connect("s3-test".into(), c).expect("config");
    let started = Instant::now();
    let e = site
        .read(BlobId::random(), 0..10)
        .await
        .err()
        .expect("dead");
    assert_remote(&e, None, "read");
    assert!(e.to_string().contains("no answer after"), "{e}");
    // Retried for about a second (`BRIEF_RETRY`), not for the minute a write would be.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let e = site.len(BlobId::random()).await.expect_err("dead");
    assert_remote(&e, None, "len");
}
