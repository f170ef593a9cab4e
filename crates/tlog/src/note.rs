//! Checkpoints as C2SP signed notes.
//!
//! It owns the checkpoint body (c2sp.org/tlog-checkpoint: origin line, decimal size, base64 root,
//! optional extension lines), verifier keys in signed-note vkey form
//! (`<name>+<hex key id>+<base64(0x01 || Ed25519 public key)>`), opening signed notes against
//! known keys, and signing notes with the log's Ed25519 key. The signed-note rules themselves are
//! `signed_note` 0.2.0 (a port of Go's sumdb/note). It must never see storage, tiles or the
//! network, and only [`NoteSigner`] ever holds private key material.

use ed25519_dalek::SigningKey;
use signed_note::{Note, NoteError, StandardVerifier, Verifier, VerifierError, VerifierList};

use crate::error::TlogError;
use crate::merkle::{Hash, hash_to_base64};

/// A verified (or to-be-signed) checkpoint: the log's origin, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The origin line, which is also the log key's name.
    pub origin: String,
    /// Number of entries in the tree.
    pub size: u64,
    /// RFC 6962 root hash of the tree.
    pub root: Hash,
}

impl Checkpoint {
    /// The C2SP checkpoint body (the note text): `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            hash_to_base64(&self.root)
        )
    }

    /// Parses a checkpoint body strictly (c2sp.org/tlog-checkpoint): non-empty origin, a decimal
    /// size without leading zeros, a base64 hash of exactly 32 bytes, then optional non-empty
    /// extension lines (accepted, not kept), every line ending in a newline.
    ///
    /// # Errors
    /// [`TlogError::MalformedCheckpoint`].
    pub fn parse_body(text: &str) -> Result<Checkpoint, TlogError> {
        let parsed = tlog_tiles::Checkpoint::from_bytes(text.as_bytes())
            .map_err(|e| TlogError::MalformedCheckpoint(format!("{e}: {:?}", shorten(text))))?;
        Ok(Checkpoint {
            origin: parsed.origin().to_owned(),
            size: parsed.size(),
            root: parsed.hash().0,
        })
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(200).collect()
}

/// A parsed verifier key (`<name>+<hex id>+<base64 key>`, Ed25519 only).
#[derive(Clone)]
pub struct VerifierKey {
    text: String,
    inner: StandardVerifier,
}

impl std::fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VerifierKey").field(&self.text).finish()
    }
}

impl VerifierKey {
    /// Parses a signed-note verifier key; checks the key id against the name and key.
    ///
    /// # Errors
    /// [`TlogError::BadVerifierKey`] saying what is wrong.
    pub fn parse(vkey: &str) -> Result<VerifierKey, TlogError> {
        let vkey = vkey.trim();
        let inner = StandardVerifier::new(vkey).map_err(|e| TlogError::BadVerifierKey {
            vkey: shorten(vkey),
            reason: match e {
                VerifierError::Format => "malformed (want <name>+<8 hex digits>+<base64 of 0x01 and a 32-byte Ed25519 key>)".to_owned(),
                VerifierError::Alg => "unknown key algorithm (only Ed25519, 0x01, is supported)".to_owned(),
                VerifierError::Id => "key id does not match the name and key".to_owned(),
            },
        })?;
        Ok(VerifierKey {
            text: vkey.to_owned(),
            inner,
        })
    }

    /// The key name (for a log key: the log's origin).
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The 32-bit key id.
    pub fn key_id(&self) -> u32 {
        self.inner.key_id()
    }

    /// The key in vkey form.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A note whose signatures were checked: its text and which known keys signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    /// The note text (everything before the blank line), ending in a newline.
    pub text: String,
    /// Names of the known keys whose signatures verified, in note order.
    pub verified_by: Vec<String>,
    /// How many signatures were by keys not in the given list.
    pub unknown_signatures: usize,
}

/// Opens a signed note: parses it (c2sp.org/signed-note) and checks its signatures against
/// `vkeys`. Succeeds only if at least one known key signed it and no signature by a known key
/// fails. Signatures by unknown keys are counted, not checked.
///
/// # Errors
/// [`TlogError::BadVerifierKey`], [`TlogError::MalformedNote`], [`TlogError::SignatureInvalid`]
/// or [`TlogError::NotSigned`].
pub fn open_note(note: &[u8], vkeys: &[&str]) -> Result<OpenedNote, TlogError> {
    let keys = vkeys
        .iter()
        .map(|k| VerifierKey::parse(k))
        .collect::<Result<Vec<_>, _>>()?;
    let names = if keys.is_empty() {
        "any known key (no verifier keys given)".to_owned()
    } else {
        keys.iter()
            .map(VerifierKey::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let list = VerifierList::new(
        keys.into_iter()
            .map(|k| Box::new(k.inner) as Box<dyn Verifier>)
            .collect(),
    );
    let parsed = Note::from_bytes(note).map_err(|e| note_error(e, &names))?;
    let (verified, unverified) = parsed.verify(&list).map_err(|e| note_error(e, &names))?;
    let text = String::from_utf8(parsed.text().to_vec())
        .map_err(|_| TlogError::MalformedNote("note text is not UTF-8".to_owned()))?;
    Ok(OpenedNote {
        text,
        verified_by: verified.iter().map(|s| s.name().to_owned()).collect(),
        unknown_signatures: unverified.len(),
    })
}

fn note_error(e: NoteError, names: &str) -> TlogError {
    match e {
        NoteError::InvalidSignature { name, id } => TlogError::SignatureInvalid {
            key: format!("{name}+{id:08x}"),
        },
        NoteError::UnverifiedNote => TlogError::NotSigned {
            keys: names.to_owned(),
        },
        NoteError::MalformedNote => TlogError::MalformedNote(
            "not UTF-8 text without control characters, ending in a newline, then a blank line and 1 to 100 signature lines \"— <name> <base64>\"".to_owned(),
        ),
        other => TlogError::MalformedNote(other.to_string()),
    }
}

/// Verifies a checkpoint note with the log's verifier key: the Ed25519 signature by `vkey` must
/// verify, the body must be a well-formed checkpoint, and its origin must equal the key name.
///
/// # Errors
/// [`TlogError::BadVerifierKey`], [`TlogError::MalformedNote`], [`TlogError::SignatureInvalid`],
/// [`TlogError::NotSigned`], [`TlogError::MalformedCheckpoint`] or [`TlogError::OriginMismatch`].
pub fn verify_checkpoint(note: &str, vkey: &str) -> Result<Checkpoint, TlogError> {
    let key = VerifierKey::parse(vkey)?;
    let opened = open_note(note.as_bytes(), &[vkey])?;
    let checkpoint = Checkpoint::parse_body(&opened.text)?;
    if checkpoint.origin != key.name() {
        return Err(TlogError::OriginMismatch {
            expected: key.name().to_owned(),
            found: checkpoint.origin,
        });
    }
    Ok(checkpoint)
}

/// Whether `name` can be a signed-note key name and checkpoint origin: non-empty, no Unicode
/// whitespace, no `+`, no control characters.
pub fn is_valid_key_name(name: &str) -> bool {
    signed_note::is_key_name_valid(name) && !name.chars().any(char::is_control)
}

/// Signs notes with an Ed25519 key derived from a 32-byte seed (RFC 8032 private key).
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer named `name` whose Ed25519 private key is `seed`.
    ///
    /// # Errors
    /// [`TlogError::BadOrigin`] if `name` is not a valid key name.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, TlogError> {
        if !is_valid_key_name(name) {
            return Err(TlogError::BadOrigin(shorten(name)));
        }
        let key = SigningKey::from_bytes(seed);
        let mut public = vec![0x01];
        public.extend_from_slice(key.verifying_key().as_bytes());
        Ok(NoteSigner {
            name: name.to_owned(),
            id: signed_note::key_id(name, &public),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key in signed-note vkey form, `<name>+<hex id>+<base64(0x01||pubkey)>`.
    pub fn verifier_key(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.name, &self.key.verifying_key())
    }

    /// Signs `text` (which must end in a newline) and returns the signed note.
    ///
    /// # Errors
    /// [`TlogError::MalformedNote`] if `text` is not valid note text.
    pub fn sign(&self, text: &str) -> Result<String, TlogError> {
        let mut note = Note::new(text.as_bytes(), &[]).map_err(|e| note_error(e, &self.name))?;
        note.add_sigs(&[self])
            .map_err(|e| note_error(e, &self.name))?;
        String::from_utf8(note.to_bytes())
            .map_err(|_| TlogError::MalformedNote("signed note is not UTF-8".to_owned()))
    }

    /// Signs a checkpoint body.
    ///
    /// # Errors
    /// As [`NoteSigner::sign`].
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, TlogError> {
        self.sign(&checkpoint.body())
    }
}

impl signed_note::Signer for NoteSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}
