//! obhut as an S3 site: `S3Site` against a real `obhut serve` (path-style SigV4 requests over
//! loopback), through identity checks, the sites' shared conformance suite (one test per check,
//! each on a server of its own), and a server that dies under it.
//!
//! Each test starts its own server on free ports in its own temporary data directory, reads
//! the demo tenant's credentials from `demo.env`, and kills the server when it ends (a Drop
//! guard, so a failing test leaks no process).

use obhut_core::BlobId;
use obhut_sites::{S3Site, S3SiteConfig, Site, SiteError};
use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `obhut serve` may take to become healthy on a loaded two-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// A call that has not failed by then hangs, which is the bug these tests guard against.
const NO_HANG: Duration = Duration::from_secs(60);

/// A running `obhut serve`, killed when dropped.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
    s3_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let log = File::create(dir.path().join("obhut.log")).expect("log file");
        let s3_port = free_port();
        let mut admin_port = free_port();
        while admin_port == s3_port {
            admin_port = free_port();
        }
        let child = Command::new(env!("CARGO_BIN_EXE_obhut"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .arg("--s3-addr")
            .arg(format!("127.0.0.1:{s3_port}"))
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{admin_port}"))
            .env_remove("OBHUT_TOKEN")
            .env_remove("OBHUT_ADMIN_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start obhut serve");
        let mut server = Self {
            child,
            dir,
            s3_url: format!("http://127.0.0.1:{s3_port}"),
        };
        let health = format!("http://127.0.0.1:{admin_port}/v1/health");
        // The health probe's client (not S3Site's, which brings its own TLS setup) needs the
        // process-wide rustls provider, as the binary installs it.
        obhut_trustee_client::remote::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "obhut serve exited ({status}) before it was healthy:\n{}",
                    server.log_tail()
                );
            }
            if let Ok(resp) = http.get(&health).send().await
                && resp.status().is_success()
            {
                return server;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "obhut serve not healthy after {START_TIMEOUT:?}:\n{}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("obhut.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The demo tenant's S3 credentials, from `<data-dir>/demo.env`.
    fn demo_env(&self) -> HashMap<String, String> {
        let text = std::fs::read_to_string(self.dir.path().join("data").join("demo.env"))
            .expect("demo.env is written on first start");
        text.lines()
            .filter_map(|l| l.trim().trim_start_matches("export ").split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect()
    }

    /// A site configuration for `bucket` with the demo tenant's keys and short timeouts.
    fn config(&self, bucket: &str) -> S3SiteConfig {
        let env = self.demo_env();
        let get = |k: &str| {
            env.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("demo.env has no {k}"))
        };
        let mut config = S3SiteConfig::new(
            self.s3_url.clone(),
            bucket,
            get("AWS_REGION"),
            get("AWS_ACCESS_KEY_ID"),
            get("AWS_SECRET_ACCESS_KEY"),
        );
        config.connect_timeout = Duration::from_secs(2);
        config.request_timeout = Duration::from_secs(30);
        config
    }
}

async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(NO_HANG, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {NO_HANG:?}"))
}

fn assert_identity(result: Result<S3Site, SiteError>, what: &str) {
    match result {
        Err(SiteError::Identity { .. }) => {}
        Err(e) => panic!("{what}: expected an Identity error, got {e}"),
        Ok(site) => panic!("{what}: opened {site:?}"),
    }
}

/// A fresh site in a bucket of a server of its own, for one check of the conformance suite.
async fn conformance_site() -> (S3Site, Server) {
    let server = Server::start().await;
    let config = server.config("site-c");
    S3Site::create_bucket("s3-c", config.clone())
        .await
        .unwrap_or_else(|e| panic!("create bucket: {e}\n{}", server.log_tail()));
    let (site, _) = S3Site::create("s3-c", config)
        .await
        .unwrap_or_else(|e| panic!("create site: {e}\n{}", server.log_tail()));
    (site, server)
}

mod obhut_serves_as_a_conforming_s3_site {
    obhut_sites::site_conformance_tests!(super::conformance_site());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_becomes_a_site_once_and_opens_only_with_its_identity() {
    let server = Server::start().await;
    let config = server.config("site-a");
    S3Site::create_bucket("s3-a", config.clone())
        .await
        .unwrap_or_else(|e| panic!("create bucket: {e}\n{}", server.log_tail()));
    S3Site::create_bucket("s3-a", config.clone())
        .await
        .expect("creating a bucket one owns already is fine");

    let (site, identity) = S3Site::create("s3-a", config.clone())
        .await
        .unwrap_or_else(|e| panic!("create site: {e}\n{}", server.log_tail()));
    assert_eq!(site.id(), "s3-a");

    // It is a site now: never made one again, whatever the id.
    for id in ["s3-a", "s3-other"] {
        match S3Site::create(id, config.clone()).await {
            Err(SiteError::Identity { reason, .. }) => {
                assert!(reason.contains("already"), "{reason}");
            }
            Err(e) => panic!("second create: expected Identity, got {e}"),
            Ok(_) => panic!("a bucket that is a site was made a site again"),
        }
    }
    S3Site::open("s3-a", config.clone(), &identity)
        .await
        .expect("open with the recorded identity");

    // Two registrations racing for one bucket: exactly one wins (the identity object is
    // written with If-None-Match: *, so the loser cannot overwrite it).
    let race = server.config("site-race");
    S3Site::create_bucket("s3-r", race.clone())
        .await
        .expect("create bucket");
    let (one, two) = tokio::join!(
        S3Site::create("s3-r1", race.clone()),
        S3Site::create("s3-r2", race.clone())
    );
    let winners = [&one, &two].iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        winners,
        1,
        "racing creates: {:?} / {:?}",
        one.err(),
        two.err()
    );
    let (winner, winner_identity) = match (one, two) {
        (Ok((s, i)), _) | (_, Ok((s, i))) => (s.id().to_owned(), i),
        _ => unreachable!(),
    };
    S3Site::open(winner, race, &winner_identity)
        .await
        .expect("the winner's identity is the one in the bucket");
    assert_identity(
        S3Site::open("s3-a", config.clone(), "another-identity").await,
        "a wrong identity",
    );
    assert_identity(
        S3Site::open("s3-b", config.clone(), &identity).await,
        "another site's id",
    );
    assert_identity(
        S3Site::open("s3-a", config.clone(), "").await,
        "an empty identity",
    );
    assert_identity(
        S3Site::open("s3-a", server.config("no-such-bucket"), &identity).await,
        "a missing bucket",
    );

    // An empty bucket is not the site, and opening it writes nothing: it can still be made one.
    let empty = server.config("site-empty");
    S3Site::create_bucket("s3-e", empty.clone())
        .await
        .expect("create bucket");
    assert_identity(
        S3Site::open("s3-e", empty.clone(), &identity).await,
        "a bucket without an identity",
    );
    S3Site::create("s3-e", empty)
        .await
        .expect("the empty bucket was left untouched, so it can become a site");

    // Wrong credentials are a refusal that names the site and never shows the secret.
    let mut wrong = config.clone();
    wrong.secret_key = "WRONG-secret-do-not-print".into();
    match S3Site::open("s3-a", wrong.clone(), &identity).await {
        Err(
            e @ SiteError::Remote {
                status: Some(403), ..
            },
        ) => {
            let text = e.to_string();
            assert!(text.contains("s3-a"), "{text}");
            assert!(!text.contains(&wrong.secret_key), "{text}");
            assert!(!text.contains(&config.secret_key), "{text}");
        }
        Err(e) => panic!("wrong secret: expected a 403 Remote error, got {e}"),
        Ok(_) => panic!("opened with a wrong secret"),
    }
    let debug = format!("{config:?} {site:?}");
    assert!(!debug.contains(&config.secret_key), "{debug}");

    assert_eq!(site.capacity().await.expect("capacity"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_makes_every_call_fail_never_hang() {
    let server = Server::start().await;
    let mut config = server.config("site-dead");
    S3Site::create_bucket("s3-d", config.clone())
        .await
        .expect("create bucket");
    let (site, identity) = S3Site::create("s3-d", config.clone())
        .await
        .expect("create site");
    let blob = BlobId::random();
    site.create(blob)
        .await
        .expect("create")
        .commit()
        .await
        .expect("commit");
    assert_eq!(site.len(blob).await.expect("len"), 0);
    let writer = site.create(BlobId::random()).await.expect("create");

    drop(server);

    let dead = |r: Result<(), SiteError>, what: &str| match r {
        Err(SiteError::Remote { site, op, .. }) => {
            assert_eq!(site, "s3-d", "{what}: the error names the site");
            assert!(!op.is_empty());
        }
        Err(e) => panic!("{what}: expected a Remote error, got {e}"),
        Ok(()) => panic!("{what} succeeded against a dead server"),
    };
    dead(bounded("len", site.len(blob)).await.map(drop), "len");
    dead(
        bounded("read", site.read(blob, 0..1)).await.map(drop),
        "read",
    );
    dead(bounded("delete", site.delete(blob)).await, "delete");
    dead(bounded("list", site.list()).await.map(drop), "list");
    dead(
        bounded("clear_temporary", site.clear_temporary())
            .await
            .map(drop),
        "clear_temporary",
    );
    dead(bounded("commit", writer.commit()).await.map(drop), "commit");
    config.connect_timeout = Duration::from_millis(500);
    dead(
        bounded("open", S3Site::open("s3-d", config, &identity))
            .await
            .map(drop),
        "open",
    );
}
