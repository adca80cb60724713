//! Where a job's input or output is: a local path or an object-storage URL.
//!
//! The job model only recognises a URL and checks its shape (a known
//! scheme, a bucket or container, a key where one is needed); it never
//! contacts the store: whether the bucket exists or the credentials work is
//! found out when the job lists its input or opens its output
//! (`sluice_io::objects`, which holds the one client). So validating a
//! spec stays cheap and offline, and host/job knows no object-store crate.
//!
//! URL forms (those `object_store`'s `ObjectStoreScheme::parse` maps to a
//! store):
//!
//! - `s3://bucket/prefix` (also `s3a://`), and `https://` URLs of hosts
//!   under `amazonaws.com` or `r2.cloudflarestorage.com`: Amazon S3 or an
//!   S3-compatible server;
//! - `az://container/prefix` (also `azure://`, `adl://`, `abfs://`,
//!   `abfss://container@account.dfs.core.windows.net/prefix`), and
//!   `https://` URLs of hosts under `blob.core.windows.net`,
//!   `dfs.core.windows.net` (and their `fabric.microsoft.com` forms): Azure
//!   Blob Storage;
//! - `gs://bucket/prefix`: Google Cloud Storage.
//!
//! Any other `scheme://` is refused (a typo such as `s4://` must not become
//! a local folder named `s4:`), and so is plain `http://`: an HTTP server is
//! not object storage a job can list and write.

use std::path::{Path, PathBuf};

/// Where an input or an output is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local path (absolute once the spec is validated).
    Local(PathBuf),
    /// An object-storage URL, as written but without trailing `/`s
    /// (`s3://bucket/in`); see the module docs for the forms accepted.
    Url(String),
}

/// The schemes of object storage, each with the store it names.
const SCHEMES: &[(&str, &str)] = &[
    ("s3", "Amazon S3"),
    ("s3a", "Amazon S3"),
    ("gs", "Google Cloud Storage"),
    ("az", "Azure Blob Storage"),
    ("azure", "Azure Blob Storage"),
    ("adl", "Azure Blob Storage"),
    ("abfs", "Azure Blob Storage"),
    ("abfss", "Azure Blob Storage"),
];

/// `https://` hosts that are object storage (the bucket or container is the
/// first path segment, except for virtual-hosted S3 names).
const HTTPS_HOSTS: &[&str] = &[
    "amazonaws.com",
    "r2.cloudflarestorage.com",
    "blob.core.windows.net",
    "dfs.core.windows.net",
    "blob.fabric.microsoft.com",
    "dfs.fabric.microsoft.com",
];

impl Location {
    /// Whether `s` is written as a URL (`scheme://...`), known or not: such
    /// a value is never taken as a local path. [`Location::parse_url`]
    /// says whether it is one sluice can use.
    pub fn is_url(s: &str) -> bool {
        match s.split_once("://") {
            Some((scheme, _)) => {
                !scheme.is_empty()
                    && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            }
            None => false,
        }
    }

    /// An object-storage URL, checked for shape only: a known scheme, a
    /// bucket (or container, or host), and no empty path segments. Trailing
    /// `/`s are dropped (`s3://b/in/` is the prefix `s3://b/in`). The error
    /// says what is wrong, with the URL and the schemes accepted.
    pub fn parse_url(s: &str) -> Result<Location, String> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| format!("`{s}` is not a URL (scheme://...)"))?;
        let lower = scheme.to_ascii_lowercase();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let known = SCHEMES.iter().any(|(k, _)| *k == lower);
        if lower == "https" {
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_ascii_lowercase();
            if !HTTPS_HOSTS.iter().any(|h| host == *h || host.ends_with(&format!(".{h}"))) {
                return Err(format!(
                    "`{s}`: an https:// URL is read as object storage only on Amazon S3, Cloudflare R2 or Azure \
                     hosts ({}); use s3://, az:// or gs:// otherwise",
                    HTTPS_HOSTS.join(", ")
                ));
            }
        } else if !known {
            let names: Vec<String> = SCHEMES.iter().map(|(k, _)| format!("{k}://")).collect();
            return Err(format!(
                "`{s}`: unknown storage scheme `{scheme}://` (known: {}, and https:// on Amazon S3 or Azure hosts)",
                names.join(", ")
            ));
        }
        if authority.is_empty() {
            return Err(format!("`{s}`: no bucket or container after `{scheme}://`"));
        }
        let path = path.trim_end_matches('/');
        if path.split('/').any(|seg| seg.is_empty()) && !path.is_empty() {
            return Err(format!("`{s}`: empty path segment (`//`)"));
        }
        if path.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(format!("`{s}`: `.` and `..` are not object key segments"));
        }
        let url =
            if path.is_empty() { format!("{scheme}://{authority}") } else { format!("{scheme}://{authority}/{path}") };
        Ok(Location::Url(url))
    }

    /// The local path, if this is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Url(_) => None,
        }
    }

    /// The URL, if this is one.
    pub fn as_url(&self) -> Option<&str> {
        match self {
            Location::Url(u) => Some(u),
            Location::Local(_) => None,
        }
    }

    /// The last name in the path or URL (`s3://b/out/result.csv` ->
    /// `result.csv`); `None` for a bare bucket or a root path.
    pub fn file_name(&self) -> Option<&str> {
        match self {
            Location::Local(p) => p.file_name()?.to_str(),
            Location::Url(u) => {
                let (_, rest) = u.split_once("://")?;
                let (_, path) = rest.split_once('/')?;
                path.rsplit('/').next().filter(|n| !n.is_empty())
            }
        }
    }

    /// Shown as written: a path as `Path::display` shows it, a URL as is.
    /// (So call sites read the same for both kinds.)
    pub fn display(&self) -> &Location {
        self
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Url(u) => f.write_str(u),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Location {
        Location::Local(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Location {
        Location::Local(p.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_for_shape_and_typos_are_refused() {
        assert_eq!(Location::parse_url("s3://b/in/").unwrap(), Location::Url("s3://b/in".into()));
        assert_eq!(Location::parse_url("gs://b").unwrap(), Location::Url("gs://b".into()));
        assert!(Location::parse_url("az://c/x/y.csv").is_ok());
        assert!(Location::parse_url("abfss://c@acct.dfs.core.windows.net/x").is_ok());
        assert!(Location::parse_url("https://acct.blob.core.windows.net/c/x").is_ok());
        let e = Location::parse_url("s4://b/in").unwrap_err();
        assert!(e.contains("unknown storage scheme `s4://`") && e.contains("s3://"), "{e}");
        assert!(Location::parse_url("https://example.com/x").unwrap_err().contains("https://"));
        assert!(Location::parse_url("s3:///in").unwrap_err().contains("no bucket"));
        assert!(Location::parse_url("s3://b/a//c").unwrap_err().contains("empty path segment"));
        assert!(Location::parse_url("s3://b/a/../c").is_err());
        assert!(Location::is_url("s4://x") && !Location::is_url("./s3/x") && !Location::is_url("C:/x"));
    }

    #[test]
    fn names_and_keys() {
        let u = Location::parse_url("s3://b/out/result.csv").unwrap();
        assert_eq!(u.file_name(), Some("result.csv"));
        assert_eq!(Location::parse_url("s3://b").unwrap().file_name(), None);
        assert_eq!(Location::Local(PathBuf::from("/a/b.csv")).file_name(), Some("b.csv"));
        assert_eq!(u.to_string(), "s3://b/out/result.csv");
    }
}
