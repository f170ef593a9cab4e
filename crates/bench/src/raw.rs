//! The disk baselines: what the storage under obhut can do with no server in between.
//!
//! `raw-write` stores every object in each directory durably, the way a careful store must: create
//! a temporary file, write, fsync, rename over the final name, fsync the directory; the
//! directories are written in parallel (one blocking thread each), as obhut writes its sites.
//! `raw-read` reads the files back. Both use the same bodies, keys, workers and statistics as the
//! S3 load, so their figures compare directly. Reads come from the page cache when the files are
//! in it, as obhut's do.

use crate::content::{CHUNK, Content, Verifier, sampled};
use crate::runner::{Outcome, Workload};
use crate::s3::key_name;
use anyhow::{Context, Result, anyhow, bail};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Writes one object durably into `dir` (see the module doc). `unique` keeps concurrent temporary
/// files apart.
pub fn write_durable(dir: &Path, key: &str, size: u64, unique: u64) -> Result<()> {
    let target = dir.join(key);
    let parent = target
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", target.display()))?;
    let file_name = target
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", target.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = parent.join(format!(".{file_name}.{unique}.tmp"));
    let content = Content::for_key(key);
    let result = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mut buf = vec![0u8; usize::try_from(size.min(CHUNK as u64)).unwrap_or(CHUNK)];
        let mut offset = 0u64;
        while offset < size {
            let n = usize::try_from(size - offset).map_or(buf.len(), |left| left.min(buf.len()));
            content.fill(offset, &mut buf[..n]);
            file.write_all(&buf[..n])?;
            offset += n as u64;
        }
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &target)?;
        File::open(parent)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("durable write of {}", target.display()));
    }
    Ok(())
}

/// Reads one file to the end; returns the bytes read and the time to the first read.
pub fn read_file(path: &Path, key: &str, verify: bool, start: Instant) -> Result<Outcome> {
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = vec![0u8; usize::try_from(size.clamp(1, CHUNK as u64)).unwrap_or(CHUNK)];
    let mut verifier = verify.then(|| Verifier::new(Content::for_key(key)));
    let mut received = 0u64;
    let mut ttfb = None;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        ttfb.get_or_insert_with(|| start.elapsed());
        if let Some(v) = verifier.as_mut()
            && let Err(at) = v.check(&buf[..n])
        {
            bail!("{}: wrong content at byte {at}", path.display());
        }
        received += n as u64;
    }
    Ok(Outcome {
        bytes: received,
        ttfb: Some(ttfb.unwrap_or_else(|| start.elapsed())),
        verified: verify,
    })
}

/// Creates the directory that will hold the keys under `prefix` in each of `dirs`.
pub fn prepare_dirs(dirs: &[PathBuf], prefix: &str) -> Result<()> {
    for dir in dirs {
        let sub = dir.join(key_name(prefix, 0));
        if let Some(parent) = sub.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    Ok(())
}

pub struct RawWrite {
    pub dirs: Vec<PathBuf>,
    pub prefix: String,
    pub size: u64,
}

impl Workload for RawWrite {
    fn op_name(&self, _i: u64) -> &'static str {
        "write"
    }

    async fn run(&self, i: u64, key: u64) -> Result<Outcome> {
        let name = key_name(&self.prefix, key);
        let size = self.size;
        let writes: Vec<_> = self
            .dirs
            .iter()
            .map(|dir| {
                let (dir, name) = (dir.clone(), name.clone());
                tokio::task::spawn_blocking(move || write_durable(&dir, &name, size, i))
            })
            .collect();
        for write in writes {
            write.await.context("writer thread failed")??;
        }
        Ok(Outcome {
            bytes: size,
            ttfb: None,
            verified: false,
        })
    }
}

pub struct RawRead {
    pub dirs: Vec<PathBuf>,
    pub prefix: String,
    pub size: u64,
    pub verify_sample: f64,
}

impl RawRead {
    fn path(&self, i: u64, key: &str) -> PathBuf {
        let n = self.dirs.len().max(1) as u64;
        let d = usize::try_from(i % n).unwrap_or(0);
        self.dirs
            .get(d)
            .map_or_else(|| PathBuf::from(key), |dir| dir.join(key))
    }
}

impl Workload for RawRead {
    fn op_name(&self, _i: u64) -> &'static str {
        "read"
    }

    async fn run(&self, i: u64, key: u64) -> Result<Outcome> {
        let name = key_name(&self.prefix, key);
        let path = self.path(i, &name);
        let (size, verify) = (self.size, sampled(i, self.verify_sample));
        let start = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || read_file(&path, &name, verify, start))
            .await
            .context("reader thread failed")??;
        if outcome.bytes != size {
            bail!("read {} bytes, expected {size}", outcome.bytes);
        }
        Ok(outcome)
    }
}

/// The untimed preparation of `raw-read`: writes every file that is missing or has the wrong size,
/// in every directory.
pub struct RawPrefill {
    pub dirs: Vec<PathBuf>,
    pub prefix: String,
    pub size: u64,
}

impl Workload for RawPrefill {
    fn op_name(&self, _i: u64) -> &'static str {
        "prefill"
    }

    async fn run(&self, i: u64, key: u64) -> Result<Outcome> {
        let name = key_name(&self.prefix, key);
        for dir in &self.dirs {
            let path = dir.join(&name);
            if fs::metadata(&path).map(|m| m.len()).ok() == Some(self.size) {
                continue;
            }
            let (dir, name, size) = (dir.clone(), name.clone(), self.size);
            tokio::task::spawn_blocking(move || write_durable(&dir, &name, size, i))
                .await
                .context("writer thread failed")??;
        }
        Ok(Outcome::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_write_then_verified_read() {
        let dir = tempfile::tempdir().unwrap();
        prepare_dirs(&[dir.path().to_path_buf()], "p/").unwrap();
        let key = key_name("p/", 3);
        let size = CHUNK as u64 + 17;
        write_durable(dir.path(), &key, size, 1).unwrap();
        // Overwriting replaces the file and leaves no temporary behind.
        write_durable(dir.path(), &key, size, 2).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path().join("p"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let o = read_file(&dir.path().join(&key), &key, true, Instant::now()).unwrap();
        assert_eq!(o.bytes, size);
        assert!(o.verified);
        // The same file read as another key's content fails verification.
        assert!(read_file(&dir.path().join(&key), "other", true, Instant::now()).is_err());
    }
}
