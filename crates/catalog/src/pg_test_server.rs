//! A throwaway PostgreSQL server for the tests of one test binary: a cluster made with
//! `initdb` in a temporary directory, listening on 127.0.0.1 on a free port, started with
//! `pg_ctl` when the first test asks for it and stopped (its directory removed) when the test
//! process ends, by a watchdog that waits for it. Each test gets a schema of its own.
//!
//! A machine without PostgreSQL fails these tests, naming it; they are never skipped.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct TestServer {
    pub port: u16,
    /// The CA that signed the server's TLS certificate (for 127.0.0.1 and localhost).
    pub ca: PathBuf,
    /// A CA that signed nothing the server has.
    pub other_ca: PathBuf,
}

static SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();

/// The server programs: `OBHUT_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`
/// (Debian's layout), else the directory of `initdb` on the PATH.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("OBHUT_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
        return Err(format!(
            "PostgreSQL is not installed where OBHUT_PG_BINDIR says: no initdb in {}",
            dir.display()
        ));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return Ok(dir);
            }
        }
    }
    Err(
        "PostgreSQL is not installed: the PostgreSQL catalog's tests need its server programs \
         (initdb, pg_ctl, postgres), e.g. Debian's package postgresql (scripts/test installs it); \
         none found in OBHUT_PG_BINDIR, /usr/lib/postgresql/*/bin or the PATH"
            .into(),
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command run as the `postgres` user when we are root (initdb and postgres refuse root).
fn as_server_user(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) -> Result<(), String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("PostgreSQL test server: cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "PostgreSQL test server: {what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn start() -> Result<TestServer, String> {
    let bin = bin_dir()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("obhut-pg-test-{}-{nanos:x}", std::process::id()));
    let started = start_in(&bin, &dir);
    if started.is_err() {
        // A server that did not start leaves nothing behind.
        let _ = Command::new(bin.join("pg_ctl"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&dir);
    }
    started
}

fn start_in(bin: &Path, dir: &Path) -> Result<TestServer, String> {
    let root = is_root();
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if root {
        let mut chown = Command::new("chown");
        chown.arg("postgres:postgres").arg(&dir);
        run(chown, "chown postgres")?;
    }
    let data = dir.join("data");
    let mut initdb = as_server_user(root, &bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
    run(initdb, "initdb")?;
    // TLS: a CA of the test's own and a certificate for 127.0.0.1 and localhost.
    let certs = format!(
        "set -e; cd '{dir}'
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=obhut-test-ca 2>/dev/null
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=obhut-test-ca 2>/dev/null
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
         chmod 600 server.key",
        dir = dir.display()
    );
    let mut openssl = Command::new("sh");
    openssl.args(["-c", &certs]);
    run(openssl, "openssl (the test server's TLS certificate)")?;
    if root {
        let mut chown = Command::new("chown");
        chown
            .arg("postgres:postgres")
            .arg(dir.join("server.key"))
            .arg(dir.join("server.pem"));
        run(chown, "chown postgres")?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let mut pg_ctl = as_server_user(root, &bin.join("pg_ctl"));
    pg_ctl
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .arg("-o")
        .arg(format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c max_prepared_transactions=300 -c ssl=on -c ssl_cert_file={dir}/server.pem -c ssl_key_file={dir}/server.key",
            dir = dir.display()
        ))
        .args(["-w", "-t", "60", "start"]);
    run(pg_ctl, "pg_ctl start")?;
    // Stops the server and removes its directory once this process is gone, however it ends.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        runuser = if root { "runuser -u postgres -- " } else { "" },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the PostgreSQL test server's watchdog: {e}"))?;
    Ok(TestServer {
        port,
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
    })
}

/// The server of this test binary, started on first use.
pub fn server() -> &'static TestServer {
    match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// Options reaching database `db` of the test server as its superuser.
pub fn options(db: &str) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(server().port)
        .username("postgres")
        .database(db)
}

/// Runs one statement as the superuser on database `db`.
pub async fn admin(db: &str, sql: &str) {
    let mut c = PgConnection::connect_with(&options(db))
        .await
        .unwrap_or_else(|e| panic!("cannot reach the PostgreSQL test server: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close().await.unwrap();
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A name no other test of this binary uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A new, empty schema of the `postgres` database, and options whose search path is it.
pub async fn fresh_schema() -> PgConnectOptions {
    let schema = unique("t");
    admin("postgres", &format!("CREATE SCHEMA {schema}")).await;
    options("postgres").options([("search_path", schema.as_str())])
}
