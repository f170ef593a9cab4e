//! The last checkpoint the trustee signed, kept apart from the log, so that a log rolled back
//! (truncated, or an older copy restored) while the trustee was stopped is refused at start
//! instead of being served, and believed, as if nothing had happened.
//!
//! The checkpoint is a C2SP signed note in `DIR/log-checkpoint` (beside `governance.db`, not
//! in `log/`), mode 0600, replaced atomically and durably after every append. At start the log
//! must be at least as long as it and consistent with it (an RFC 6962 consistency proof from
//! the kept tree to the log's current one), and every stored entry must match its leaf hash.
//!
//! It sees only checkpoints and the log's own tiles; it holds no key (signing is the log's).

use obhut_trustee_client::TrusteeError;
use std::path::{Path, PathBuf};

/// The file's name inside the trustee's directory.
pub const FILE: &str = "log-checkpoint";

fn refuse(m: String) -> TrusteeError {
    TrusteeError::Storage(m)
}

/// Where the kept checkpoint of the trustee in `dir` lives.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Replaces the kept checkpoint with the log's current one.
pub fn keep(dir: &Path, log: &obhut_tlog::Log) -> Result<(), TrusteeError> {
    let note = log
        .checkpoint()
        .map_err(|e| refuse(format!("cannot sign a checkpoint: {e}")))?;
    crate::write_private_file(&path(dir), note.as_bytes(), 0o600)
        .map_err(|e| refuse(format!("cannot keep the log's checkpoint: {e}")))
}

/// Checks the log in `dir/log` against the kept checkpoint. `adopt`: a trustee of an earlier
/// release, which kept none; its current checkpoint is kept from now on. Without `adopt`, a
/// missing kept checkpoint is refused unless the log is empty.
pub fn check_at_start(dir: &Path, log: &obhut_tlog::Log, adopt: bool) -> Result<(), TrusteeError> {
    let file = path(dir);
    let current = log.current();
    let mut src = log;
    // Every stored entry against its leaf hash, and the hashes against the current root.
    obhut_tlog::verify_entries(&mut src, &current).map_err(|e| {
        refuse(format!(
            "the transparency log in {} is corrupt ({e}); refusing to start",
            log.dir().display()
        ))
    })?;
    let note = match std::fs::read_to_string(&file) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if adopt || current.size == 0 {
                return keep(dir, log);
            }
            return Err(refuse(format!(
                "the checkpoint the trustee keeps apart from its log ({}) is missing while the log has {} entries; refusing to start (restore the file, or the log and the file together)",
                file.display(),
                current.size
            )));
        }
        Err(e) => return Err(refuse(format!("cannot read {}: {e}", file.display()))),
    };
    let kept = obhut_tlog::verify_checkpoint(&note, &log.verifier_key()).map_err(|e| {
        refuse(format!(
            "the kept checkpoint {} is not one this log's key signed ({e}); refusing to start",
            file.display()
        ))
    })?;
    if current.size < kept.size {
        return Err(refuse(format!(
            "the transparency log has {} entries, fewer than the {} of the last checkpoint the trustee signed ({}): it was truncated or an older copy restored; refusing to start",
            current.size,
            kept.size,
            file.display()
        )));
    }
    obhut_tlog::verify_consistency(&mut src, &kept, &current).map_err(|e| {
        refuse(format!(
            "the transparency log is not consistent with the last checkpoint the trustee signed ({}, {} entries): {e}; refusing to start",
            file.display(),
            kept.size
        ))
    })?;
    if current.size > kept.size {
        keep(dir, log)?;
    }
    Ok(())
}
