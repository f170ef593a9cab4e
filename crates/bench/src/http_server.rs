//! `http-serve`: the HTTP baseline, a minimal hyper server with no storage and no authentication.
//!
//! It answers the requests the S3 load sends: `PUT /bucket` (200), `PUT /bucket/key` (reads and
//! discards the body, remembers the size), `HEAD`/`GET /bucket/key` (the key's deterministic
//! content, produced on the fly), `GET /bucket?list-type=2&prefix=…` (a minimal listing). It does
//! not check signatures: driven by `obhut-bench http`, the figure includes the client's SigV4
//! signing and HTTP/1.1 on both sides, and nothing else.

use crate::content::{Content, GenBody};
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

type Body = Either<GenBody, Full<Bytes>>;

#[derive(Default)]
struct State {
    /// Bucket → key → size.
    objects: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

pub async fn serve(addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!(
        "obhut-bench http-serve: listening on http://{} (no storage, no authentication)",
        listener.local_addr()?
    );
    let state = Arc::new(State::default());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(body.into())));
    *resp.status_mut() = status;
    resp
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) if !k.is_empty() => (percent_decode(b), Some(percent_decode(k))),
        Some((b, _)) => (percent_decode(b), None),
        None => (percent_decode(&path), None),
    };
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let resp = match (method, key) {
        (Method::PUT, None) => {
            if let Ok(mut objects) = state.objects.lock() {
                objects.entry(bucket).or_default();
            }
            reply(StatusCode::OK, "")
        }
        (Method::PUT, Some(key)) => {
            let mut body = req.into_body();
            let mut size = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => size += frame.data_ref().map_or(0, |d| d.len() as u64),
                    Err(e) => return Ok(reply(StatusCode::BAD_REQUEST, e.to_string())),
                }
            }
            if let Ok(mut objects) = state.objects.lock() {
                objects.entry(bucket).or_default().insert(key, size);
            }
            let mut resp = reply(StatusCode::OK, "");
            resp.headers_mut()
                .insert("etag", http::HeaderValue::from_static("\"bench\""));
            resp
        }
        (m @ (Method::GET | Method::HEAD), Some(key)) => {
            let size = state
                .objects
                .lock()
                .ok()
                .and_then(|o| o.get(&bucket).and_then(|b| b.get(&key)).copied());
            match size {
                None => reply(
                    StatusCode::NOT_FOUND,
                    "<Error><Code>NoSuchKey</Code></Error>",
                ),
                Some(size) => {
                    let body = if m == Method::HEAD {
                        Either::Right(Full::new(Bytes::new()))
                    } else {
                        Either::Left(GenBody::new(Content::for_key(&key), size))
                    };
                    let mut resp = Response::new(body);
                    resp.headers_mut().insert("content-length", size.into());
                    resp
                }
            }
        }
        (Method::GET, None) => {
            let prefix = query
                .split('&')
                .find_map(|p| p.strip_prefix("prefix="))
                .map(percent_decode)
                .unwrap_or_default();
            let keys: Vec<(String, u64)> = state
                .objects
                .lock()
                .ok()
                .and_then(|o| {
                    o.get(&bucket).map(|b| {
                        b.range(prefix.clone()..)
                            .take_while(|(k, _)| k.starts_with(&prefix))
                            .take(1000)
                            .map(|(k, s)| (k.clone(), *s))
                            .collect()
                    })
                })
                .unwrap_or_default();
            let mut xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><IsTruncated>false</IsTruncated>",
                xml_escape(&bucket),
                xml_escape(&prefix),
                keys.len()
            );
            for (k, s) in keys {
                xml.push_str(&format!(
                    "<Contents><Key>{}</Key><Size>{s}</Size></Contents>",
                    xml_escape(&k)
                ));
            }
            xml.push_str("</ListBucketResult>");
            reply(StatusCode::OK, xml)
        }
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, ""),
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::{PayloadSigning, S3Client, install_crypto_provider};
    use crate::sigv4::Signer;
    use std::time::Duration;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
    }

    /// The S3 client against the baseline server: put, head, verified get, list.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_s3_client_drives_the_baseline_server() {
        install_crypto_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        tokio::spawn(serve(addr));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let signer = Signer {
            access_key: "a".into(),
            secret_key: "s".into(),
            region: "r".into(),
        };
        let c = S3Client::new(
            &format!("http://{addr}"),
            signer,
            PayloadSigning::Sha256,
            2,
            Duration::from_secs(10),
            None,
        )
        .unwrap();
        c.create_bucket("b").await.unwrap();
        let size = 600_001;
        c.put("b", "p/k1", size).await.unwrap();
        assert_eq!(c.head("b", "p/k2").await.unwrap(), None);
        let o = c.get("b", "p/k1", size, true).await.unwrap();
        assert_eq!(o.bytes, size);
        assert!(o.verified && o.ttfb.is_some());
        assert!(c.get("b", "p/k1", size + 1, false).await.is_err());
        let (_, keys) = c.list("b", "p/").await.unwrap();
        assert_eq!(keys, 1);
    }
}
