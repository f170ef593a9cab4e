//! Byte sizes on the command line and in reports: `4096`, `4KiB`, `1MiB`, `1.5GiB`, `4K`, `10MB`.
//!
//! `K`, `M`, `G`, `T` and `KiB`… are binary (1024-based), `KB`, `MB`… decimal. A fraction is
//! allowed as long as it comes out as a whole number of bytes.

/// Parses a size; the error is a message for clap.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ));
        }
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(format!("'{text}' is not a size: it has no number"));
    }
    if fraction.contains('.') || fraction.len() > 9 || whole.len() > 20 {
        return Err(format!("'{text}' is not a size"));
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size"))?;
    let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| "fraction too long")?);
    let scaled = mantissa
        .checked_mul(multiplier)
        .ok_or_else(|| format!("'{text}' is too large"))?;
    if scaled % scale != 0 {
        return Err(format!("'{text}' is not a whole number of bytes"));
    }
    u64::try_from(scaled / scale).map_err(|_| format!("'{text}' is too large"))
}

/// A short label: the largest binary unit that fits, with at most two decimals (`4KiB`, `1.5GiB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, unit) in UNITS {
        if bytes >= unit {
            if bytes.is_multiple_of(unit) {
                return format!("{}{name}", bytes / unit);
            }
            let value = bytes as f64 / unit as f64;
            let text = format!("{value:.2}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            return format!("{text}{name}");
        }
    }
    format!("{bytes}B")
}

/// The same with a space for prose (`64 MiB`).
pub fn format_size_spaced(bytes: u64) -> String {
    let label = format_size(bytes);
    match label.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => format!("{} {}", &label[..i], &label[i..]),
        None => label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_binary_and_decimal_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(1536 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1kb"), Ok(1000));
        assert_eq!(parse_size("12B"), Ok(12));
        assert_eq!(parse_size(".5KiB"), Ok(512));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(parse_size("").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("4XB").is_err());
        assert!(parse_size("1.2.3MiB").is_err());
        assert!(parse_size("-4KiB").is_err());
        assert!(
            parse_size("1.0001KiB").is_err(),
            "not a whole number of bytes"
        );
        assert!(parse_size("99999999999TiB").is_err(), "overflows u64");
    }

    #[test]
    fn formats_round_trip() {
        for text in ["4KiB", "1MiB", "64MiB", "1.5GiB", "3B", "2TiB"] {
            let bytes = parse_size(text).unwrap();
            assert_eq!(format_size(bytes), text);
        }
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(1500), "1.46KiB");
        assert_eq!(format_size_spaced(64 << 20), "64 MiB");
    }
}
