//! The body of a tenant's PutObjectRetention, PutObjectLegalHold or PutObjectLockConfiguration,
//! as the trustee reads it: checked against what the request's signature binds (its SHA-256,
//! `Content-MD5` or a SHA checksum, carried by the ticket), then read as S3 reads it, so that
//! the state sealed (or the default kept) is the one the tenant's XML asks for, not one a
//! gateway wrote in its place.
//!
//! It owns no key and no clock, and never sees a secret.

use md5::Digest as _;
use obhut_trustee_client::TrusteeError;
use obhut_trustee_client::object_lock::LockMode;

/// Why a body that does not match what its request signed is refused.
const BODY_MISMATCH: &str =
    "the request body given is not the one the tenant's signed request bound";

/// Checks `body` against `binding` ([`obhut_trustee_client::object_lock::body_binding`]'s
/// text): `Denied` if it does not match (or the binding cannot be read).
pub(crate) fn check_binding(binding: &str, body: &[u8]) -> Result<(), TrusteeError> {
    let b64 = |d: &[u8]| base64_simd::STANDARD.encode_to_string(d);
    let matches = match binding.split_once('=') {
        Some(("sha256", hex)) => {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
            hex_simd::encode_to_string(d.as_ref(), hex_simd::AsciiCase::Lower) == hex
        }
        Some(("content-md5", v)) => b64(&md5::Md5::digest(body)) == v,
        Some(("x-amz-checksum-sha256", v)) => {
            b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body).as_ref()) == v
        }
        Some(("x-amz-checksum-sha1", v)) => {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, body);
            b64(d.as_ref()) == v
        }
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(TrusteeError::Denied(BODY_MISMATCH.into()))
    }
}

fn malformed(what: &str) -> TrusteeError {
    TrusteeError::Denied(format!(
        "the signed request body cannot be read as S3 reads it: {what}"
    ))
}

/// The text of each element below the document's root element `root`, by its path from the
/// root (`Rule/DefaultRetention/Mode`): each must be one of `paths` (or an element on the way
/// to one), at most once, and only those of `paths` hold text. Namespaces are not compared
/// (S3's is optional); entity and character references are resolved.
fn fields(xml: &str, root: &str, paths: &[&str]) -> Result<Vec<(String, String)>, TrusteeError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let bad = |e: quick_xml::Error| malformed(&e.to_string());
    // The open elements below the root, and whether the root was opened (and closed).
    let mut open: Vec<String> = Vec::new();
    let mut in_root = false;
    let mut seen_root = false;
    let mut text = String::new();
    let mut seen: Vec<String> = Vec::new();
    let mut out: Vec<(String, String)> = Vec::new();
    let enter = |name: &[u8], open: &[String], seen: &mut Vec<String>| {
        let name = std::str::from_utf8(name).map_err(|_| malformed("an element name"))?;
        let mut path = open.join("/");
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(name);
        let known = paths
            .iter()
            .any(|p| *p == path || p.starts_with(&format!("{path}/")));
        if !known || seen.contains(&path) {
            return Err(malformed(&format!("unexpected element <{name}>")));
        }
        seen.push(path);
        Ok(name.to_owned())
    };
    loop {
        match reader.read_event().map_err(bad)? {
            Event::Start(e) if !in_root => {
                if seen_root || e.local_name().as_ref() != root.as_bytes() {
                    return Err(malformed(&format!("the document is not one <{root}>")));
                }
                in_root = true;
                seen_root = true;
            }
            Event::Empty(e) if !in_root => {
                if seen_root || e.local_name().as_ref() != root.as_bytes() {
                    return Err(malformed(&format!("the document is not one <{root}>")));
                }
                seen_root = true;
            }
            Event::Start(e) => {
                let name = enter(e.local_name().as_ref(), &open, &mut seen)?;
                open.push(name);
                text.clear();
            }
            Event::Empty(e) => {
                let name = enter(e.local_name().as_ref(), &open, &mut seen)?;
                let mut path = open.clone();
                path.push(name);
                let path = path.join("/");
                if paths.contains(&path.as_str()) {
                    out.push((path, String::new()));
                }
            }
            Event::End(_) => {
                if open.is_empty() {
                    in_root = false;
                } else {
                    let path = open.join("/");
                    open.pop();
                    if paths.contains(&path.as_str()) {
                        out.push((path, std::mem::take(&mut text)));
                    } else if !text.trim().is_empty() {
                        return Err(malformed("text outside an element"));
                    }
                    text.clear();
                }
            }
            Event::Text(t) => {
                let t = t.decode().map_err(|e| malformed(&e.to_string()))?;
                if in_root && !open.is_empty() {
                    text.push_str(&t);
                } else if !t.trim().is_empty() {
                    return Err(malformed("text outside an element"));
                }
            }
            Event::CData(c) if in_root && !open.is_empty() => {
                text.push_str(&c.decode().map_err(|e| malformed(&e.to_string()))?);
            }
            Event::GeneralRef(r) if in_root && !open.is_empty() => {
                if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| malformed(&e.to_string()))?
                {
                    text.push(c);
                } else {
                    let name = r.decode().map_err(|e| malformed(&e.to_string()))?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| malformed("an unknown entity"))?;
                    text.push_str(resolved);
                }
            }
            Event::CData(_) | Event::GeneralRef(_) => {
                return Err(malformed("text outside an element"));
            }
            Event::Eof if seen_root && !in_root => return Ok(out),
            Event::Eof => return Err(malformed(&format!("no complete <{root}>"))),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

/// The value of `path` among `fields`.
fn get<'a>(fields: &'a [(String, String)], path: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v.as_str())
}

/// The longest default retention S3 allows: 100 years of 365 days.
const MAX_DEFAULT_DAYS: i64 = 36_500;

/// The default retention a PutObjectLockConfiguration's body sets (`None`: none), read as S3
/// reads it: `ObjectLockEnabled` `Enabled`, and in a `Rule` an optional `DefaultRetention`
/// with a `Mode` and one of `Days` or `Years`, positive, at most 100 years.
pub(crate) fn default_of(
    xml: &str,
) -> Result<Option<obhut_trustee_client::object_lock::DefaultRetention>, TrusteeError> {
    const MODE: &str = "Rule/DefaultRetention/Mode";
    const DAYS: &str = "Rule/DefaultRetention/Days";
    const YEARS: &str = "Rule/DefaultRetention/Years";
    let fields = fields(
        xml,
        "ObjectLockConfiguration",
        &["ObjectLockEnabled", MODE, DAYS, YEARS],
    )?;
    if get(&fields, "ObjectLockEnabled") != Some("Enabled") {
        return Err(malformed("ObjectLockEnabled is not Enabled"));
    }
    let number = |path: &str| {
        get(&fields, path)
            .map(|v| v.trim().parse::<i64>().map_err(|_| malformed(path)))
            .transpose()
    };
    let (days, years) = (number(DAYS)?, number(YEARS)?);
    let mode = get(&fields, MODE);
    if mode.is_none() && days.is_none() && years.is_none() {
        return Ok(None);
    }
    let mode = LockMode::parse(mode.unwrap_or_default()).ok_or_else(|| malformed("the mode"))?;
    let total_days = match (days, years) {
        (Some(d), None) => d,
        (None, Some(y)) => y.saturating_mul(365),
        _ => return Err(malformed("one of Days or Years")),
    };
    if total_days <= 0 || total_days > MAX_DEFAULT_DAYS {
        return Err(malformed("the default retention period"));
    }
    Ok(Some(obhut_trustee_client::object_lock::DefaultRetention {
        mode,
        days,
        years,
    }))
}

/// The retention a PutObjectRetention's body asks for (`None`: removed), read as S3 reads it:
/// a `Mode` and a `RetainUntilDate` (ISO 8601) together, or neither.
pub(crate) fn retention_of(xml: &str) -> Result<Option<(LockMode, i64)>, TrusteeError> {
    let fields = fields(xml, "Retention", &["Mode", "RetainUntilDate"])?;
    match (get(&fields, "Mode"), get(&fields, "RetainUntilDate")) {
        (None, None) => Ok(None),
        (Some(mode), Some(until)) => {
            let mode = LockMode::parse(mode).ok_or_else(|| malformed("the mode"))?;
            let at = time::OffsetDateTime::parse(
                until.trim(),
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|_| malformed("the retain until date"))?;
            let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| malformed("the retain until date"))?;
            Ok(Some((mode, ms)))
        }
        _ => Err(malformed("a mode and a retain until date go together")),
    }
}

/// Whether a PutObjectLegalHold's body sets the legal hold (`ON`) or lifts it (`OFF`).
pub(crate) fn legal_hold_of(xml: &str) -> Result<bool, TrusteeError> {
    let fields = fields(xml, "LegalHold", &["Status"])?;
    match get(&fields, "Status") {
        Some("ON") => Ok(true),
        Some("OFF") => Ok(false),
        _ => Err(malformed("the legal hold status")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = r#"xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#;

    #[test]
    fn bodies_are_read_as_s3_reads_them() {
        assert_eq!(
            retention_of(&format!(
                "<Retention {NS}><Mode>GOVERNANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>"
            ))
            .unwrap(),
            Some((LockMode::Governance, 1_893_456_000_000))
        );
        assert_eq!(
            retention_of(
                "<?xml version=\"1.0\"?>\n<Retention>\n <RetainUntilDate>2030-01-01T00:00:00.250Z</RetainUntilDate>\n <Mode>COMPLIANCE</Mode>\n</Retention>\n"
            )
            .unwrap(),
            Some((LockMode::Compliance, 1_893_456_000_250))
        );
        assert_eq!(retention_of("<Retention/>").unwrap(), None);
        assert_eq!(
            retention_of(&format!("<Retention {NS}></Retention>")).unwrap(),
            None
        );
        assert!(
            legal_hold_of(&format!("<LegalHold {NS}><Status>ON</Status></LegalHold>")).unwrap()
        );
        assert!(!legal_hold_of("<LegalHold><Status>OFF</Status></LegalHold>").unwrap());
        // What S3 would not read, or could read two ways, is refused.
        for bad in [
            "",
            "<Retention><Mode>GOVERNANCE</Mode></Retention>",
            "<Retention><Mode>GOVERNANCE</Mode><Mode>COMPLIANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>",
            "<Retention><Mode>gov</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>",
            "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>soon</RetainUntilDate></Retention>",
            "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate><Extra/></Retention>",
            "<LegalHold><Status>ON</Status></LegalHold>",
            "<Retention><Mode>GOVERNANCE</Mode>",
        ] {
            assert!(retention_of(bad).is_err(), "{bad}");
        }
        for bad in [
            "<LegalHold><Status>on</Status></LegalHold>",
            "<LegalHold/>",
            "<LegalHold><Status>ON</Status><Status>OFF</Status></LegalHold>",
            "<LegalHold><Status><X>ON</X></Status></LegalHold>",
            "<Retention><Status>ON</Status></Retention>",
            "<LegalHold><Status>ON</Status></LegalHold><LegalHold><Status>OFF</Status></LegalHold>",
        ] {
            assert!(legal_hold_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_default_retention_is_read_as_s3_reads_it() {
        use obhut_trustee_client::object_lock::DefaultRetention;
        let config = |rule: &str| {
            format!(
                "<ObjectLockConfiguration {NS}><ObjectLockEnabled>Enabled</ObjectLockEnabled>{rule}</ObjectLockConfiguration>"
            )
        };
        assert_eq!(default_of(&config("")).unwrap(), None);
        assert_eq!(default_of(&config("<Rule/>")).unwrap(), None);
        assert_eq!(
            default_of(&config(
                "<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule>"
            ))
            .unwrap(),
            Some(DefaultRetention {
                mode: LockMode::Governance,
                days: Some(1),
                years: None
            })
        );
        assert_eq!(
            default_of(&config(
                "<Rule><DefaultRetention><Years>2</Years><Mode>COMPLIANCE</Mode></DefaultRetention></Rule>"
            ))
            .unwrap(),
            Some(DefaultRetention {
                mode: LockMode::Compliance,
                days: None,
                years: Some(2)
            })
        );
        for bad in [
            "<ObjectLockConfiguration><ObjectLockEnabled>Disabled</ObjectLockEnabled></ObjectLockConfiguration>".to_owned(),
            config("<Rule><DefaultRetention><Mode>GOVERNANCE</Mode></DefaultRetention></Rule>"),
            config("<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years></DefaultRetention></Rule>"),
            config("<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>0</Days></DefaultRetention></Rule>"),
            config("<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Years>101</Years></DefaultRetention></Rule>"),
            config("<Rule><DefaultRetention><Days>1</Days></DefaultRetention></Rule>"),
            config("<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule><Rule/>"),
            config("<Rule><Mode>GOVERNANCE</Mode></Rule>"),
        ] {
            assert!(default_of(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_body_matches_only_what_its_request_signed() {
        let body = br#"<LegalHold xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>ON</Status></LegalHold>"#;
        // As boto3 sends it (its x-amz-content-sha256 and, beside, a CRC32 that binds nothing).
        let sha = "96b73c95a8d33e664ab2170e095025b47ebd55978bb71cebd6a51e394bf96722";
        check_binding(&format!("sha256={sha}"), body).unwrap();
        let md5 = base64_simd::STANDARD.encode_to_string(md5::Md5::digest(body));
        check_binding(&format!("content-md5={md5}"), body).unwrap();
        let sha_b64 = base64_simd::STANDARD
            .encode_to_string(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body));
        check_binding(&format!("x-amz-checksum-sha256={sha_b64}"), body).unwrap();
        let sha1 = base64_simd::STANDARD.encode_to_string(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            body,
        ));
        check_binding(&format!("x-amz-checksum-sha1={sha1}"), body).unwrap();
        let other = br#"<LegalHold xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>OFF</Status></LegalHold>"#;
        for binding in [
            format!("sha256={sha}"),
            format!("content-md5={md5}"),
            format!("x-amz-checksum-sha256={sha_b64}"),
            format!("x-amz-checksum-sha1={sha1}"),
            "x-amz-checksum-crc32=6XWxlw==".to_owned(),
            String::new(),
        ] {
            assert!(
                matches!(check_binding(&binding, other), Err(TrusteeError::Denied(_))),
                "{binding}"
            );
        }
    }
}
