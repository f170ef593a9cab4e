//! Segmented AES-256-GCM for blobs (the STREAM construction as Tink's streaming AEAD uses it).
//!
//! A blob is a 16-byte header followed by segments. Each segment holds up to `segment_size`
//! plaintext bytes plus a 16-byte tag. The nonce of segment `i` is
//! `nonce_prefix (7) | i as u32 big-endian (4) | last (1)`, and every segment's associated data is
//! the header followed by the caller's context (object version and part), so:
//! - a range read decrypts only the segments it touches;
//! - reordering or swapping segments fails (the index is in the nonce);
//! - truncation fails (the final segment is marked, and an empty object still has one segment);
//! - moving a blob to another object fails (the context differs, and so does the key).
//!
//! Layout of the header: `magic "obhB" | version = 1 | log2(segment_size) | 0 0 | nonce prefix (7) | 0`.

use crate::{CryptoError, Key, random_bytes};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::ops::Range;

pub const HEADER_LEN: usize = 16;
pub const TAG_LEN: usize = 16;
/// Plaintext bytes per segment unless chosen otherwise; docs/benchmarks.md says why.
pub const DEFAULT_SEGMENT_SIZE: u32 = 64 * 1024;

const MAGIC: &[u8; 4] = b"obhB";
const VERSION: u8 = 1;
const PREFIX_LEN: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHeader {
    pub segment_size: u32,
    pub nonce_prefix: [u8; PREFIX_LEN],
}

impl BlobHeader {
    /// A header with a fresh random nonce prefix. `segment_size` must be a power of two between
    /// 4 KiB and 16 MiB.
    pub fn random(segment_size: u32) -> Result<Self, CryptoError> {
        if !segment_size.is_power_of_two() || !(4096..=1 << 24).contains(&segment_size) {
            return Err(CryptoError::Malformed("segment size"));
        }
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        random_bytes(&mut nonce_prefix)?;
        Ok(Self {
            segment_size,
            nonce_prefix,
        })
    }

    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(MAGIC);
        h[4] = VERSION;
        // A power of two up to 2^24: the exponent fits a byte.
        h[5] = u8::try_from(self.segment_size.trailing_zeros()).unwrap_or(u8::MAX);
        h[8..8 + PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        h
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        let h: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(CryptoError::Malformed("blob header"))?;
        if &h[..4] != MAGIC {
            return Err(CryptoError::Malformed("blob header"));
        }
        if h[4] != VERSION {
            return Err(CryptoError::Version(h[4]));
        }
        if !(12..=24).contains(&h[5]) || h[6] != 0 || h[7] != 0 || h[15] != 0 {
            return Err(CryptoError::Malformed("blob header"));
        }
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        nonce_prefix.copy_from_slice(&h[8..8 + PREFIX_LEN]);
        Ok(Self {
            segment_size: 1 << h[5],
            nonce_prefix,
        })
    }

    pub(crate) fn nonce(&self, index: u32, last: bool) -> Nonce {
        let mut n = [0u8; 12];
        n[..PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        n[PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
        n[11] = u8::from(last);
        Nonce::assume_unique_for_key(n)
    }
}

/// Number of segments of a blob holding `plain_len` bytes (at least one).
#[must_use]
pub fn segment_count(plain_len: u64, segment_size: u32) -> u64 {
    plain_len.div_ceil(u64::from(segment_size)).max(1)
}

/// Stored length of a blob holding `plain_len` bytes.
#[must_use]
pub fn blob_len(plain_len: u64, segment_size: u32) -> u64 {
    HEADER_LEN as u64 + plain_len + segment_count(plain_len, segment_size) * TAG_LEN as u64
}

/// The segments `first..=last` that hold `plain` (a non-empty range, or `0..0` of an empty
/// blob) and the byte range of the blob they occupy.
#[must_use]
pub fn segment_span(
    plain: &Range<u64>,
    plain_len: u64,
    segment_size: u32,
) -> (u64, u64, Range<u64>) {
    let seg = u64::from(segment_size);
    let stride = seg + TAG_LEN as u64;
    let first = plain.start / seg;
    let last = if plain.end == 0 {
        0
    } else {
        (plain.end - 1) / seg
    };
    let last_plain = plain_len.saturating_sub(last * seg).min(seg);
    let start = HEADER_LEN as u64 + first * stride;
    let end = HEADER_LEN as u64 + last * stride + last_plain + TAG_LEN as u64;
    (first, last, start..end)
}

fn aead(key: &Key) -> LessSafeKey {
    // AES-256 accepts any 32-byte key, so this cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose()).unwrap_or_else(|_| unreachable!()))
}

pub(crate) fn segment_aad(header: &BlobHeader, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_LEN + context.len());
    aad.extend_from_slice(&header.encode());
    aad.extend_from_slice(context);
    aad
}

/// Seals segments one at a time, in order.
pub struct SegmentEncryptor {
    key: LessSafeKey,
    header: BlobHeader,
    aad: Vec<u8>,
    next: u32,
}

impl SegmentEncryptor {
    #[must_use]
    pub fn new(key: &Key, header: BlobHeader, context: &[u8]) -> Self {
        Self {
            key: aead(key),
            aad: segment_aad(&header, context),
            header,
            next: 0,
        }
    }

    #[must_use]
    pub fn header(&self) -> &BlobHeader {
        &self.header
    }

    /// Encrypts the next segment in place, appending its tag.
    pub fn seal(&mut self, segment: &mut Vec<u8>, last: bool) -> Result<(), CryptoError> {
        let nonce = self.header.nonce(self.next, last);
        self.next = self
            .next
            .checked_add(1)
            .ok_or(CryptoError::Malformed("too many segments"))?;
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(&self.aad), segment)
            .map_err(|_| CryptoError::Authentication)
    }
}

/// Turns a byte stream of unknown length into sealed segments: a segment is sealed as soon as
/// it is known not to be the last one; [`StreamEncryptor::finish`] seals the final one.
pub struct StreamEncryptor {
    enc: SegmentEncryptor,
    pending: Vec<u8>,
}

impl StreamEncryptor {
    #[must_use]
    pub fn new(key: &Key, header: BlobHeader, context: &[u8]) -> Self {
        let cap = header.segment_size as usize + TAG_LEN;
        Self {
            enc: SegmentEncryptor::new(key, header, context),
            pending: Vec::with_capacity(cap),
        }
    }

    #[must_use]
    pub fn header_bytes(&self) -> [u8; HEADER_LEN] {
        self.enc.header().encode()
    }

    /// Adds plaintext; appends every segment that is now complete (sealed) to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let seg = self.enc.header.segment_size as usize;
        while !data.is_empty() {
            if self.pending.len() == seg {
                // More data follows, so the pending segment is not the last.
                let mut full =
                    std::mem::replace(&mut self.pending, Vec::with_capacity(seg + TAG_LEN));
                self.enc.seal(&mut full, false)?;
                out.extend_from_slice(&full);
            }
            let take = (seg - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the final segment (possibly empty) and appends it to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let mut last = std::mem::take(&mut self.pending);
        self.enc.seal(&mut last, true)?;
        out.extend_from_slice(&last);
        Ok(())
    }
}

/// Opens the segments of one blob, in any order.
pub struct SegmentDecryptor {
    key: LessSafeKey,
    header: BlobHeader,
    aad: Vec<u8>,
    plain_len: u64,
}

impl SegmentDecryptor {
    #[must_use]
    pub fn new(key: &Key, header: BlobHeader, context: &[u8], plain_len: u64) -> Self {
        Self {
            key: aead(key),
            aad: segment_aad(&header, context),
            header,
            plain_len,
        }
    }

    /// Stored length of segment `index` including its tag.
    #[must_use]
    pub fn sealed_len(&self, index: u64) -> usize {
        let seg = u64::from(self.header.segment_size);
        let plain = self.plain_len.saturating_sub(index * seg).min(seg);
        // At most one segment plus a tag: fits usize.
        usize::try_from(plain).unwrap_or(usize::MAX) + TAG_LEN
    }

    /// Decrypts segment `index` in place and returns its plaintext.
    pub fn open<'a>(&self, index: u64, sealed: &'a mut [u8]) -> Result<&'a mut [u8], CryptoError> {
        let total = segment_count(self.plain_len, self.header.segment_size);
        if index >= total || sealed.len() != self.sealed_len(index) {
            return Err(CryptoError::Authentication);
        }
        let idx = u32::try_from(index).map_err(|_| CryptoError::Authentication)?;
        let nonce = self.header.nonce(idx, index + 1 == total);
        self.key
            .open_in_place(nonce, Aad::from(&self.aad), sealed)
            .map_err(|_| CryptoError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u32 = 4096;

    fn encrypt(key: &Key, ctx: &[u8], data: &[u8], pieces: usize) -> Vec<u8> {
        let header = BlobHeader::random(SEG).unwrap();
        let mut enc = StreamEncryptor::new(key, header, ctx);
        let mut out = enc.header_bytes().to_vec();
        for chunk in data.chunks(pieces.max(1)) {
            enc.push(chunk, &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        out
    }

    fn decrypt_range(
        key: &Key,
        ctx: &[u8],
        blob: &[u8],
        plain_len: u64,
        r: Range<u64>,
    ) -> Result<Vec<u8>, CryptoError> {
        let header = BlobHeader::decode(blob)?;
        let dec = SegmentDecryptor::new(key, header, ctx, plain_len);
        let (first, last, span) = segment_span(&r, plain_len, header.segment_size);
        let mut bytes = blob
            .get(span.start as usize..span.end as usize)
            .ok_or(CryptoError::Authentication)?
            .to_vec();
        let mut plain = Vec::new();
        let mut off = 0;
        for i in first..=last {
            let n = dec.sealed_len(i);
            let seg = bytes
                .get_mut(off..off + n)
                .ok_or(CryptoError::Authentication)?;
            plain.extend_from_slice(dec.open(i, seg)?);
            off += n;
        }
        let skip = (r.start - first * u64::from(SEG)) as usize;
        Ok(plain[skip..skip + (r.end - r.start) as usize].to_vec())
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_every_size_and_piece_size() {
        let key = Key::random().unwrap();
        for n in [0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 5] {
            let data = sample(n);
            for pieces in [1, 1000, 4096, 10_000] {
                let blob = encrypt(&key, b"ctx", &data, pieces);
                assert_eq!(blob.len() as u64, blob_len(n as u64, SEG), "n={n}");
                let all = decrypt_range(&key, b"ctx", &blob, n as u64, 0..n as u64).unwrap();
                assert_eq!(all, data, "n={n} pieces={pieces}");
            }
        }
    }

    #[test]
    fn range_reads_touch_only_their_segments() {
        let key = Key::random().unwrap();
        let data = sample(5 * 4096 + 100);
        let blob = encrypt(&key, b"ctx", &data, 777);
        for r in [0..1, 4095..4097, 8192..8193, 10..20_000, 20_480..20_580] {
            let got = decrypt_range(&key, b"ctx", &blob, data.len() as u64, r.clone()).unwrap();
            assert_eq!(got, &data[r.start as usize..r.end as usize]);
        }
        let (first, last, span) = segment_span(&(4096..4097), data.len() as u64, SEG);
        assert_eq!((first, last), (1, 1));
        assert_eq!(span.end - span.start, 4096 + TAG_LEN as u64);
    }

    #[test]
    fn tampering_is_detected() {
        let key = Key::random().unwrap();
        let data = sample(3 * 4096);
        let len = data.len() as u64;
        let blob = encrypt(&key, b"ctx", &data, 4096);

        let mut flipped = blob.clone();
        flipped[HEADER_LEN + 5000] ^= 0x01;
        assert!(decrypt_range(&key, b"ctx", &flipped, len, 0..len).is_err());

        let truncated = &blob[..blob.len() - (4096 + TAG_LEN)];
        assert!(decrypt_range(&key, b"ctx", truncated, len - 4096, 0..len - 4096).is_err());

        let stride = 4096 + TAG_LEN;
        let mut swapped = blob.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + stride);
        let seg0 = blob[a..a + stride].to_vec();
        let seg1 = blob[b..b + stride].to_vec();
        swapped[a..a + stride].copy_from_slice(&seg1);
        swapped[b..b + stride].copy_from_slice(&seg0);
        assert!(decrypt_range(&key, b"ctx", &swapped, len, 0..len).is_err());

        assert!(decrypt_range(&key, b"other object", &blob, len, 0..len).is_err());
        assert!(decrypt_range(&Key::random().unwrap(), b"ctx", &blob, len, 0..len).is_err());
    }

    #[test]
    fn empty_blob_still_authenticates() {
        let key = Key::random().unwrap();
        let blob = encrypt(&key, b"ctx", &[], 1);
        assert_eq!(blob.len(), HEADER_LEN + TAG_LEN);
        assert_eq!(
            decrypt_range(&key, b"ctx", &blob, 0, 0..0).unwrap(),
            Vec::<u8>::new()
        );
        assert!(decrypt_range(&key, b"ctx", &blob[..HEADER_LEN], 0, 0..0).is_err());
    }

    #[test]
    fn header_rejects_unknown_versions_and_sizes() {
        let h = BlobHeader::random(SEG).unwrap();
        assert_eq!(BlobHeader::decode(&h.encode()).unwrap(), h);
        let mut v2 = h.encode();
        v2[4] = 2;
        assert_eq!(BlobHeader::decode(&v2), Err(CryptoError::Version(2)));
        assert!(BlobHeader::random(5000).is_err());
        assert!(BlobHeader::decode(b"short").is_err());
    }
}
