//! The `aws-chunked` framing of streaming uploads, decoded without I/O: push the body's bytes
//! in, get the data out, with each chunk's SHA-256 and signature and, at the end, the trailing
//! headers and their signature. Checking the signatures is the verifier's part: see
//! [`crate::chunk_string_to_sign`] and [`crate::trailer_string_to_sign`].
//!
//! ```text
//! <hex size>;chunk-signature=<64 hex>\r\n<data>\r\n   (repeated; no signature when unsigned)
//! 0;chunk-signature=<64 hex>\r\n
//! [<name>:<value>\r\n ... x-amz-trailer-signature:<64 hex>\r\n]\r\n
//! ```

use crate::{EMPTY_SHA256, hex};
use aws_lc_rs::digest;
use bytes::Bytes;
use thiserror::Error;

/// Longest chunk header line (`<hex size>;chunk-signature=<64 hex>`) accepted.
const MAX_META_LINE: usize = 256;
/// Largest trailer block accepted.
const MAX_TRAILERS: usize = 16 * 1024;
/// Most trailing headers accepted.
const MAX_TRAILER_HEADERS: usize = 32;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ChunkError {
    #[error("a chunk header is malformed")]
    Meta,
    #[error("a chunk is not followed by CRLF")]
    Framing,
    #[error("a chunk has no signature")]
    MissingSignature,
    #[error("the trailing headers are malformed or too large")]
    Trailers,
    #[error("the body ended inside a chunk")]
    Incomplete,
    #[error("the decoded body is {actual} bytes, not the {declared} declared")]
    Length { declared: u64, actual: u64 },
}

/// What decoding found, in body order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Decoded data (of the chunk being read).
    Data(Bytes),
    /// A chunk ended: its data's SHA-256 (hex) and the signature that came with it. The
    /// final, empty chunk has [`EMPTY_SHA256`] and size 0.
    Chunk {
        size: u64,
        sha256: String,
        signature: Option<String>,
    },
    /// The trailing headers (lower-case names, sorted), their canonical form for signing,
    /// and `x-amz-trailer-signature` if present.
    Trailers {
        entries: Vec<(String, String)>,
        canonical: Vec<u8>,
        signature: Option<String>,
    },
}

enum State {
    Meta,
    Data {
        remaining: u64,
        size: u64,
        signature: Option<String>,
        hasher: Box<digest::Context>,
    },
    DataEnd,
    Trailers,
}

/// Decodes one `aws-chunked` body.
pub struct Decoder {
    state: State,
    signed: bool,
    buf: Vec<u8>,
    decoded: u64,
    declared: u64,
}

impl Decoder {
    /// A decoder for a body whose chunks carry signatures (`signed`) or not, and whose decoded
    /// length is declared as `declared` (`x-amz-decoded-content-length`).
    #[must_use]
    pub fn new(signed: bool, declared: u64) -> Self {
        Self {
            state: State::Meta,
            signed,
            buf: Vec::new(),
            decoded: 0,
            declared,
        }
    }

    /// Decodes as much of `input` as possible; every byte is consumed.
    pub fn push(&mut self, mut input: Bytes) -> Result<Vec<Event>, ChunkError> {
        let mut events = Vec::new();
        while !input.is_empty() {
            match &mut self.state {
                State::Meta => {
                    let line_end = input.iter().position(|&b| b == b'\n');
                    let take = line_end.map_or(input.len(), |i| i + 1);
                    self.buf.extend_from_slice(&input.split_to(take));
                    if self.buf.len() > MAX_META_LINE {
                        return Err(ChunkError::Meta);
                    }
                    if line_end.is_some() {
                        let line = std::mem::take(&mut self.buf);
                        let (size, signature) = self.meta(&line)?;
                        if size == 0 {
                            events.push(Event::Chunk {
                                size: 0,
                                sha256: EMPTY_SHA256.to_owned(),
                                signature,
                            });
                            self.state = State::Trailers;
                        } else {
                            self.state = State::Data {
                                remaining: size,
                                size,
                                signature,
                                hasher: Box::new(digest::Context::new(&digest::SHA256)),
                            };
                        }
                    }
                }
                State::Data {
                    remaining,
                    size,
                    signature,
                    hasher,
                } => {
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let data = input.split_to(n);
                    hasher.update(&data);
                    *remaining -= n as u64;
                    self.decoded = self.decoded.saturating_add(n as u64);
                    if self.decoded > self.declared {
                        return Err(ChunkError::Length {
                            declared: self.declared,
                            actual: self.decoded,
                        });
                    }
                    events.push(Event::Data(data));
                    if *remaining == 0 {
                        let State::Data {
                            size,
                            signature,
                            hasher,
                            ..
                        } = std::mem::replace(&mut self.state, State::DataEnd)
                        else {
                            unreachable!("matched above")
                        };
                        events.push(Event::Chunk {
                            size,
                            sha256: hex(hasher.finish().as_ref()),
                            signature,
                        });
                    } else {
                        let _ = (size, signature);
                    }
                }
                State::DataEnd => {
                    let need = 2 - self.buf.len();
                    let n = need.min(input.len());
                    self.buf.extend_from_slice(&input.split_to(n));
                    if self.buf.len() == 2 {
                        if self.buf != b"\r\n" {
                            return Err(ChunkError::Framing);
                        }
                        self.buf.clear();
                        self.state = State::Meta;
                    }
                }
                State::Trailers => {
                    if self.buf.len() + input.len() > MAX_TRAILERS {
                        return Err(ChunkError::Trailers);
                    }
                    self.buf.extend_from_slice(&input);
                    input.clear();
                }
            }
        }
        Ok(events)
    }

    /// Ends the body: the trailing headers, if any. An error if the body ended early or its
    /// decoded length is not the declared one.
    pub fn finish(&mut self) -> Result<Vec<Event>, ChunkError> {
        if !matches!(self.state, State::Trailers) {
            return Err(ChunkError::Incomplete);
        }
        if self.decoded != self.declared {
            return Err(ChunkError::Length {
                declared: self.declared,
                actual: self.decoded,
            });
        }
        let block = std::mem::take(&mut self.buf);
        let mut entries = Vec::new();
        let mut signature = None;
        for line in block.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let text = std::str::from_utf8(line).map_err(|_| ChunkError::Trailers)?;
            let (name, value) = text.split_once(':').ok_or(ChunkError::Trailers)?;
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_owned();
            if name.is_empty() {
                return Err(ChunkError::Trailers);
            }
            if name == "x-amz-trailer-signature" {
                if signature.replace(value).is_some() {
                    return Err(ChunkError::Trailers);
                }
            } else {
                entries.push((name, value));
            }
            if entries.len() > MAX_TRAILER_HEADERS {
                return Err(ChunkError::Trailers);
            }
        }
        if entries.is_empty() && signature.is_none() {
            return Ok(vec![]);
        }
        entries.sort();
        let mut canonical = Vec::new();
        for (n, v) in &entries {
            canonical.extend_from_slice(n.as_bytes());
            canonical.push(b':');
            canonical.extend_from_slice(v.as_bytes());
            canonical.push(b'\n');
        }
        Ok(vec![Event::Trailers {
            entries,
            canonical,
            signature,
        }])
    }

    fn meta(&self, line: &[u8]) -> Result<(u64, Option<String>), ChunkError> {
        let line = line.strip_suffix(b"\r\n").ok_or(ChunkError::Meta)?;
        let text = std::str::from_utf8(line).map_err(|_| ChunkError::Meta)?;
        let (size, ext) = match text.split_once(';') {
            Some((s, e)) => (s, Some(e)),
            None => (text, None),
        };
        if size.is_empty() || size.len() > 16 {
            return Err(ChunkError::Meta);
        }
        let size = u64::from_str_radix(size, 16).map_err(|_| ChunkError::Meta)?;
        let signature = match ext {
            None => None,
            Some(e) => {
                let sig = e.strip_prefix("chunk-signature=").ok_or(ChunkError::Meta)?;
                if sig.len() != 64 || !sig.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(ChunkError::Meta);
                }
                Some(sig.to_owned())
            }
        };
        if self.signed && signature.is_none() {
            return Err(ChunkError::MissingSignature);
        }
        Ok((size, signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SigningKey, chunk_string_to_sign, sha256_hex, trailer_string_to_sign};

    const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
    const DATE: &str = "20130524T000000Z";

    fn body(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn decode_all(d: &mut Decoder, body: &[u8], piece: usize) -> Result<Vec<Event>, ChunkError> {
        let mut events = vec![];
        for p in body.chunks(piece.max(1)) {
            events.extend(d.push(Bytes::copy_from_slice(p))?);
        }
        events.extend(d.finish()?);
        Ok(events)
    }

    fn data_of(events: &[Event]) -> Vec<u8> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Data(d) => Some(d.to_vec()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .concat()
    }

    #[test]
    fn the_signed_example_decodes_and_its_chain_verifies_in_any_piece_size() {
        // "Example: PUT Object" of the SigV4 streaming documentation.
        let a64k = vec![b'a'; 65536];
        let a1k = vec![b'a'; 1024];
        let body = body(&[
            b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n",
            &a64k,
            b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n",
            &a1k,
            b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n",
        ]);
        let key = SigningKey::derive(crate::tests::SECRET, "20130524", "us-east-1", "s3");
        for piece in [1, 7, 100, 65536, body.len()] {
            let mut d = Decoder::new(true, 66560);
            let events = decode_all(&mut d, &body, piece).unwrap();
            assert_eq!(data_of(&events).len(), 66560);
            let mut prev =
                "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".to_owned();
            let mut chunks = 0;
            for e in &events {
                if let Event::Chunk {
                    sha256, signature, ..
                } = e
                {
                    let sig = signature.clone().unwrap();
                    assert!(key.verifies(&chunk_string_to_sign(DATE, SCOPE, &prev, sha256), &sig));
                    prev = sig;
                    chunks += 1;
                }
            }
            assert_eq!(chunks, 3);
        }
    }

    #[test]
    fn signed_trailers_verify() {
        // "Example: PUT Object with trailing headers" of the SigV4 streaming documentation.
        let a64k = vec![b'a'; 65536];
        let a1k = vec![b'a'; 1024];
        let body = body(&[
            b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n",
            &a64k,
            b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n",
            &a1k,
            b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n",
            b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n",
        ]);
        let mut d = Decoder::new(true, 66560);
        let events = decode_all(&mut d, &body, 1000).unwrap();
        let key = SigningKey::derive(crate::tests::SECRET, "20130524", "us-east-1", "s3");
        let Some(Event::Trailers {
            entries,
            canonical,
            signature,
        }) = events.last()
        else {
            panic!("no trailers: {events:?}")
        };
        assert_eq!(
            entries,
            &[("x-amz-checksum-crc32c".to_owned(), "sOO8/Q==".to_owned())]
        );
        let to_sign = trailer_string_to_sign(
            DATE,
            SCOPE,
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
            canonical,
        );
        assert!(key.verifies(&to_sign, signature.as_deref().unwrap()));
    }

    #[test]
    fn a_tampered_trailer_or_trailer_signature_does_not_verify() {
        // The documentation's example with its trailer changed after signing, or its trailer
        // signature altered: the trailer no longer verifies against the chain's last signature.
        let a64k = vec![b'a'; 65536];
        let a1k = vec![b'a'; 1024];
        let good_sig = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435";
        let bad_sig = "e81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435";
        let key = SigningKey::derive(crate::tests::SECRET, "20130524", "us-east-1", "s3");
        let verifies = |trailer: String| {
            let body = body(&[
                b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n",
                &a64k,
                b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n",
                &a1k,
                b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n",
                trailer.as_bytes(),
            ]);
            let events = decode_all(&mut Decoder::new(true, 66560), &body, 1000).unwrap();
            let Some(Event::Trailers {
                canonical,
                signature,
                ..
            }) = events.last()
            else {
                panic!("no trailers: {events:?}")
            };
            let to_sign = trailer_string_to_sign(
                DATE,
                SCOPE,
                "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
                canonical,
            );
            key.verifies(&to_sign, signature.as_deref().unwrap())
        };
        let trailer = |crc: &str, sig: &str| {
            format!("x-amz-checksum-crc32c:{crc}\r\nx-amz-trailer-signature:{sig}\r\n\r\n")
        };
        assert!(verifies(trailer("sOO8/Q==", good_sig)));
        assert!(!verifies(trailer("sOO8/R==", good_sig)));
        assert!(!verifies(trailer("sOO8/Q==", bad_sig)));
    }

    #[test]
    fn framing_errors_are_refused() {
        let sig = "a".repeat(64);
        let ok = format!("3;chunk-signature={sig}\r\nabc\r\n0;chunk-signature={sig}\r\n\r\n");
        assert!(decode_all(&mut Decoder::new(true, 3), ok.as_bytes(), 5).is_ok());
        // Declared length differs.
        assert!(decode_all(&mut Decoder::new(true, 4), ok.as_bytes(), 5).is_err());
        assert!(decode_all(&mut Decoder::new(true, 2), ok.as_bytes(), 5).is_err());
        // Signed mode needs signatures; unsigned accepts bare sizes.
        let bare = "3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        assert_eq!(
            decode_all(&mut Decoder::new(true, 3), bare.as_bytes(), 5),
            Err(ChunkError::MissingSignature)
        );
        let events = decode_all(&mut Decoder::new(false, 3), bare.as_bytes(), 2).unwrap();
        assert_eq!(data_of(&events), b"abc");
        assert!(matches!(
            events.last(),
            Some(Event::Trailers {
                signature: None,
                ..
            })
        ));
        // Truncated inside a chunk; data not followed by CRLF.
        assert_eq!(
            decode_all(&mut Decoder::new(false, 3), b"3\r\nab", 5),
            Err(ChunkError::Incomplete)
        );
        assert_eq!(
            decode_all(&mut Decoder::new(false, 3), b"3\r\nabcX\n0\r\n\r\n", 5),
            Err(ChunkError::Framing)
        );
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    }

    #[test]
    fn decoding_never_panics() {
        bolero::check!()
            .with_iterations(2_000)
            .with_type::<(Vec<u8>, u8, bool)>()
            .for_each(|(body, piece, signed)| {
                let mut d = Decoder::new(*signed, 100);
                let _ = decode_all(&mut d, body, usize::from(*piece));
            });
    }
}
