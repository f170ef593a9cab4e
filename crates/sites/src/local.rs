//! A site in a local directory: `ROOT/blobs/<2 hex>/<32 hex>`, temporary files in `ROOT/tmp/`.
//!
//! Durability follows DESIGN.md: write to a temporary name, fsync the file, rename it into
//! place, fsync the directory. File I/O that may wait on the disk runs on tokio's blocking
//! pool. Reads first ask the kernel to answer from its caches without waiting (`openat2` with
//! `RESOLVE_CACHED`, `preadv2` with `RWF_NOWAIT`): what it can answer that way is read on the
//! calling thread, which saves the hop to another thread that costs more than a cached read.

use crate::{BlobStream, BlobWriter, Site, SiteError};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use obhut_core::BlobId;
use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const READ_CHUNK: usize = 256 * 1024;
/// Written when a site is created; its identity is recorded in the site registry.
const IDENTITY_FILE: &str = "site.json";

#[derive(Debug, Clone)]
pub struct LocalSite {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    root: PathBuf,
    identity: String,
}

impl LocalSite {
    /// Makes a new site at `root` (which must not be a site already) and returns the identity
    /// written into its `site.json`; the registry records it, and [`LocalSite::open`] checks it.
    pub fn create(
        id: impl Into<String>,
        root: impl Into<PathBuf>,
    ) -> Result<(Self, String), SiteError> {
        let id = id.into();
        let root = root.into();
        let io = |op: &'static str| {
            let site = id.clone();
            move |source| SiteError::Io { site, op, source }
        };
        fs::create_dir_all(&root).map_err(io("create site directory"))?;
        let identity_path = root.join(IDENTITY_FILE);
        if identity_path.exists() {
            return Err(SiteError::Identity {
                site: id,
                reason: format!("{} is already a site", root.display()),
            });
        }
        let identity = obhut_core::random_token(32);
        let body = serde_json::json!({ "site": id, "identity": identity }).to_string();
        let tmp = root.join(format!("{IDENTITY_FILE}.tmp"));
        let mut f = File::create(&tmp).map_err(io("write site identity"))?;
        f.write_all(body.as_bytes())
            .map_err(io("write site identity"))?;
        f.sync_all().map_err(io("write site identity"))?;
        fs::rename(&tmp, &identity_path).map_err(io("write site identity"))?;
        fsync_dir(&root).map_err(io("write site identity"))?;
        let site = Self::open(id, root, &identity)?;
        Ok((site, identity))
    }

    /// Opens the site at `root` if it is the site with `identity`. A missing or different
    /// identity file (an unmounted disk, a wrong path) makes the site down: it is never
    /// recreated, and nothing is written into the directory.
    pub fn open(
        id: impl Into<String>,
        root: impl Into<PathBuf>,
        identity: &str,
    ) -> Result<Self, SiteError> {
        let id = id.into();
        let root = root.into();
        let down = |reason: String| SiteError::Identity {
            site: id.clone(),
            reason,
        };
        check_identity(&root, &id, identity).map_err(down)?;
        let io = |source| SiteError::Io {
            site: id.clone(),
            op: "create site directory",
            source,
        };
        for dir in [root.join("blobs"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(io)?;
        }
        // All 256 shard directories exist, durably, before any blob is written, so a blob's
        // rename never depends on a directory entry that another writer has not synced yet.
        let blobs = root.join("blobs");
        let mut created = false;
        for shard in 0..=255u8 {
            let dir = blobs.join(format!("{shard:02x}"));
            if !dir.exists() {
                fs::create_dir(&dir).map_err(io)?;
                created = true;
            }
        }
        if created {
            File::open(&blobs).and_then(|d| d.sync_all()).map_err(io)?;
            File::open(&root).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                id,
                root,
                identity: identity.to_owned(),
            }),
        })
    }

    #[must_use]
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn blob_path(&self, blob: BlobId) -> PathBuf {
        let name = blob.to_string();
        self.inner.root.join("blobs").join(&name[..2]).join(name)
    }

    fn io_err(&self, op: &'static str) -> impl FnOnce(io::Error) -> SiteError + '_ {
        move |source| SiteError::Io {
            site: self.inner.id.clone(),
            op,
            source,
        }
    }
}

/// Whether `root` holds the identity file of site `id` with `identity`; the error says why not.
fn check_identity(root: &Path, id: &str, identity: &str) -> Result<(), String> {
    let text = fs::read_to_string(root.join(IDENTITY_FILE)).map_err(|e| {
        format!(
            "{} has no readable {IDENTITY_FILE} ({e}); is its disk mounted?",
            root.display()
        )
    })?;
    let recorded: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let matches = !identity.is_empty()
        && recorded["site"].as_str() == Some(id)
        && recorded["identity"].as_str() == Some(identity);
    if !matches {
        return Err(format!(
            "{} belongs to another site (its {IDENTITY_FILE} does not match the registry)",
            root.display()
        ));
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)))
}

/// Opens `path` for reading if the kernel can resolve it from its lookup cache; `None` when it
/// would have to wait on the disk (or cannot tell, on a kernel before 5.12).
fn open_cached(path: &Path) -> io::Result<Option<File>> {
    use rustix::fs::{CWD, Mode, OFlags, ResolveFlags, openat2};
    use rustix::io::Errno;
    match openat2(
        CWD,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::CACHED,
    ) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(Errno::AGAIN | Errno::NOSYS | Errno::INVAL | Errno::PERM) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads up to `want` bytes at `offset` of what the page cache holds, without waiting on the
/// disk; `None` when it would have to wait (or the file system cannot tell). Empty at the end
/// of the file.
fn read_cached(file: &File, offset: u64, want: usize) -> io::Result<Option<Bytes>> {
    use rustix::io::{Errno, ReadWriteFlags, preadv2};
    let mut buf = BytesMut::zeroed(want);
    match preadv2(
        file,
        &mut [io::IoSliceMut::new(&mut buf)],
        offset,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf.freeze()))
        }
        Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads up to `want` bytes at `offset`, waiting on the disk as needed; short only at the end
/// of the file.
fn read_at(file: &File, offset: u64, want: usize) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = BytesMut::zeroed(want);
    let mut filled = 0;
    while filled < want {
        let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a blob to its temporary file. The first piece is held back rather than written: a
/// blob that comes in one piece (every small object) is then created, written, synced and
/// renamed in a single hop to the blocking pool instead of three.
struct LocalWriter {
    site: LocalSite,
    blob: BlobId,
    tmp_path: PathBuf,
    state: WriterState,
    written: u64,
}

enum WriterState {
    /// Nothing written to disk yet; the first piece, if any, is held.
    Holding(Option<Bytes>),
    /// The temporary file exists and holds everything written so far.
    Open(File),
    /// A write failed: the blob cannot be committed.
    Failed,
}

/// Creates the temporary file if `file` is `None`, then writes `pieces` to it.
fn write_pieces(tmp: &Path, file: Option<File>, pieces: &[Bytes]) -> io::Result<File> {
    let mut file = match file {
        Some(f) => f,
        None => File::options().write(true).create_new(true).open(tmp)?,
    };
    for piece in pieces {
        file.write_all(piece)?;
    }
    Ok(file)
}

impl LocalWriter {
    /// What is still to be written, and the file if it exists; the writer counts as failed
    /// until the caller puts an open file back.
    fn take(&mut self) -> Result<(Option<File>, Option<Bytes>), SiteError> {
        match std::mem::replace(&mut self.state, WriterState::Failed) {
            WriterState::Holding(held) => Ok((None, held)),
            WriterState::Open(file) => Ok((Some(file), None)),
            WriterState::Failed => Err(self.site.io_err("write")(io::Error::other(
                "writer already failed",
            ))),
        }
    }
}

#[async_trait]
impl BlobWriter for LocalWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), SiteError> {
        let len = data.len() as u64;
        let (file, held) = self.take()?;
        if file.is_none() && held.is_none() {
            self.state = WriterState::Holding(Some(data));
            self.written += len;
            return Ok(());
        }
        let tmp = self.tmp_path.clone();
        let pieces: Vec<Bytes> = held.into_iter().chain([data]).collect();
        let file = blocking(move || write_pieces(&tmp, file, &pieces))
            .await
            .map_err(self.site.io_err("write blob"))?;
        self.state = WriterState::Open(file);
        self.written += len;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, SiteError> {
        let (file, held) = self.take()?;
        let tmp = self.tmp_path.clone();
        let dest = self.site.blob_path(self.blob);
        let result = blocking(move || {
            let pieces: Vec<Bytes> = held.into_iter().collect();
            let file = write_pieces(&tmp, file, &pieces)?;
            file.sync_all()?;
            drop(file);
            let dir = dest
                .parent()
                .ok_or_else(|| io::Error::other("blob path has no parent"))?;
            let created_dir = !dir.exists();
            if created_dir {
                fs::create_dir_all(dir)?;
            }
            fs::rename(&tmp, &dest)?;
            fsync_dir(dir)?;
            if created_dir && let Some(blobs) = dir.parent() {
                fsync_dir(blobs)?;
            }
            Ok(())
        })
        .await;
        match result {
            Ok(()) => {
                // Renamed: nothing left for Drop to clean up.
                self.tmp_path = PathBuf::new();
                Ok(self.written)
            }
            Err(e) => Err(self.site.io_err("commit blob")(e)),
        }
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if !self.tmp_path.as_os_str().is_empty() {
            // Best effort; anything left is removed by `clear_temporary` at the next start.
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

#[async_trait]
impl Site for LocalSite {
    fn id(&self) -> &str {
        &self.inner.id
    }

    async fn create(&self, blob: BlobId) -> Result<Box<dyn BlobWriter>, SiteError> {
        let tmp_path = self
            .inner
            .root
            .join("tmp")
            .join(format!("{blob}.{}", obhut_core::random_token(8)));
        Ok(Box::new(LocalWriter {
            site: self.clone(),
            blob,
            tmp_path,
            state: WriterState::Holding(None),
            written: 0,
        }))
    }

    async fn read(&self, blob: BlobId, range: Range<u64>) -> Result<BlobStream, SiteError> {
        let path = self.blob_path(blob);
        let opened = match open_cached(&path) {
            Ok(Some(file)) => Ok(file),
            Ok(None) => blocking(move || File::open(&path)).await,
            Err(e) => Err(e),
        };
        let file = Arc::new(opened.map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SiteError::NotFound {
                    site: self.inner.id.clone(),
                    blob,
                }
            } else {
                self.io_err("open blob")(e)
            }
        })?);
        let site = self.inner.id.clone();
        let stream = futures::stream::try_unfold(range, move |range| {
            let site = site.clone();
            let file = Arc::clone(&file);
            async move {
                if range.is_empty() {
                    return Ok(None);
                }
                let want = usize::try_from(range.end - range.start)
                    .unwrap_or(usize::MAX)
                    .min(READ_CHUNK);
                let io_err = |source| SiteError::Io {
                    site: site.clone(),
                    op: "read blob",
                    source,
                };
                let buf = match read_cached(&file, range.start, want).map_err(io_err)? {
                    Some(buf) => buf,
                    None => blocking(move || read_at(&file, range.start, want))
                        .await
                        .map_err(io_err)?,
                };
                if buf.is_empty() {
                    return Err(SiteError::Truncated { site, blob });
                }
                let rest = range.start + buf.len() as u64..range.end;
                Ok(Some((buf, rest)))
            }
        });
        Ok(Box::pin(stream))
    }

    async fn len(&self, blob: BlobId) -> Result<u64, SiteError> {
        let path = self.blob_path(blob);
        match blocking(move || fs::metadata(&path).map(|m| m.len())).await {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SiteError::NotFound {
                site: self.inner.id.clone(),
                blob,
            }),
            Err(e) => Err(self.io_err("stat blob")(e)),
        }
    }

    async fn delete(&self, blob: BlobId) -> Result<(), SiteError> {
        let path = self.blob_path(blob);
        match blocking(move || fs::remove_file(&path)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_err("delete blob")(e)),
        }
    }

    async fn list(&self) -> Result<Vec<BlobId>, SiteError> {
        let blobs = self.inner.root.join("blobs");
        blocking(move || {
            let mut out = Vec::new();
            for shard in fs::read_dir(&blobs)? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                for entry in fs::read_dir(shard.path())? {
                    let entry = entry?;
                    if let Some(id) = entry.file_name().to_str().and_then(BlobId::parse) {
                        out.push(id);
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(self.io_err("list blobs"))
    }

    async fn list_aged(&self) -> Result<Vec<(BlobId, std::time::SystemTime)>, SiteError> {
        let blobs = self.inner.root.join("blobs");
        blocking(move || {
            let mut out = Vec::new();
            for shard in fs::read_dir(&blobs)? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                for entry in fs::read_dir(shard.path())? {
                    let entry = entry?;
                    let Some(id) = entry.file_name().to_str().and_then(BlobId::parse) else {
                        continue;
                    };
                    // Written to a temporary file and renamed at commit: its last write.
                    match entry.metadata() {
                        Ok(m) => out.push((id, m.modified()?)),
                        // Deleted since the directory was read.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(self.io_err("list blobs"))
    }

    async fn clear_temporary(&self) -> Result<usize, SiteError> {
        self.clear_temporary_older_than(std::time::Duration::ZERO)
            .await
    }

    async fn clear_temporary_older_than(
        &self,
        min_age: std::time::Duration,
    ) -> Result<usize, SiteError> {
        let tmp = self.inner.root.join("tmp");
        blocking(move || {
            let now = std::time::SystemTime::now();
            let mut n = 0;
            for entry in fs::read_dir(&tmp)? {
                let entry = entry?;
                if !min_age.is_zero() {
                    // A write in progress writes its file: young by its last write.
                    let age = match entry.metadata().and_then(|m| m.modified()) {
                        Ok(t) => now.duration_since(t).unwrap_or_default(),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    if age < min_age {
                        continue;
                    }
                }
                match fs::remove_file(entry.path()) {
                    Ok(()) => n += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(n)
        })
        .await
        .map_err(self.io_err("clear temporary files"))
    }

    async fn check(&self) -> Result<(), SiteError> {
        let inner = Arc::clone(&self.inner);
        let result = blocking(move || {
            Ok(
                check_identity(&inner.root, &inner.id, &inner.identity).and_then(|()| {
                    // Writable too: a read-only remount is down for writes. Asked of the
                    // kernel rather than tried with a probe file, so that checking a site
                    // never writes to it (a site outside a tenant's jurisdictions is shown
                    // untouched by the mtimes of its directories).
                    rustix::fs::access(inner.root.join("tmp"), rustix::fs::Access::WRITE_OK)
                        .map_err(|e| format!("{} is not writable: {e}", inner.root.display()))
                }),
            )
        })
        .await
        .map_err(self.io_err("check site"))?;
        result.map_err(|reason| SiteError::Identity {
            site: self.inner.id.clone(),
            reason,
        })
    }

    async fn capacity(&self) -> Result<Option<crate::Capacity>, SiteError> {
        let root = self.inner.root.clone();
        blocking(move || {
            let st = rustix::fs::statvfs(&root).map_err(io::Error::from)?;
            Ok(Some(crate::Capacity {
                total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
                available_bytes: st.f_bavail.saturating_mul(st.f_frsize),
            }))
        })
        .await
        .map_err(self.io_err("statvfs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod conformance {
        crate::site_conformance_tests!(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let (site, _) = crate::LocalSite::create("t", dir.path()).expect("create");
            (site, dir)
        });
    }

    async fn write_blob(site: &LocalSite, blob: BlobId, data: &[u8]) {
        let mut w = site.create(blob).await.expect("create");
        for piece in data.chunks(1 << 20) {
            w.write(Bytes::copy_from_slice(piece)).await.expect("write");
        }
        w.commit().await.expect("commit");
    }

    async fn read_all(site: &LocalSite, blob: BlobId, range: Range<u64>) -> Vec<u8> {
        use futures::TryStreamExt;
        let parts: Vec<Bytes> = site
            .read(blob, range)
            .await
            .expect("read")
            .try_collect()
            .await
            .expect("stream");
        parts.concat()
    }

    /// Reads are answered from the page cache on the calling thread when they can be, and on
    /// the blocking pool when they cannot: both give the same bytes.
    #[tokio::test]
    async fn reads_give_the_same_bytes_cached_or_from_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (site, _) = LocalSite::create("t", dir.path()).expect("create");
        let data: Vec<u8> = (0..3 * READ_CHUNK + 123)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let blob = BlobId::random();
        write_blob(&site, blob, &data).await;
        let whole = 0..data.len() as u64;
        let inner = 1000..2 * READ_CHUNK as u64 + 7;

        // Just written, so in the page cache: the cached path reads it.
        let file = File::open(site.blob_path(blob)).expect("open");
        if let Some(piece) = read_cached(&file, 10, 100).expect("read_cached") {
            assert_eq!(
                &piece[..],
                &data[10..110],
                "a cached read returns the file's bytes"
            );
        }
        assert_eq!(read_all(&site, blob, whole.clone()).await, data);
        assert_eq!(
            read_all(&site, blob, inner.clone()).await,
            data[1000..2 * READ_CHUNK + 7]
        );

        // Out of the page cache: reads that would wait go to the blocking pool.
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        assert_eq!(
            read_all(&site, blob, inner).await,
            data[1000..2 * READ_CHUNK + 7]
        );
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        assert_eq!(read_all(&site, blob, whole).await, data);
        assert_eq!(
            read_at(&file, data.len() as u64 - 3, 10).expect("read_at")[..],
            data[data.len() - 3..],
            "a read past the end is short"
        );
    }

    /// A blob written in one piece is written at commit; one written in several is on disk
    /// from the second piece on. Both read back whole, and a writer dropped before commit
    /// leaves nothing in either case.
    #[tokio::test]
    async fn held_first_piece_is_written_at_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (site, _) = LocalSite::create("t", dir.path()).expect("create");
        let tmp_files = || fs::read_dir(dir.path().join("tmp")).expect("tmp").count();
        for pieces in [1usize, 3] {
            let blob = BlobId::random();
            let mut w = site.create(blob).await.expect("create");
            let data: Vec<u8> = (0..pieces * 1000).map(|i| (i % 256) as u8).collect();
            for piece in data.chunks(1000) {
                w.write(Bytes::copy_from_slice(piece)).await.expect("write");
            }
            assert_eq!(
                tmp_files(),
                usize::from(pieces > 1),
                "{pieces} piece(s): the temporary file exists from the second piece on"
            );
            assert_eq!(w.commit().await.expect("commit"), data.len() as u64);
            assert_eq!(tmp_files(), 0);
            assert_eq!(read_all(&site, blob, 0..data.len() as u64).await, data);

            let mut dropped = site.create(BlobId::random()).await.expect("create");
            for piece in data.chunks(1000) {
                dropped
                    .write(Bytes::copy_from_slice(piece))
                    .await
                    .expect("write");
            }
            drop(dropped);
            assert_eq!(tmp_files(), 0, "a dropped writer leaves nothing");
        }
    }

    #[test]
    fn a_site_without_its_identity_is_down_and_never_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("site");
        let (_, identity) = LocalSite::create("a", &root).expect("create");
        assert!(LocalSite::open("a", &root, &identity).is_ok());
        // another site's identity, or another id
        assert!(matches!(
            LocalSite::open("a", &root, "other"),
            Err(SiteError::Identity { .. })
        ));
        assert!(matches!(
            LocalSite::open("b", &root, &identity),
            Err(SiteError::Identity { .. })
        ));
        // an unmounted disk: the path is gone; opening must not create it
        let moved = dir.path().join("moved");
        fs::rename(&root, &moved).expect("rename");
        assert!(matches!(
            LocalSite::open("a", &root, &identity),
            Err(SiteError::Identity { .. })
        ));
        assert!(!root.exists(), "the site directory must not be recreated");
        // an empty mount point is not the site either
        fs::create_dir(&root).expect("mkdir");
        assert!(matches!(
            LocalSite::open("a", &root, &identity),
            Err(SiteError::Identity { .. })
        ));
        assert_eq!(
            fs::read_dir(&root).expect("read").count(),
            0,
            "nothing written into it"
        );
        // creating a site over an existing one is refused
        assert!(matches!(
            LocalSite::create("c", &moved),
            Err(SiteError::Identity { .. })
        ));
    }
}
