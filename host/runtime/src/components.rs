//! The local component registry: Azure ML's `ml_client.components.
//! create_or_update` / `components.get` as plain files under the data
//! directory (`sluice components create|list|show`), and the references
//! jobs use to name a stored component (`azureml:NAME:VERSION`,
//! `azureml:NAME@latest`, `NAME@VERSION`, `NAME@latest`).
//!
//! Layout under `DATA_DIR/components/`:
//!
//! - `blobs/sha256-HEX`: each stored file once, by content, however many
//!   versions hold it;
//! - `NAME/VERSION/component.yml`: the component as stored, its file
//!   references (`task.code` + `task.entry_script`, the local `path` or
//!   `default` of a data or model input, `task.mounts`) rewritten to
//!   `files/...` beside it, so the stored folder runs as it is;
//! - `NAME/VERSION/files/...`: hard links to the blobs (copies across
//!   filesystems);
//! - `NAME/VERSION/manifest.json`: name, version, creation time, where it
//!   came from, each file's hash and size, and the version's content hash
//!   (of the stored YAML and every file).
//!
//! A version is immutable: creating `NAME@VERSION` again with the same
//! content changes nothing; with different content it is refused. A version
//! is assembled in a temp folder and renamed into place, so a reader never
//! sees half of one and two creators of the same version cannot mix theirs.
//! What a component may pull in is bounded ([`MAX_FILES`], [`MAX_BYTES`],
//! checked from the files' sizes before anything is copied and again while
//! copying); symbolic links inside a referenced folder are refused, not
//! followed. Names and versions (and the input names that become folders)
//! are plain names, so nothing is written outside the registry.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};
use sluice_job::durable::write_durably;

/// The most files one component version may store.
pub const MAX_FILES: usize = 10_000;
/// The most bytes one component version may store, all files together.
pub const MAX_BYTES: u64 = 4 << 30;
/// The largest component YAML read.
pub const MAX_YAML_BYTES: u64 = 1 << 20;

/// Why a component cannot be stored or found.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// What was being read or written.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The component file is not YAML with the keys a component needs.
    #[error("{file}: {message}")]
    Invalid {
        /// The component file.
        file: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The version exists with other content.
    #[error(
        "component {name}@{version} already exists with different content (stored {stored}, this {new}); \
         versions are immutable: give this one a new `version`"
    )]
    Changed {
        /// The component.
        name: String,
        /// The version.
        version: String,
        /// The stored content hash (first 12 hex digits).
        stored: String,
        /// This file's content hash (first 12 hex digits).
        new: String,
    },
    /// No stored component matches the reference.
    #[error("no component {reference} in {dir}{hint}")]
    NotFound {
        /// What was asked for.
        reference: String,
        /// The registry folder.
        dir: PathBuf,
        /// What there is instead, or how to create one.
        hint: String,
    },
    /// The reference is not one of the accepted forms.
    #[error("`{0}`: {1}")]
    BadReference(String, String),
}

/// Why a file could not go into the blob store.
enum BlobError {
    Io(ComponentError),
    /// It held more bytes than its size said (it grew while being copied).
    Grew,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ComponentError + '_ {
    move |source| ComponentError::Io { path: path.to_path_buf(), source }
}

/// One stored file of a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredFile {
    /// Its path under the version folder (`files/code/scorer.wasm`).
    pub path: String,
    /// `sha256-HEX` of its bytes (its blob's name).
    pub hash: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What `manifest.json` holds about a stored version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// `name` in the YAML.
    pub name: String,
    /// `version` in the YAML, as text.
    pub version: String,
    /// RFC 3339, when it was stored.
    pub created: String,
    /// The same in nanoseconds since 1970: what `@latest` orders by.
    #[serde(default)]
    pub created_ns: u128,
    /// The component file it was created from.
    pub source: PathBuf,
    /// `sha256-HEX` of the stored YAML and every file (path and hash).
    pub content: String,
    /// Every stored file, sorted by path.
    pub files: Vec<StoredFile>,
}

/// A stored version: its manifest and where it lies.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The manifest.
    pub manifest: Manifest,
    /// `DATA_DIR/components/NAME/VERSION`.
    pub dir: PathBuf,
}

impl Stored {
    /// The stored component file, ready to run.
    pub fn yaml_path(&self) -> PathBuf {
        self.dir.join("component.yml")
    }
}

/// What `create` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// A new version was stored.
    New,
    /// The same content was already stored under this name and version.
    Unchanged,
}

/// A reference to a stored component, as jobs and pipelines write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The component name.
    pub name: String,
    /// `None`: the most recently created version (`@latest`).
    pub version: Option<String>,
}

impl Reference {
    /// `azureml:NAME:VERSION`, `azureml:NAME@latest`, `azureml:NAME`
    /// (latest), `NAME@VERSION` or `NAME@latest`; `None` when `s` is none
    /// of these (a file path, say). A registry other than this machine's
    /// (`azureml://registries/...`) is an error.
    pub fn parse(s: &str) -> Result<Option<Reference>, ComponentError> {
        let bad = |why: &str| ComponentError::BadReference(s.to_string(), why.to_string());
        let (body, azure) = match s.strip_prefix("azureml:") {
            Some(rest) if rest.starts_with("//") => {
                return Err(bad(
                    "components in an Azure ML registry or workspace cannot be fetched here; store the component \
                     with `sluice components create FILE.yml` and use azureml:NAME:VERSION",
                ));
            }
            Some(rest) => (rest, true),
            None => (s, false),
        };
        let (name, version) = if let Some((n, v)) = body.split_once('@') {
            (n, Some(v))
        } else if azure {
            match body.split_once(':') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            }
        } else {
            return Ok(None);
        };
        // A plain `x@y` that looks like a path (`./a@b.yml`, `score@2.yml`)
        // is left to the caller.
        if !azure && (s.contains('/') || s.ends_with(".yml") || s.ends_with(".yaml")) {
            return Ok(None);
        }
        check_name("name", name).map_err(|m| bad(&m))?;
        let version = match version {
            None | Some("latest") => None,
            Some(v) => {
                check_name("version", v).map_err(|m| bad(&m))?;
                Some(v.to_string())
            }
        };
        Ok(Some(Reference { name: name.to_string(), version }))
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version.as_deref().unwrap_or("latest"))
    }
}

/// A name or version becomes a folder name: letters, digits, `_`, `-`, `.`,
/// not starting with `.`, at most 255 bytes.
fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a component {what} is 1-255 letters, digits, `_`, `-` or `.`, not starting with `.`; got `{}`",
            sluice_job::text::guest_text(s, 64)
        ))
    }
}

/// The registry under one data directory.
#[derive(Debug, Clone)]
pub struct ComponentStore {
    dir: PathBuf,
}

/// A file or folder the YAML references, found before anything is stored.
struct FileRef {
    /// Where in the YAML (`task.code`), for messages and the rewrite.
    key: Vec<String>,
    /// Where it is now.
    from: PathBuf,
    /// Where it goes under the version folder (`files/code`).
    to: String,
}

impl ComponentStore {
    /// The registry of the data directory `data_dir` (made on first use).
    pub fn new(data_dir: &Path) -> ComponentStore {
        ComponentStore { dir: data_dir.join("components") }
    }

    /// The registry folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores the component file `file` (its `name`, `version` and every
    /// file it references) as `NAME/VERSION`.
    pub fn create(&self, file: &Path) -> Result<(Stored, Created), ComponentError> {
        let invalid = |message: String| ComponentError::Invalid { file: file.to_path_buf(), message };
        let mut doc = parse_yaml(file, &read_yaml(file)?)?;
        let scalar = |key: &str| -> Result<String, ComponentError> {
            match doc.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                Some(_) => Err(invalid(format!("`{key}`: expected text"))),
                None => Err(invalid(format!("`{key}`: required to store a component (e.g. `{key}: 1`)"))),
            }
        };
        let (name, version) = (scalar("name")?, scalar("version")?);
        check_name("name", &name).map_err(|m| invalid(format!("`name`: {m}")))?;
        if name == "blobs" {
            return Err(invalid("`name`: `blobs` is the registry's own folder; choose another name".into()));
        }
        check_name("version", &version).map_err(|m| invalid(format!("`version`: {m}")))?;
        if version == "latest" {
            return Err(invalid("`version`: `latest` names the newest version; give a version of its own".into()));
        }
        let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let refs = references(&doc, base).map_err(invalid)?;

        // Every file and its size first: the bounds hold before anything
        // is copied.
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        let mut total = 0u64;
        for r in &refs {
            for (rel, path) in walk(&r.from, &r.key.join("."))? {
                let to = if rel.is_empty() { r.to.clone() } else { format!("{}/{rel}", r.to) };
                if found.len() >= MAX_FILES {
                    return Err(invalid(format!("references more than {MAX_FILES} files")));
                }
                total = total.saturating_add(std::fs::metadata(&path).map_err(io(&path))?.len());
                if total > MAX_BYTES {
                    return Err(invalid(format!("references more than {} GiB of files", MAX_BYTES >> 30)));
                }
                found.push((to, path));
            }
        }
        // Then each into the blob store, hashed as it is copied.
        let blobs = self.dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
        let mut files: Vec<(StoredFile, PathBuf)> = Vec::with_capacity(found.len());
        let mut budget = MAX_BYTES;
        for (to, path) in found {
            let (hash, bytes) = self.put_blob(&path, budget).map_err(|e| match e {
                BlobError::Io(e) => e,
                BlobError::Grew => invalid(format!("{} grew while it was stored", path.display())),
            })?;
            budget -= bytes;
            files.push((StoredFile { path: to, hash, bytes }, path));
        }
        files.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        for r in &refs {
            set(&mut doc, &r.key, Value::String(r.to.clone()));
        }
        if refs.iter().any(|r| r.key == ["task", "code"])
            && let Some(Value::Mapping(task)) = doc.get_mut("task")
        {
            task.remove("entry_script");
        }
        let stored_yaml = serde_yaml_ng::to_string(&doc).map_err(|e| invalid(format!("cannot write back: {e}")))?;
        let content = content_hash(&stored_yaml, files.iter().map(|(f, _)| f));

        let version_dir = self.dir.join(&name).join(&version);
        if let Some(existing) = self.read(&version_dir)? {
            return same_or_changed(existing, &content);
        }
        // Assembled aside (a temp folder of its own: no other creator, in
        // this process or another, writes into it), then renamed into place.
        let name_dir = self.dir.join(&name);
        std::fs::create_dir_all(&name_dir).map_err(io(&name_dir))?;
        let tmp_dir =
            tempfile::Builder::new().prefix(&format!(".{version}.")).tempdir_in(&name_dir).map_err(io(&name_dir))?;
        let tmp = tmp_dir.path().to_path_buf();
        let assembled = (|| {
            for (f, _) in &files {
                // Only plain names under the version folder (`references`
                // builds them from checked names; checked again here).
                let rel = Path::new(&f.path);
                if !rel.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
                    return Err(invalid(format!("`{}` is not a plain path under the component", f.path)));
                }
                let dest = tmp.join(rel);
                let parent = dest.parent().expect("under the version folder");
                std::fs::create_dir_all(parent).map_err(io(parent))?;
                let blob = blobs.join(&f.hash);
                if std::fs::hard_link(&blob, &dest).is_err() {
                    // Never over an existing file.
                    let mut to =
                        std::fs::OpenOptions::new().write(true).create_new(true).open(&dest).map_err(io(&dest))?;
                    std::io::copy(&mut std::fs::File::open(&blob).map_err(io(&blob))?, &mut to).map_err(io(&dest))?;
                }
            }
            write_durably(&tmp.join("component.yml"), stored_yaml.as_bytes()).map_err(io(&tmp))?;
            let now = std::time::SystemTime::now();
            let manifest = Manifest {
                name: name.clone(),
                version: version.clone(),
                created: humantime::format_rfc3339_seconds(now).to_string(),
                created_ns: now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
                source: std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()),
                content: content.clone(),
                files: files.iter().map(|(f, _)| f.clone()).collect(),
            };
            let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
            write_durably(&tmp.join("manifest.json"), &json).map_err(io(&tmp))?;
            Ok::<_, ComponentError>(manifest)
        })();
        // On any error the temp folder goes with `tmp_dir`.
        let manifest = assembled?;
        if let Err(e) = std::fs::rename(&tmp, &version_dir) {
            // Another creator got there first: theirs stands if it is the same.
            if let Some(existing) = self.read(&version_dir)? {
                return same_or_changed(existing, &content);
            }
            return Err(io(&version_dir)(e));
        }
        Ok((Stored { manifest, dir: version_dir }, Created::New))
    }

    /// Copies `path` into the blob store, hashing the bytes it copies (so a
    /// blob's name is always its content, even if the file changes under
    /// it), at most `budget` bytes; its hash and size. A blob already
    /// there is kept.
    fn put_blob(&self, path: &Path, budget: u64) -> Result<(String, u64), BlobError> {
        use std::io::Write;
        let blobs = self.dir.join("blobs");
        let f = std::fs::File::open(path).map_err(|e| BlobError::Io(io(path)(e)))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&blobs).map_err(|e| BlobError::Io(io(&blobs)(e)))?;
        let mut hasher = Sha256::new();
        let (mut bytes, mut buf) = (0u64, vec![0u8; 1 << 16]);
        let mut reader = f.take(budget.saturating_add(1));
        loop {
            let n = reader.read(&mut buf).map_err(|e| BlobError::Io(io(path)(e)))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            if bytes > budget {
                return Err(BlobError::Grew);
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(|e| BlobError::Io(io(tmp.path())(e)))?;
        }
        let hash = format!("sha256-{}", hex::encode(hasher.finalize()));
        let blob = blobs.join(&hash);
        match tmp.persist_noclobber(&blob) {
            Ok(_) => {}
            Err(e) if blob.is_file() => drop(e),
            Err(e) => return Err(BlobError::Io(io(&blob)(e.error))),
        }
        Ok((hash, bytes))
    }

    /// The stored version in `dir`, if there is one.
    fn read(&self, dir: &Path) -> Result<Option<Stored>, ComponentError> {
        let path = dir.join("manifest.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| ComponentError::Invalid {
                    file: path.clone(),
                    message: format!("not a sluice component manifest: {e}"),
                })?;
                Ok(Some(Stored { manifest, dir: dir.to_path_buf() }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Every stored version, by name, then oldest first.
    pub fn list(&self) -> Result<Vec<Stored>, ComponentError> {
        let mut out = Vec::new();
        let names = match std::fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut names: Vec<PathBuf> = names.flatten().map(|e| e.path()).collect();
        names.sort();
        for n in names {
            let fname = n.file_name().and_then(|f| f.to_str()).unwrap_or("");
            if fname == "blobs" || fname.starts_with('.') || !n.is_dir() {
                continue;
            }
            let mut versions = Vec::new();
            for v in std::fs::read_dir(&n).map_err(io(&n))?.flatten() {
                if v.file_name().to_str().is_some_and(|s| !s.starts_with('.'))
                    && let Some(s) = self.read(&v.path())?
                {
                    versions.push(s);
                }
            }
            versions.sort_by(|a, b| a.manifest.created_ns.cmp(&b.manifest.created_ns).then(a.dir.cmp(&b.dir)));
            out.extend(versions);
        }
        Ok(out)
    }

    /// The stored version a reference names (`@latest`: the most recently
    /// created one).
    pub fn get(&self, r: &Reference) -> Result<Stored, ComponentError> {
        let all: Vec<Stored> = self.list()?.into_iter().filter(|s| s.manifest.name == r.name).collect();
        let found = match &r.version {
            Some(v) => all.iter().find(|s| &s.manifest.version == v),
            None => all.last(),
        };
        found.cloned().ok_or_else(|| ComponentError::NotFound {
            reference: r.to_string(),
            dir: self.dir.clone(),
            hint: if all.is_empty() {
                format!(" (store it with `sluice components create FILE.yml`, its `name: {}`)", r.name)
            } else {
                let v: Vec<&str> = all.iter().map(|s| s.manifest.version.as_str()).collect();
                format!(" (versions: {})", v.join(", "))
            },
        })
    }
}

/// A version already stored: the same content is a no-op, other content
/// is refused (versions never change).
fn same_or_changed(existing: Stored, content: &str) -> Result<(Stored, Created), ComponentError> {
    if existing.manifest.content == content {
        return Ok((existing, Created::Unchanged));
    }
    Err(ComponentError::Changed {
        name: existing.manifest.name.clone(),
        version: existing.manifest.version.clone(),
        stored: short(&existing.manifest.content),
        new: short(content),
    })
}

/// `sha256-HEX` of a version's content.
fn content_hash<'a>(yaml: &str, files: impl Iterator<Item = &'a StoredFile>) -> String {
    let mut h = Sha256::new();
    h.update(b"component.yml\0");
    h.update(Sha256::digest(yaml.as_bytes()));
    for f in files {
        h.update(b"\n");
        h.update(f.path.as_bytes());
        h.update(b"\0");
        h.update(f.hash.as_bytes());
    }
    format!("sha256-{}", hex::encode(h.finalize()))
}

fn short(hash: &str) -> String {
    hash.trim_start_matches("sha256-").chars().take(12).collect()
}

/// The files a component YAML references: `task.code` (with
/// `task.entry_script` when `code` is a folder), the local `path` or
/// `default` of data and model inputs, and `task.mounts` folders. URLs and
/// `${{...}}` bindings are left alone.
fn references(doc: &Value, base: &Path) -> Result<Vec<FileRef>, String> {
    let local = |s: &str| !(s.contains("://") || s.starts_with("azureml:") || s.contains("${{"));
    let resolve = |s: &str| {
        let p = PathBuf::from(s);
        if p.is_absolute() { p } else { base.join(p) }
    };
    let mut out = Vec::new();
    let task = doc.get("task");
    let code = task.and_then(|t| t.get("code")).and_then(Value::as_str);
    let entry = task.and_then(|t| t.get("entry_script")).and_then(Value::as_str);
    match (code, entry) {
        (None, None) => return Err("`task.code`: required: the scorer .wasm component".into()),
        (code, Some(entry)) if local(code.unwrap_or(".")) => {
            let p = resolve(code.unwrap_or(".")).join(entry);
            if !p.is_file() {
                return Err(format!("`task.entry_script`: {} is not a file", p.display()));
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("scorer.wasm").to_string();
            out.push(FileRef { key: vec!["task".into(), "code".into()], from: p, to: format!("files/code/{name}") });
        }
        (Some(code), None) if local(code) => {
            let p = resolve(code);
            if !p.is_file() {
                return Err(format!("`task.code`: {} is not a file (the scorer .wasm)", p.display()));
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("scorer.wasm").to_string();
            out.push(FileRef { key: vec!["task".into(), "code".into()], from: p, to: format!("files/code/{name}") });
        }
        _ => {}
    }
    if let Some(Value::Mapping(inputs)) = doc.get("inputs") {
        for (name, port) in inputs {
            let (Some(name), Some(port)) = (name.as_str(), port.as_mapping()) else { continue };
            // The name becomes a folder of the stored component.
            check_name("input name", name)
                .map_err(|m| format!("`inputs.{}`: {m}", sluice_job::text::guest_text(name, 64)))?;
            let kind = port.get("type").and_then(Value::as_str).unwrap_or("");
            if !matches!(kind, "uri_file" | "uri_folder" | "mltable" | "mlflow_model" | "custom_model") {
                continue;
            }
            for field in ["path", "default"] {
                let Some(s) = port.get(field).and_then(Value::as_str) else { continue };
                if !local(s) {
                    continue;
                }
                let p = resolve(s);
                if !p.exists() {
                    return Err(format!("`inputs.{name}.{field}`: {} does not exist", p.display()));
                }
                let leaf = p.file_name().and_then(|n| n.to_str()).unwrap_or("data").to_string();
                out.push(FileRef {
                    key: vec!["inputs".into(), name.into(), field.into()],
                    from: p,
                    to: format!("files/inputs/{name}/{leaf}"),
                });
            }
        }
    }
    if let Some(Value::Mapping(mounts)) = task.and_then(|t| t.get("mounts")) {
        for (i, (guest, host)) in mounts.iter().enumerate() {
            let (Some(guest), Some(host)) = (guest.as_str(), host.as_str()) else { continue };
            let p = resolve(host);
            if !p.is_dir() {
                return Err(format!("`task.mounts.{guest}`: {} is not a folder", p.display()));
            }
            out.push(FileRef {
                key: vec!["task".into(), "mounts".into(), guest.into()],
                from: p,
                to: format!("files/mounts/{i}"),
            });
        }
    }
    Ok(out)
}

/// `(relative path, path)` of every file at `root`: itself when it is a
/// file ("" as its relative path), else every file under it, sorted.
/// `root` itself may be a symbolic link (the YAML names it: its target
/// is stored); one inside a referenced folder is refused, since it could
/// point anywhere on the machine.
fn walk(root: &Path, key: &str) -> Result<Vec<(String, PathBuf)>, ComponentError> {
    let refuse = |p: &Path, why: &str| ComponentError::Invalid {
        file: p.to_path_buf(),
        message: format!("referenced by `{key}`: {why}"),
    };
    let meta = std::fs::metadata(root).map_err(io(root))?;
    if meta.is_file() {
        return Ok(vec![(String::new(), root.to_path_buf())]);
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(|e| refuse(root, &e.to_string()))?;
        let ft = entry.file_type();
        if ft.is_symlink() {
            return Err(refuse(entry.path(), "a symbolic link; store the file itself"));
        }
        if ft.is_file() {
            if out.len() >= MAX_FILES {
                return Err(refuse(root, &format!("more than {MAX_FILES} files")));
            }
            let rel = entry.path().strip_prefix(root).expect("under root");
            let rel = rel.to_str().ok_or_else(|| refuse(entry.path(), "a file name that is not UTF-8"))?;
            out.push((rel.to_string(), entry.path().to_path_buf()));
        }
    }
    Ok(out)
}

/// Sets `doc[key...]` (the mappings on the way exist: the key was read).
fn set(doc: &mut Value, key: &[String], value: Value) {
    let mut cur = doc;
    for k in &key[..key.len() - 1] {
        cur = cur.get_mut(k.as_str()).expect("the key was read from this document");
    }
    if let Value::Mapping(m) = cur {
        m.insert(Value::String(key[key.len() - 1].clone()), value);
    }
}

/// The spec text of a job YAML that names a component (`component:` a
/// component file relative to the job, `azureml:NAME:VERSION`,
/// `azureml:NAME@latest` or `NAME@VERSION`): the component's YAML with the
/// job's keys over it; `None` when the job names none. The component's own
/// relative paths (scorer, data input paths, mounts) are made absolute
/// first, so the text runs with the job's folder as its base and resumes
/// without the registry; the job's paths, and outputs, stay the job's.
/// Mappings merge key by key, the job winning; a port merges over the
/// component's port, and a bare value binds a literal port's `value` or any
/// other port's `path`. Nothing is checked to exist here: the spec's
/// validation of the result names whatever is missing.
pub fn compose_job(job_file: &Path, data_dir: &Path) -> Result<Option<String>, ComponentError> {
    let text = read_yaml(job_file)?;
    let job: Value = parse_yaml(job_file, &text)?;
    if job.get("component").is_none() {
        return Ok(None);
    }
    let base = job_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    compose(job, job_file, base, data_dir).map(Some)
}

/// `sluice run azureml:NAME:VERSION`: the stored component as a job of its
/// own in `cwd` (its outputs and `--set` paths relative to where the
/// command runs, never inside the registry); `None` when `reference` is
/// not a registry reference.
pub fn compose_reference(reference: &str, cwd: &Path, data_dir: &Path) -> Result<Option<String>, ComponentError> {
    if Reference::parse(reference)?.is_none() {
        return Ok(None);
    }
    let mut job = serde_yaml_ng::Mapping::new();
    job.insert(Value::String("component".into()), Value::String(reference.into()));
    compose(Value::Mapping(job), Path::new(reference), cwd, data_dir).map(Some)
}

/// [`compose_job`] of a job already parsed (a pipeline's step, whose
/// `component:` is relative to `base`); `origin` names it in messages.
pub fn compose_value(job: Value, origin: &Path, base: &Path, data_dir: &Path) -> Result<String, ComponentError> {
    compose(job, origin, base, data_dir)
}

fn compose(mut job: Value, origin: &Path, base: &Path, data_dir: &Path) -> Result<String, ComponentError> {
    let invalid = |file: &Path, message: String| ComponentError::Invalid { file: file.to_path_buf(), message };
    let Some(Value::String(reference)) = job.get("component").cloned() else {
        return Err(invalid(origin, "`component`: expected azureml:NAME:VERSION, NAME@VERSION or a file".into()));
    };
    // A file next to the job wins over a reference of the same spelling.
    let beside = base.join(&reference);
    let file = if beside.is_file() {
        beside
    } else {
        match Reference::parse(&reference)? {
            Some(r) => ComponentStore::new(data_dir).get(&r)?.yaml_path(),
            None => return Err(invalid(origin, format!("`component`: {} is not a file", beside.display()))),
        }
    };
    let mut component = parse_yaml(&file, &read_yaml(&file)?)?;
    let cbase = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    absolutize(&mut component, &std::path::absolute(cbase).unwrap_or_else(|_| cbase.to_path_buf()));
    if let Value::Mapping(m) = &mut job {
        m.remove("component");
    }
    merge(&mut component, job);
    serde_yaml_ng::to_string(&component).map_err(|e| invalid(origin, format!("cannot compose: {e}")))
}

/// Whether a port is a literal (its value is text, not a path).
fn is_literal(port: &serde_yaml_ng::Mapping) -> bool {
    matches!(port.get("type").and_then(Value::as_str), Some("string" | "integer" | "number" | "boolean"))
}

/// A local, relative path in `doc` made absolute against `base`: the
/// scorer (`task.code`, joined with `task.entry_script`), each data or
/// model port's `path` and `default`, and `task.mounts` folders.
fn absolutize(doc: &mut Value, base: &Path) {
    let local = |s: &str| !(s.contains("://") || s.starts_with("azureml:") || s.contains("${{"));
    let abs = |s: &str| Value::String(base.join(s).display().to_string());
    if let Some(Value::Mapping(task)) = doc.get_mut("task") {
        let code = task.get("code").and_then(Value::as_str).map(str::to_string);
        let entry = task.get("entry_script").and_then(Value::as_str).map(str::to_string);
        match (code, entry) {
            (code, Some(entry)) if local(code.as_deref().unwrap_or(".")) => {
                let joined = Path::new(code.as_deref().unwrap_or(".")).join(entry);
                task.insert(Value::String("code".into()), abs(&joined.display().to_string()));
                task.remove("entry_script");
            }
            (Some(code), None) if local(&code) => {
                task.insert(Value::String("code".into()), abs(&code));
            }
            _ => {}
        }
        if let Some(Value::Mapping(mounts)) = task.get_mut("mounts") {
            for (_, host) in mounts.iter_mut() {
                if let Some(h) = host.as_str().filter(|h| local(h)) {
                    *host = abs(h);
                }
            }
        }
    }
    if let Some(Value::Mapping(inputs)) = doc.get_mut("inputs") {
        for (_, port) in inputs.iter_mut() {
            let Value::Mapping(port) = port else { continue };
            if is_literal(port) {
                continue;
            }
            for field in ["path", "default"] {
                if let Some(p) = port.get(field).and_then(Value::as_str).filter(|p| local(p)).map(str::to_string) {
                    port.insert(Value::String(field.into()), abs(&p));
                }
            }
        }
    }
}

fn parse_yaml(file: &Path, text: &str) -> Result<Value, ComponentError> {
    let invalid = |message: String| ComponentError::Invalid { file: file.to_path_buf(), message };
    sluice_job::spec::check_spec_shape(text).map_err(invalid)?;
    serde_yaml_ng::from_str(text).map_err(|e| invalid(format!("not YAML: {e}")))
}

fn read_yaml(file: &Path) -> Result<String, ComponentError> {
    let text = sluice_job::spec::read_spec_text(file).map_err(io(file))?;
    if text.len() as u64 > MAX_YAML_BYTES {
        return Err(ComponentError::Invalid {
            file: file.to_path_buf(),
            message: format!("larger than {} KiB: not a job or component file", MAX_YAML_BYTES >> 10),
        });
    }
    Ok(text)
}

/// `over` merged into `base`: mappings key by key, anything else replaced.
/// Under `inputs`/`outputs`, a bare value given for a port mapping binds it
/// (a literal port's `value`, any other port's `path`).
fn merge(base: &mut Value, over: Value) {
    merge_at(base, over, Level::Root);
}

/// Where in the document a merge is.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    /// `inputs` or `outputs`: its values are ports.
    Ports,
    /// One port.
    Port,
    Other,
}

fn merge_at(base: &mut Value, over: Value, level: Level) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                let child = match level {
                    Level::Root if matches!(k.as_str(), Some("inputs" | "outputs")) => Level::Ports,
                    Level::Ports => Level::Port,
                    _ => Level::Other,
                };
                match b.get_mut(&k) {
                    Some(existing) => merge_at(existing, v, child),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Mapping(port), v) if level == Level::Port => {
            let key = if is_literal(port) { "value" } else { "path" };
            port.insert(Value::String(key.into()), v);
        }
        (b, v) => *b = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_merges_over_its_component_port_by_port() {
        let mut c: Value = serde_yaml_ng::from_str(
            "type: parallel\nmini_batch_size: '2'\ninputs:\n  data: {type: uri_folder}\n  \
             drop: {type: string, default: a}\n  n: {type: integer, min: 1}\nretry_settings: {max_retries: 1, timeout: 5}\n",
        )
        .unwrap();
        let j: Value = serde_yaml_ng::from_str(
            "inputs:\n  data: {type: uri_folder, path: ./in}\n  drop: b\n  n: 3\nretry_settings: {timeout: 9}\nname: j\n",
        )
        .unwrap();
        merge(&mut c, j);
        let want: Value = serde_yaml_ng::from_str(
            "type: parallel\nmini_batch_size: '2'\ninputs:\n  data: {type: uri_folder, path: ./in}\n  \
             drop: {type: string, default: a, value: b}\n  n: {type: integer, min: 1, value: 3}\n\
             retry_settings: {max_retries: 1, timeout: 9}\nname: j\n",
        )
        .unwrap();
        assert_eq!(c, want);
    }

    #[test]
    fn references_parse_in_azures_forms_and_leave_paths_alone() {
        let r = |name: &str, v: Option<&str>| Some(Reference { name: name.into(), version: v.map(String::from) });
        assert_eq!(Reference::parse("azureml:score:1").unwrap(), r("score", Some("1")));
        assert_eq!(Reference::parse("azureml:score@latest").unwrap(), r("score", None));
        assert_eq!(Reference::parse("azureml:score").unwrap(), r("score", None));
        assert_eq!(Reference::parse("score@2.1").unwrap(), r("score", Some("2.1")));
        assert_eq!(Reference::parse("score@latest").unwrap(), r("score", None));
        assert_eq!(Reference::parse("./x.yml").unwrap(), None);
        assert_eq!(Reference::parse("dir/a@b.yml").unwrap(), None);
        assert_eq!(Reference::parse("score@2.yml").unwrap(), None);
        assert!(Reference::parse("azureml://registries/r/components/c").is_err());
        let e = Reference::parse("azureml:../etc:1").unwrap_err().to_string();
        assert!(e.contains("letters, digits"), "{e}");
    }
}
