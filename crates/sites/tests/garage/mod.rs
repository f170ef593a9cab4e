//! A real Garage (the S3 cluster obhut's S3 sites are tested against) started for a test run:
//! one node on loopback ports chosen free, its own directories under a temporary directory,
//! `replication_factor = 1`, a layout of that one node, one access key and a bucket per test.
//!
//! Garage is AGPL-3.0 and runs as a server of its own, never linked into obhut: this module
//! only starts its binary (`OBHUT_GARAGE_BIN`, else `$OBHUT_TOOLS_ROOT/bin/garage`, else
//! `/var/tmp/obhut-tools/bin/garage`, where `scripts/test` installs it) and drives its CLI. A
//! missing binary fails the test with a message naming it; nothing is skipped.
//!
//! It owns the node's RPC secret and the key's secret: the config file holding the former is
//! 0600, and neither appears in a message, a panic or `Debug`. The server is stopped, and its
//! directory removed, when the test process exits however it exits (a watchdog shell reads the
//! test process's end of a pipe and kills Garage at end of file).

#![allow(dead_code)]

pub mod proxy;

use obhut_core::BlobId;
use obhut_sites::S3SiteConfig;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The version `scripts/test` installs.
pub const GARAGE_VERSION: &str = "2.5.0";
/// The SigV4 region the node answers to.
pub const REGION: &str = "garage";
/// How long a node may take to answer its CLI after it starts, on a loaded two-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running single-node Garage with one access key allowed to create buckets.
pub struct Garage {
    bin: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub endpoint: String,
    key_id: String,
    secret: String,
    /// The pipe the watchdog waits on: Garage lives as long as this end is open.
    _lifeline: Mutex<ChildStdin>,
    /// The watchdog shell; it ends with this process (it is never waited for).
    _watchdog: Mutex<Child>,
}

impl std::fmt::Debug for Garage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Garage")
            .field("dir", &self.dir)
            .field("endpoint", &self.endpoint)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The garage binary to run, or a panic that says where it was looked for and how to get it.
#[must_use]
pub fn garage_bin() -> PathBuf {
    let bin = std::env::var_os("OBHUT_GARAGE_BIN").map_or_else(
        || {
            let root = std::env::var_os("OBHUT_TOOLS_ROOT")
                .map_or_else(|| PathBuf::from("/var/tmp/obhut-tools"), PathBuf::from);
            root.join("bin").join("garage")
        },
        PathBuf::from,
    );
    let version = Command::new(&bin).arg("--version").output();
    match version {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(GARAGE_VERSION) => bin,
        Ok(out) => panic!(
            "{} is not garage {GARAGE_VERSION} (it says {:?}); scripts/test installs it",
            bin.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        Err(e) => panic!(
            "garage {GARAGE_VERSION} is needed to test S3 sites against a real cluster, and {} \
             cannot be run ({e}): run scripts/test --setup-only (cargo install garage --locked \
             --version {GARAGE_VERSION} --root /var/tmp/obhut-tools), or set OBHUT_GARAGE_BIN",
            bin.display()
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// 256 random bits in hex (Garage's RPC secret).
fn random_hex64() -> String {
    format!("{}{}", BlobId::random(), BlobId::random())
}

impl Garage {
    /// One node shared by every test of this process, started by the first that asks.
    /// Blocking: call it from `spawn_blocking` in async tests.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Garage> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts a node of its own and waits until it serves S3 requests. Blocking.
    #[must_use]
    pub fn start() -> Self {
        let bin = garage_bin();
        let dir = tempfile::Builder::new()
            .prefix("obhut-garage-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let (s3_port, rpc_port) = loop {
            let (a, b) = (free_port(), free_port());
            if a != b {
                break (a, b);
            }
        };
        let config = dir.join("garage.toml");
        let text = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
"#,
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            secret = random_hex64(),
        );
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .expect("write garage.toml");
        let log = std::fs::File::create(dir.join("garage.log")).expect("garage.log");
        // The watchdog: Garage in the background, killed (and its directory removed) when the
        // pipe from this process reaches end of file, i.e. when this process is gone.
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                r#""$0" -c "$1" server & pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null
wait "$pid"
rm -rf "$2""#,
            )
            .arg(&bin)
            .arg(&config)
            .arg(&dir)
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("garage.log"))
            .stderr(log)
            .spawn()
            .expect("start garage's watchdog shell");
        let lifeline = watchdog.stdin.take().expect("the watchdog's stdin");
        let mut garage = Self {
            bin,
            dir,
            config,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            key_id: String::new(),
            secret: String::new(),
            _lifeline: Mutex::new(lifeline),
            _watchdog: Mutex::new(watchdog),
        };
        garage.wait_until_up();
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap_or_default().to_owned();
        assert!(!node.is_empty(), "garage node id printed no id");
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        let key = garage.cli(&["key", "create", "obhut-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim_start_matches(':').trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| panic!("garage key create printed no {name}"))
        };
        garage.key_id = field("Key ID");
        garage.secret = field("Secret key");
        garage
    }

    fn wait_until_up(&self) {
        let started = Instant::now();
        loop {
            let status = Command::new(&self.bin)
                .arg("-c")
                .arg(&self.config)
                .arg("status")
                .stdin(Stdio::null())
                .output()
                .expect("run garage status");
            if status.status.success() {
                return;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "garage did not answer `garage status` within {START_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `garage -c CONFIG ARGS…` and returns what it printed; panics with its error
    /// output (never a secret: no command given here prints one on failure) if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run garage {}: {e}", args.join(" ")));
        assert!(
            out.status.success(),
            "garage {} failed ({}): {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates `bucket` and gives this node's key read, write and owner rights on it. Blocking.
    pub fn new_bucket(&self, bucket: &str) {
        self.cli(&["bucket", "create", bucket]);
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            &self.key_id,
        ]);
    }

    /// A site configuration for `bucket` on this node (through `endpoint`, e.g. a proxy in
    /// front of it), with short timeouts for tests.
    #[must_use]
    pub fn site_config_via(&self, endpoint: &str, bucket: &str) -> S3SiteConfig {
        let mut c = S3SiteConfig::new(endpoint, bucket, REGION, &self.key_id, &self.secret);
        c.connect_timeout = Duration::from_secs(5);
        c.request_timeout = Duration::from_secs(30);
        c
    }

    #[must_use]
    pub fn site_config(&self, bucket: &str) -> S3SiteConfig {
        self.site_config_via(&self.endpoint, bucket)
    }

    /// The node's secret key, for tests that check it never shows.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.secret
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The end of the node's log, for failure messages.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// A bucket name no other test of this process uses.
#[must_use]
pub fn unique_bucket(prefix: &str) -> String {
    format!("{prefix}-{}", &BlobId::random().to_string()[..12])
}
