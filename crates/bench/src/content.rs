//! Deterministic object bodies: the bytes of an object are a function of its key alone.
//!
//! Every 8-byte word at offset `8w` is SplitMix64 of a seed taken from the key, so any range can
//! be produced (or checked) without the rest, at several GiB/s per core, and a reader can verify a
//! body written by another process or an earlier run without anyone keeping it in memory.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Size of the pieces bodies are produced and read in.
pub const CHUNK: usize = 256 * 1024;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether operation `i` is in a sample of `fraction` of all operations (deterministic in `i`).
pub fn sampled(i: u64, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    if fraction <= 0.0 {
        return false;
    }
    // The top 53 bits as a uniform number in [0, 1).
    let u = (mix(i ^ 0x5EED_5A3F_1E00_0000) >> 11) as f64 / (1u64 << 53) as f64;
    u < fraction
}

/// The content of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Content {
    seed: u64,
}

impl Content {
    /// The content of the object named `key` (FNV-1a of the name, then mixed).
    pub fn for_key(key: &str) -> Self {
        let mut h: u64 = 0xCBF2_9CE4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        Content { seed: mix(h) }
    }

    fn word(&self, w: u64) -> [u8; 8] {
        mix(self
            .seed
            .wrapping_add(w.wrapping_add(1).wrapping_mul(GAMMA)))
        .to_le_bytes()
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut out = buf;
        let start = (pos % 8) as usize;
        if start != 0 {
            let word = self.word(pos / 8);
            let n = (8 - start).min(out.len());
            let (head, rest) = out.split_at_mut(n);
            head.copy_from_slice(&word[start..start + n]);
            pos += n as u64;
            out = rest;
        }
        let mut words = out.chunks_exact_mut(8);
        for chunk in &mut words {
            chunk.copy_from_slice(&self.word(pos / 8));
            pos += 8;
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let word = self.word(pos / 8);
            tail.copy_from_slice(&word[..tail.len()]);
        }
    }
}

/// Checks a body piece by piece as it arrives.
pub struct Verifier {
    content: Content,
    offset: u64,
    scratch: Vec<u8>,
}

impl Verifier {
    pub fn new(content: Content) -> Self {
        Verifier {
            content,
            offset: 0,
            scratch: Vec::new(),
        }
    }

    /// Checks the next piece; on a mismatch, the offset of the first wrong byte.
    pub fn check(&mut self, piece: &[u8]) -> Result<(), u64> {
        self.scratch.resize(piece.len(), 0);
        self.content.fill(self.offset, &mut self.scratch);
        if let Some(i) = self.scratch.iter().zip(piece).position(|(a, b)| a != b) {
            return Err(self.offset + i as u64);
        }
        self.offset += piece.len() as u64;
        Ok(())
    }
}

/// An HTTP body that produces an object's content `CHUNK` bytes at a time, with an exact size (so
/// it is sent with `Content-Length`, not chunked). Holds one chunk at most.
pub struct GenBody {
    content: Content,
    size: u64,
    sent: u64,
}

impl GenBody {
    pub fn new(content: Content, size: u64) -> Self {
        GenBody {
            content,
            size,
            sent: 0,
        }
    }
}

impl Body for GenBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let left = this.size - this.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
        let mut buf = vec![0u8; n];
        this.content.fill(this.sent, &mut buf);
        this.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.size
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size - self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_matches_the_whole() {
        let c = Content::for_key("bench/4KiB/00000001");
        let mut whole = vec![0u8; 1000];
        c.fill(0, &mut whole);
        for (offset, len) in [(0, 1), (3, 5), (7, 9), (8, 8), (13, 100), (999, 1), (5, 0)] {
            let mut part = vec![0u8; len];
            c.fill(offset as u64, &mut part);
            assert_eq!(
                part,
                whole[offset..offset + len],
                "offset {offset} len {len}"
            );
        }
        let mut other = vec![0u8; 1000];
        Content::for_key("bench/4KiB/00000002").fill(0, &mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn verifier_accepts_any_split_and_finds_the_first_wrong_byte() {
        let c = Content::for_key("k");
        let mut body = vec![0u8; 777];
        c.fill(0, &mut body);
        let mut v = Verifier::new(c);
        for piece in body.chunks(100) {
            v.check(piece).unwrap();
        }
        body[500] ^= 1;
        let mut v = Verifier::new(c);
        let mut result = Ok(());
        for piece in body.chunks(64) {
            result = v.check(piece);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(500));
    }

    #[test]
    fn sampling_is_close_to_the_fraction() {
        let hits = (0..100_000).filter(|&i| sampled(i, 0.1)).count();
        assert!((9_000..11_000).contains(&hits), "{hits}");
        assert!((0..100).all(|i| sampled(i, 1.0)));
        assert!((0..100).all(|i| !sampled(i, 0.0)));
    }
}
