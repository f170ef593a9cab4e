//! `obhut tenant quota` and `obhut bucket quota|usage`: quotas and usage through the admin
//! API, sizes read and printed with binary (`GiB`) or decimal (`GB`) units.

use crate::cli::shared::Client;
use anyhow::{Result, bail};
use clap::Args;
use obhut_admin::wire::QuotaReport;
use obhut_catalog::Quota;

/// The limits a `quota` command sets; none of them shows the quota instead.
#[derive(Args, Debug, Clone, Default)]
pub struct QuotaArgs {
    /// Most bytes held (objects and unfinished multipart uploads' parts), e.g. 10GiB, 500MB,
    /// 1048576.
    #[arg(long, value_parser = parse_size)]
    pub max_bytes: Option<u64>,
    /// Most objects held.
    #[arg(long)]
    pub max_objects: Option<u64>,
    /// Remove the quota (no limit).
    #[arg(long, conflicts_with_all = ["max_bytes", "max_objects"])]
    pub clear: bool,
}

/// `obhut tenant quota`'s limits, and its recount.
#[derive(Args, Debug, Clone, Default)]
pub struct TenantQuotaArgs {
    #[command(flatten)]
    pub limits: QuotaArgs,
    /// Count again what the tenant's buckets hold, from their records, and mend the usage
    /// where it fell behind (officers; after upgrading every gateway from a release that did
    /// not count usage).
    #[arg(long, conflicts_with_all = ["max_bytes", "max_objects", "clear"])]
    pub recount: bool,
}

/// `10GiB`, `1.5TB`, `4096`, `512 KiB` as bytes (binary units: KiB…PiB; decimal: KB…PB; `B`
/// or none: bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit = unit.trim();
    if number.is_empty() {
        return Err(format!("{s:?} is not a size (e.g. 10GiB)"));
    }
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000u64.pow(2),
        "g" | "gb" => 1000u64.pow(3),
        "t" | "tb" => 1000u64.pow(4),
        "p" | "pb" => 1000u64.pow(5),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "pib" => 1 << 50,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB, PiB, or KB, MB, GB, TB, PB)"
            ));
        }
    };
    if let Ok(n) = number.parse::<u64>() {
        return n
            .checked_mul(factor)
            .ok_or_else(|| format!("{s:?} is too large"));
    }
    let f: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 10GiB)"))?;
    #[allow(clippy::cast_precision_loss)]
    let bytes = f * factor as f64;
    #[allow(clippy::cast_precision_loss)]
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes.round() as u64)
}

/// Bytes in the largest binary unit that keeps a number ≥ 1, e.g. `1.5 GiB (1610612736 B)`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {} ({bytes} B)", UNITS[unit])
}

impl QuotaArgs {
    /// Whether the command changes the quota (else it shows it).
    fn changes(&self) -> bool {
        self.clear || self.max_bytes.is_some() || self.max_objects.is_some()
    }
}

/// Shows the quota and usage at `path`, or sets it first.
pub async fn run(client: &Client, path: &str, args: &QuotaArgs) -> Result<()> {
    let report: QuotaReport = if args.changes() {
        let quota = Quota {
            max_bytes: args.max_bytes,
            max_objects: args.max_objects,
        };
        let body = serde_json::to_value(quota)?;
        let v = client.call(reqwest::Method::PUT, path, Some(body)).await?;
        serde_json::from_value(v)
            .map_err(|e| anyhow::anyhow!("the admin API's answer to {path} is not a quota: {e}"))?
    } else {
        client.get(path).await?
    };
    print(&report);
    Ok(())
}

/// Recounts a tenant's usage (`path` is its quota's) and shows it.
pub async fn recount(client: &Client, path: &str) -> Result<()> {
    let v = client
        .call(reqwest::Method::POST, &format!("{path}/recount"), None)
        .await?;
    let report: QuotaReport = serde_json::from_value(v).map_err(|e| {
        anyhow::anyhow!("the admin API's answer to {path}/recount is not a quota: {e}")
    })?;
    print(&report);
    Ok(())
}

/// Usage only.
pub async fn usage(client: &Client, path: &str) -> Result<()> {
    let report: QuotaReport = client.get(path).await?;
    print(&report);
    Ok(())
}

fn print(r: &QuotaReport) {
    let name = match &r.bucket {
        Some(b) => format!("bucket {b} (tenant {})", r.tenant),
        None => format!("tenant {}", r.tenant),
    };
    let limit =
        |v: Option<u64>, fmt: fn(u64) -> String| v.map_or_else(|| "no limit".to_owned(), fmt);
    let q = r.quota.unwrap_or_default();
    println!("{name}");
    println!(
        "  bytes:   {} used, {} reserved by writes in flight; quota {}",
        human(r.usage.bytes),
        human(r.usage.reserved_bytes),
        limit(q.max_bytes, human)
    );
    println!(
        "  objects: {} used, {} reserved; quota {}",
        r.usage.objects,
        r.usage.reserved_objects,
        limit(q.max_objects, |n| n.to_string())
    );
}

/// A path segment as given (tenant and bucket names are plain: refuse anything that would
/// change the path).
pub fn segment(s: &str) -> Result<&str> {
    if s.is_empty() || s.contains(['/', '?', '#', '%']) {
        bail!("{s:?} is not a tenant or bucket name");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_binary_and_decimal_units() {
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("10 gib"), Ok(10 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("99999999999PiB").is_err());
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 29), "1.5 GiB (1610612736 B)");
    }
}
