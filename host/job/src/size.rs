//! Parsing of `mini_batch_size` and byte sizes such as `"100MB"`.

/// How a mini-batch is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiniBatchSize {
    /// A bare number (`"10"`): files for file input, rows for tabular input.
    Count(u64),
    /// `"10 files"`.
    Files(u64),
    /// `"1000 rows"`.
    Rows(u64),
    /// `"100MB"`, `"64kb"`: at most this many bytes of input per mini-batch
    /// (one item larger than this still makes a mini-batch of its own).
    Bytes(u64),
}

impl Default for MiniBatchSize {
    fn default() -> Self {
        MiniBatchSize::Count(10)
    }
}

impl std::fmt::Display for MiniBatchSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MiniBatchSize::Count(n) => write!(f, "{n}"),
            MiniBatchSize::Files(n) => write!(f, "{n} files"),
            MiniBatchSize::Rows(n) => write!(f, "{n} rows"),
            MiniBatchSize::Bytes(n) => write!(f, "{n} bytes"),
        }
    }
}

impl std::str::FromStr for MiniBatchSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (num, unit) = split_number(t).ok_or_else(|| {
            format!("`{s}` is not a size: expected e.g. \"10\", \"10 files\", \"1000 rows\" or \"100MB\"")
        })?;
        let unit = unit.trim().to_ascii_lowercase();
        let n = num;
        let size = match unit.as_str() {
            "" => MiniBatchSize::Count(n),
            "file" | "files" => MiniBatchSize::Files(n),
            "row" | "rows" => MiniBatchSize::Rows(n),
            _ => MiniBatchSize::Bytes(
                n.checked_mul(
                    byte_unit(&unit)
                        .ok_or_else(|| format!("`{s}`: unknown unit `{unit}` (use files, rows, B, KB, MB or GB)"))?,
                )
                .ok_or_else(|| format!("`{s}` is too large"))?,
            ),
        };
        let count = match size {
            MiniBatchSize::Count(n) | MiniBatchSize::Files(n) | MiniBatchSize::Rows(n) | MiniBatchSize::Bytes(n) => n,
        };
        if count == 0 {
            return Err(format!("`{s}`: a mini-batch must hold at least one item or byte"));
        }
        Ok(size)
    }
}

fn split_number(t: &str) -> Option<(u64, &str)> {
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if end == 0 {
        return None;
    }
    Some((t[..end].parse().ok()?, &t[end..]))
}

/// Multiplier of a byte unit; KB/MB/GB are binary (1 KB = 1024 bytes), like
/// the `KiB` spellings, which are accepted too.
fn byte_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "b" | "byte" | "bytes" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("10".parse(), Ok(MiniBatchSize::Count(10)));
        assert_eq!("10 files".parse(), Ok(MiniBatchSize::Files(10)));
        assert_eq!("1000 rows".parse(), Ok(MiniBatchSize::Rows(1000)));
        assert_eq!("100MB".parse(), Ok(MiniBatchSize::Bytes(100 << 20)));
        assert_eq!("64kb".parse(), Ok(MiniBatchSize::Bytes(64 << 10)));
        assert_eq!(" 2 GiB ".parse(), Ok(MiniBatchSize::Bytes(2 << 30)));
    }

    #[test]
    fn rejects_nonsense() {
        assert!("".parse::<MiniBatchSize>().is_err());
        assert!("ten".parse::<MiniBatchSize>().is_err());
        assert!("0".parse::<MiniBatchSize>().unwrap_err().contains("at least one"));
        assert!("10 parsecs".parse::<MiniBatchSize>().unwrap_err().contains("unknown unit"));
        assert_eq!("1kb".parse(), Ok(MiniBatchSize::Bytes(1024)));
    }
}
