//! Inputs and outputs on object storage (`s3://`, `az://`, `gs://`),
//! through the `object_store` crate: [`ObjectSource`] (an
//! [`InputSource`]) and [`ObjectOutput`] (an [`OutputStore`]), and the two
//! functions that pick local or object storage for a spec, [`open_input`]
//! and [`open_output`], so the runtime and a cluster worker build the same
//! thing.
//!
//! **Why here, and how.** The readers consume only byte ranges
//! ([`InputSource::read_range`]) and the output only staged parts, so object
//! storage is two more trait implementations; the scheduler does not
//! change. `object_store`'s API is async; the traits are synchronous
//! (workers are OS threads). One small multi-thread tokio runtime, private
//! to this module and started on first use, drives every request: a call
//! spawns its future there and waits on a channel, so it works from any
//! thread, inside another runtime's `block_on` included (it blocks only the
//! calling thread, as a file read would).
//!
//! **Credentials and endpoint** come from the standard environment, read by
//! `object_store`'s `from_env` builders when a store is opened:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` (a local S3 server);
//! `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` and the other
//! `AZURE_*`; `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_APPLICATION_CREDENTIALS`
//! and the other `GOOGLE_*`. TLS and request signing use ring
//! ([`init_crypto`]), the one crypto provider of the process.
//!
//! **Limits.** A request is retried 3 times within 30 s (backoff from
//! 100 ms) before it fails, so an unreachable endpoint fails a job in
//! seconds, not the crate's default three minutes. An item's identity is its
//! size and last-modified time as listed (and its ETag, compared when the
//! store gives one): S3 lists modification times in milliseconds but a HEAD
//! gives whole seconds, so [`ObjectSource::check`](InputSource::check)
//! compares whole seconds, and a rewrite within the same second with the
//! same size is caught only by the ETag. Ranges of up to 8 MiB are read with
//! one GET into memory; longer ones are streamed, at most about 1 MiB held
//! per reader. Models, the scorer and mounts stay local files.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload, RetryConfig};
use sluice_job::InputItem;
use sluice_job::spec::{InputKind, InputSpec, Location, OutputFormat, OutputSpec};

use crate::inputs::{InputError, InputSource, LocalSource, Prefetched};
use crate::output::{LocalOutput, OutputStore, PartRef, assemble_into, check_tag};

/// Why object storage could not be used: the URL, what was being done and
/// why, with the cause's whole chain (a refused connection, a missing
/// bucket, missing credentials).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URL is not one a store can be opened for, or the store could
    /// not be configured from it and the environment (e.g. no region, no
    /// account name).
    #[error("{url}: cannot open the object store: {message}")]
    Open {
        /// The URL.
        url: String,
        /// Why, with the cause's chain.
        message: String,
    },
    /// A request failed.
    #[error("{url}: cannot {op}: {message}")]
    Request {
        /// The URL of the object or prefix.
        url: String,
        /// What was being done (`list the input`, `write the output`).
        op: &'static str,
        /// Why, with the cause's chain.
        message: String,
    },
}

impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> io::Error {
        io::Error::other(e.to_string())
    }
}

/// An error and its sources, each once (`object_store` errors often repeat
/// their source's text).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        next = s.source();
    }
    out
}

fn request(url: &str, op: &'static str, e: &object_store::Error) -> StorageError {
    StorageError::Request { url: url.to_string(), op, message: chain(e) }
}

/// Installs ring as the process's rustls crypto provider, once; later calls
/// do nothing. A provider installed earlier by someone else is kept (then
/// this one is not needed). Called before the first store is opened.
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The runtime every request of this module runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-objects")
            .enable_all()
            .build()
            .expect("cannot start the object-storage runtime (threads)")
    })
}

/// Runs `fut` on the module's runtime and waits for it, from any thread.
fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    // The task only ends without sending if it panicked: that panic is
    // this call's (the scheduler turns it into a HOST_FAULT).
    rx.recv().expect("an object-storage request panicked")
}

/// Opens the store a URL names and the key (prefix) in it, configured from
/// the environment (see the module docs) and then `options`
/// (`object_store` configuration keys such as `aws_endpoint` or
/// `aws_access_key_id`, case-insensitive; for tests and callers that do not
/// use the environment). Nothing is contacted yet.
pub fn open_store(url: &str, options: &[(&str, &str)]) -> Result<(Arc<dyn ObjectStore>, Path), StorageError> {
    init_crypto();
    let open = |message: String| StorageError::Open { url: url.to_string(), message };
    let parsed = url::Url::parse(url).map_err(|e| open(e.to_string()))?;
    let (scheme, key) = ObjectStoreScheme::parse(&parsed).map_err(|e| open(chain(&e)))?;
    let retry = RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..Default::default() };
    let unknown = |k: &str| open(format!("unknown option `{k}`"));
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => {
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url).with_retry(retry);
            for (k, v) in options {
                b = b.with_config(k.to_ascii_lowercase().parse().map_err(|_| unknown(k))?, *v);
            }
            Arc::new(b.build().map_err(|e| open(chain(&e)))?)
        }
        ObjectStoreScheme::MicrosoftAzure => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url).with_retry(retry);
            for (k, v) in options {
                b = b.with_config(k.to_ascii_lowercase().parse().map_err(|_| unknown(k))?, *v);
            }
            Arc::new(b.build().map_err(|e| open(chain(&e)))?)
        }
        ObjectStoreScheme::GoogleCloudStorage => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url).with_retry(retry);
            for (k, v) in options {
                b = b.with_config(k.to_ascii_lowercase().parse().map_err(|_| unknown(k))?, *v);
            }
            Arc::new(b.build().map_err(|e| open(chain(&e)))?)
        }
        other => return Err(open(format!("{other:?} is not object storage sluice reads or writes"))),
    };
    Ok((store, key))
}

/// The input source for a spec's input: [`LocalSource`] for a path,
/// [`ObjectSource`] for a URL.
pub fn open_input(spec: &InputSpec) -> Result<Arc<dyn InputSource>, StorageError> {
    Ok(match &spec.path {
        Location::Local(_) => Arc::new(LocalSource),
        Location::Url(url) => Arc::new(ObjectSource::new(url, &[])?),
    })
}

/// Why an output store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenOutputError {
    /// A local output's folder, or its staging folder, could not be made.
    #[error("{}: cannot write the output: {source}", .path.display())]
    Local {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The object store could not be opened or reached.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The output store for `task.append_row_to`: a [`LocalOutput`] staged in
/// `staged_dir` (the job directory's `staged/`) for a path, an
/// [`ObjectOutput`] staged under [`staging_url`]`(url, job_dir)` for a URL.
/// `job_dir` should exist (its canonical path names the staging prefix, so
/// a resume from another spelling of the same folder finds its parts).
pub fn open_output(
    out: &OutputSpec,
    staged_dir: &FsPath,
    job_dir: &FsPath,
) -> Result<Box<dyn OutputStore>, OpenOutputError> {
    Ok(match &out.path {
        Location::Local(p) => Box::new(
            LocalOutput::with_format(p, staged_dir, out.format)
                .map_err(|source| OpenOutputError::Local { path: p.clone(), source })?,
        ),
        Location::Url(url) => Box::new(ObjectOutput::new(url, &staging_url(url, job_dir), out.format, &[])?),
    })
}

/// Where a URL output's parts are staged: next to the output, under
/// `.sluice-staged/NAME-HASH`, NAME being the job directory's folder name
/// and HASH the first 8 hex digits of the sha256 of its canonical path (so
/// two job directories never share parts, and the prefix says which job
/// left it): `s3://b/out/result.csv` run in `/jobs/nightly` stages under
/// `s3://b/out/.sluice-staged/nightly-1a2b3c4d`.
pub fn staging_url(output_url: &str, job_dir: &FsPath) -> String {
    use sha2::{Digest, Sha256};
    let dir = job_dir.canonicalize().or_else(|_| std::path::absolute(job_dir)).unwrap_or_else(|_| job_dir.into());
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    let hash = hex::encode(&Sha256::digest(dir.as_os_str().as_encoded_bytes())[..4]);
    let folder = output_url.rsplit_once('/').map_or(output_url, |(f, _)| f);
    format!("{folder}/.sluice-staged/{name}-{hash}")
}

/// The URL of `key` under a root URL whose own key is `root` (same store).
fn url_of(root_url: &str, root: &Path, key: &str) -> String {
    let rel = key.strip_prefix(root.as_ref()).map(|r| r.trim_start_matches('/')).unwrap_or(key);
    if rel.is_empty() { root_url.to_string() } else { format!("{}/{rel}", root_url.trim_end_matches('/')) }
}

// ---- input -------------------------------------------------------------

/// Ranges up to this are read with one GET into memory; longer ones are
/// streamed.
const WHOLE_RANGE: u64 = 8 << 20;
/// A streamed range is pulled about this much per wait.
const STREAM_STEP: usize = 1 << 20;
/// What one [`InputSource::prefetch`] fetches ahead at most, in bytes (a
/// thread holds one mini-batch's at a time); items past it, or larger than
/// [`WHOLE_RANGE`], are read when asked for, as without a prefetch.
const PREFETCH_BYTES: u64 = 64 << 20;
/// GETs one prefetch has in flight at once.
const PREFETCH_CONCURRENCY: usize = 8;

thread_local! {
    /// The objects fetched ahead for the mini-batch this thread reads, by
    /// URL (see [`ObjectSource::prefetch`]).
    static AHEAD: std::cell::RefCell<HashMap<String, Ahead>> = std::cell::RefCell::new(HashMap::new());
}

/// An object fetched ahead: on its way, or here with what the GET said
/// about it.
enum Ahead {
    Pending(std::sync::mpsc::Receiver<Option<(object_store::ObjectMeta, Bytes)>>),
    Ready(object_store::ObjectMeta, Bytes),
}

/// The object at `url` if this thread fetched it ahead, waiting for it to
/// arrive; `None` when it was not, or its GET failed (the caller then asks
/// the store itself, and reports what it says).
fn ahead(url: &str) -> Option<(object_store::ObjectMeta, Bytes)> {
    AHEAD.with(|a| {
        let mut a = a.borrow_mut();
        let entry = a.get_mut(url)?;
        if let Ahead::Pending(rx) = entry {
            match rx.recv().ok().flatten() {
                Some((meta, bytes)) => *entry = Ahead::Ready(meta, bytes),
                None => {
                    a.remove(url);
                    return None;
                }
            }
        }
        match a.get(url) {
            Some(Ahead::Ready(meta, bytes)) => Some((meta.clone(), bytes.clone())),
            _ => None,
        }
    })
}

/// An input on object storage: a prefix listed recursively (a `uri_folder`
/// or tabular folder) or one object (`uri_file`). Items are named relative
/// to the prefix, `/`-separated, sorted by name bytes as the local lister
/// sorts them; [`InputItem::path`] holds the object's key.
#[derive(Debug)]
pub struct ObjectSource {
    url: String,
    store: Arc<dyn ObjectStore>,
    root: Path,
    /// Key -> ETag, as listed: compared by `check` when the store gives one.
    etags: Mutex<HashMap<String, String>>,
}

impl ObjectSource {
    /// The input at `url` (see [`open_store`] for `options`). Nothing is
    /// contacted until it is listed.
    pub fn new(url: &str, options: &[(&str, &str)]) -> Result<ObjectSource, StorageError> {
        let (store, root) = open_store(url, options)?;
        Ok(ObjectSource { url: url.to_string(), store, root, etags: Mutex::new(HashMap::new()) })
    }

    fn item_url(&self, item: &InputItem) -> String {
        url_of(&self.url, &self.root, &item.path.to_string_lossy())
    }

    fn key(item: &InputItem) -> Result<Path, String> {
        Path::parse(item.path.to_string_lossy()).map_err(|e| format!("not an object key: {e}"))
    }
}

/// Last-modified as ns since the epoch (an inherent method of
/// `object_store`'s timestamp type, so chrono need not be named here).
fn modified_ns(m: &object_store::ObjectMeta) -> u128 {
    m.last_modified.timestamp_nanos_opt().map_or(0, |n| n.max(0) as u128)
}

impl InputSource for ObjectSource {
    fn list(&self, spec: &InputSpec) -> Result<Vec<InputItem>, InputError> {
        let (store, root) = (self.store.clone(), self.root.clone());
        let metas = match spec.kind {
            InputKind::UriFile => {
                let meta = block(async move { store.head(&root).await })
                    .map_err(|e| request(&self.url, "read the input file", &e))?;
                vec![meta]
            }
            InputKind::UriFolder => {
                let prefix = (!root.as_ref().is_empty()).then_some(root);
                block(async move { store.list(prefix.as_ref()).try_collect::<Vec<_>>().await })
                    .map_err(|e| request(&self.url, "list the input", &e))?
            }
        };
        let mut etags = self.etags.lock().expect("etags");
        let mut items = Vec::with_capacity(metas.len());
        for m in metas {
            let key = m.location.as_ref().to_string();
            let name = match spec.kind {
                InputKind::UriFile => m.location.filename().unwrap_or_default().to_string(),
                InputKind::UriFolder => url_of("", &self.root, &key).trim_start_matches('/').to_string(),
            };
            if name.is_empty() {
                continue;
            }
            if let Some(tag) = &m.e_tag {
                etags.insert(key.clone(), tag.clone());
            }
            items.push(InputItem {
                name,
                path: PathBuf::from(key),
                size: m.size,
                modified_ns: modified_ns(&m),
                refused: None,
            });
        }
        items.sort_by_cached_key(|i| i.name.replace('/', "\0"));
        Ok(items)
    }

    fn check(&self, item: &InputItem) -> Result<(), String> {
        if let Some(why) = &item.refused {
            return Err(why.clone());
        }
        // A GET made ahead says what a HEAD would, of the very bytes read.
        let meta = match ahead(&self.item_url(item)) {
            Some((meta, _)) => meta,
            None => {
                let key = Self::key(item)?;
                let store = self.store.clone();
                match block(async move { store.head(&key).await }) {
                    Ok(m) => m,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(format!("{}: deleted after the job was planned", self.item_url(item)));
                    }
                    Err(e) => return Err(request(&self.item_url(item), "read", &e).to_string()),
                }
            }
        };
        let listed_tag = self.etags.lock().expect("etags").get(item.path.to_string_lossy().as_ref()).cloned();
        let tag_changed =
            matches!((&listed_tag, &meta.e_tag), (Some(a), Some(b)) if a.trim_matches('"') != b.trim_matches('"'));
        let secs = |ns: u128| ns / 1_000_000_000;
        if meta.size != item.size || secs(modified_ns(&meta)) != secs(item.modified_ns) || tag_changed {
            return Err(format!(
                "{}: changed after the job was planned (was {} bytes, now {}); rerun the job to score the new contents",
                self.item_url(item),
                item.size,
                meta.size
            ));
        }
        Ok(())
    }

    fn read_range(&self, item: &InputItem, range: Range<u64>) -> Result<Box<dyn Read + Send>, String> {
        let end = range.end.min(item.size);
        if range.start >= end {
            return Ok(Box::new(io::empty()));
        }
        let url = self.item_url(item);
        if let Some((_, bytes)) = ahead(&url) {
            let len = bytes.len() as u64;
            return Ok(Box::new(io::Cursor::new(bytes.slice(range.start.min(len) as usize..end.min(len) as usize))));
        }
        let key = Self::key(item)?;
        let store = self.store.clone();
        let range = range.start..end;
        if end - range.start <= WHOLE_RANGE {
            let bytes = block(async move { store.get_range(&key, range).await })
                .map_err(|e| request(&url, "read", &e).to_string())?;
            return Ok(Box::new(io::Cursor::new(bytes)));
        }
        let opts = GetOptions { range: Some(GetRange::Bounded(range)), ..Default::default() };
        let result = block(async move { store.get_opts(&key, opts).await.map(|r| r.into_stream()) })
            .map_err(|e| request(&url, "read", &e).to_string())?;
        Ok(Box::new(StreamReader { stream: Some(result), buf: io::Cursor::new(Bytes::new()), url }))
    }

    /// Starts GETs of the items (whole objects, at most
    /// [`PREFETCH_CONCURRENCY`] at once, up to [`PREFETCH_BYTES`] in all)
    /// on the module's runtime; [`check`](InputSource::check) and
    /// [`read_range`](InputSource::read_range) of those items on this
    /// thread wait for their GET instead of making their own. What an
    /// earlier prefetch on this thread left is dropped first.
    fn prefetch(&self, items: &[&InputItem]) -> Prefetched {
        let mut budget = PREFETCH_BYTES;
        let mut wanted = Vec::new();
        for item in items {
            if item.refused.is_some() || item.size > WHOLE_RANGE.min(budget) {
                continue;
            }
            let Ok(key) = Self::key(item) else { continue };
            budget -= item.size;
            wanted.push((self.item_url(item), key));
        }
        let fetches: Vec<_> = AHEAD.with(|a| {
            let mut a = a.borrow_mut();
            a.clear();
            wanted
                .into_iter()
                .map(|(url, key)| {
                    let (tx, rx) = std::sync::mpsc::sync_channel(1);
                    a.insert(url, Ahead::Pending(rx));
                    (key, tx)
                })
                .collect()
        });
        if fetches.is_empty() {
            return Prefetched::none();
        }
        let store = self.store.clone();
        runtime().spawn(futures_util::stream::iter(fetches).for_each_concurrent(
            PREFETCH_CONCURRENCY,
            move |(key, tx)| {
                let store = store.clone();
                async move {
                    let got = async {
                        let r = store.get(&key).await?;
                        let meta = r.meta.clone();
                        Ok::<_, object_store::Error>((meta, r.bytes().await?))
                    };
                    // Nobody waits any more once the guard is dropped.
                    let _ = tx.send(got.await.ok());
                }
            },
        ));
        Prefetched::new(|| AHEAD.with(|a| a.borrow_mut().clear()))
    }
}

/// A streamed GET as a blocking reader: each refill waits for about
/// [`STREAM_STEP`] bytes of the body.
struct StreamReader {
    stream: Option<futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>>,
    buf: io::Cursor<Bytes>,
    url: String,
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.buf.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            let Some(mut stream) = self.stream.take() else { return Ok(0) };
            let (stream, got) = block(async move {
                let mut chunks = Vec::new();
                let mut len = 0;
                while len < STREAM_STEP {
                    match stream.next().await {
                        Some(Ok(b)) => {
                            len += b.len();
                            chunks.push(b);
                        }
                        Some(Err(e)) => return (None, Err(e)),
                        None => return (None, Ok(chunks)),
                    }
                }
                (Some(stream), Ok(chunks))
            });
            let chunks = got.map_err(|e| io::Error::other(request(&self.url, "read", &e).to_string()))?;
            self.stream = stream;
            self.buf = io::Cursor::new(match chunks.len() {
                0 => Bytes::new(),
                1 => chunks.into_iter().next().expect("one chunk"),
                _ => chunks.concat().into(),
            });
            if self.buf.get_ref().is_empty() && self.stream.is_none() {
                return Ok(0);
            }
        }
    }
}

// ---- output ------------------------------------------------------------

/// Output to one object, staged as objects under a staging prefix (see
/// [`staging_url`]). Each part is one PUT (durable once it returns); the
/// output is assembled from the parts in the order given through a
/// multipart upload straight to the output's key: on S3 (and Azure's block
/// lists, and GCS's XML multipart API) an upload becomes visible only when
/// it is completed, whole, atomically replacing an earlier object, so no
/// temp key and copy are needed, and a crash during assembly leaves the
/// earlier object (or none) and an incomplete upload that the store's
/// lifecycle rules expire. Parquet parts become row groups as in
/// [`LocalOutput`] (the same writer over the upload). A cluster try's part
/// (`NNNNNNNN.TAG.try`, a worker's PUT) is promoted by reference: the
/// journal entry names the tag and assembly reads that object, so a part
/// crosses the store three times (PUT, GET, upload), not five (a copy is a
/// GET and a PUT inside the store).
#[derive(Debug)]
pub struct ObjectOutput {
    url: String,
    key: Path,
    store: Arc<dyn ObjectStore>,
    staging_url: String,
    staging: Path,
    parquet: bool,
    /// The mini-batches with a staged part: listed once when opened, then
    /// kept up to date by this store's own writes.
    parts: Mutex<HashSet<usize>>,
    /// The staged tries `(index, tag)`, kept the same way.
    tries: Mutex<HashSet<(usize, String)>>,
    assembling: Mutex<()>,
}

impl ObjectOutput {
    /// Rows of `format` to the object at `url`, staged under `staging_url`
    /// (which must be in the same bucket or container). Lists the staging
    /// prefix once, so a missing bucket or bad credentials fail here, naming
    /// the URL, before any mini-batch runs. See [`open_store`] for
    /// `options`.
    pub fn new(
        url: &str,
        staging_url: &str,
        format: OutputFormat,
        options: &[(&str, &str)],
    ) -> Result<ObjectOutput, StorageError> {
        let (store, key) = open_store(url, options)?;
        let (_, staging) = open_store(staging_url, options)?;
        let same_store =
            |u: &str| u.split_once("://").map(|(s, r)| (s.to_string(), r.split('/').next().map(str::to_string)));
        if same_store(url) != same_store(staging_url) {
            return Err(StorageError::Open {
                url: staging_url.to_string(),
                message: format!("parts must be staged in the output's bucket ({url})"),
            });
        }
        if key.as_ref().is_empty() {
            return Err(StorageError::Open { url: url.to_string(), message: "the output must name an object".into() });
        }
        let (s, prefix) = (store.clone(), staging.clone());
        let listed = block(async move { s.list(Some(&prefix)).try_collect::<Vec<_>>().await })
            .map_err(|e| request(staging_url, "list the staged output parts", &e))?;
        let parts = listed.iter().filter_map(|m| part_index(m.location.filename()?)).collect();
        let tries = listed.iter().filter_map(|m| try_of(m.location.filename()?)).collect();
        Ok(ObjectOutput {
            url: url.to_string(),
            key,
            store,
            staging_url: staging_url.to_string(),
            staging,
            parquet: format == OutputFormat::Parquet,
            parts: Mutex::new(parts),
            tries: Mutex::new(tries),
            assembling: Mutex::new(()),
        })
    }

    /// Where the parts are staged.
    pub fn staging(&self) -> &str {
        &self.staging_url
    }

    fn part(&self, index: usize) -> Path {
        self.staging.clone().join(format!("{index:08}.part"))
    }

    fn try_part(&self, index: usize, tag: &str) -> Path {
        self.staging.clone().join(format!("{index:08}.{tag}.try"))
    }

    fn url_of(&self, key: &Path) -> String {
        url_of(&self.staging_url, &self.staging, key.as_ref())
    }

    fn put(&self, key: Path, bytes: &[u8]) -> io::Result<()> {
        let (store, url) = (self.store.clone(), self.url_of(&key));
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        block(async move { store.put(&key, payload).await })
            .map(|_| ())
            .map_err(|e| request(&url, "stage an output part", &e).into())
    }

    /// Deletes the staged objects whose names `which` picks; returns their
    /// names.
    fn delete_staged(&self, which: impl Fn(&str) -> bool) -> io::Result<Vec<String>> {
        let (store, prefix) = (self.store.clone(), self.staging.clone());
        let keys: Vec<Path> = block(async move { store.list(Some(&prefix)).try_collect::<Vec<_>>().await })
            .map_err(|e| request(&self.staging_url, "list the staged output parts", &e))?
            .into_iter()
            .map(|m| m.location)
            .filter(|k| k.filename().is_some_and(&which))
            .collect();
        let names = keys.iter().filter_map(|k| k.filename().map(str::to_string)).collect();
        for key in keys {
            let (store, url) = (self.store.clone(), self.url_of(&key));
            match block(async move { store.delete(&key).await }) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(request(&url, "delete a staged output part", &e).into()),
            }
        }
        Ok(names)
    }

    fn get(&self, key: Path) -> io::Result<Bytes> {
        let (store, url) = (self.store.clone(), self.url_of(&key));
        block(async move {
            match store.get(&key).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            }
        })
        .map_err(|e| request(&url, "read a staged output part", &e).into())
    }
}

/// `00000012.part` -> 12.
fn part_index(name: &str) -> Option<usize> {
    name.strip_suffix(".part")?.parse().ok()
}

/// `00000012.node1-3.try` -> (12, "node1-3").
fn try_of(name: &str) -> Option<(usize, String)> {
    let (index, tag) = name.strip_suffix(".try")?.split_once('.')?;
    (index.len() == 8).then_some(())?;
    Some((index.parse().ok()?, tag.to_string()))
}

impl OutputStore for ObjectOutput {
    /// One PUT to `NNNNNNNN.part`, durable (and atomically replacing an
    /// earlier part) once it returns.
    fn stage(&self, index: usize, part: &[u8]) -> io::Result<()> {
        self.put(self.part(index), part)?;
        self.parts.lock().expect("parts").insert(index);
        Ok(())
    }

    /// The part promoted from try `part.tag` (by reference), or the one it
    /// staged itself.
    fn has_part(&self, part: PartRef<'_>) -> bool {
        match part.tag {
            Some(tag) => self.tries.lock().expect("tries").contains(&(part.index, tag.to_string())),
            None => self.parts.lock().expect("parts").contains(&part.index),
        }
    }

    fn discard_parts(&self) -> io::Result<()> {
        self.delete_staged(|n| n.ends_with(".part") || n.ends_with(".try"))?;
        self.parts.lock().expect("parts").clear();
        self.tries.lock().expect("tries").clear();
        Ok(())
    }

    fn assemble(&self, parts: &[PartRef<'_>], header: &[u8]) -> io::Result<PathBuf> {
        let _one = self.assembling.lock().expect("assembling");
        let (store, key) = (self.store.clone(), self.key.clone());
        let upload = block(async move { store.put_multipart(&key).await })
            .map_err(|e| io::Error::from(request(&self.url, "write the output", &e)))?;
        let writer = UploadWriter { upload: Some(object_store::WriteMultipart::new(upload)), url: self.url.clone() };
        let mut w = io::BufWriter::with_capacity(STREAM_STEP, writer);
        let written = assemble_into(&mut w, self.parquet, header, parts, |p| {
            let key = match p.tag {
                Some(tag) => self.try_part(p.index, tag),
                None => self.part(p.index),
            };
            Ok(self.get(key)?.to_vec())
        });
        // On an error the upload is aborted when its writer drops.
        let writer = written.and_then(|()| w.into_inner().map_err(|e| e.into_error()))?;
        writer.finish()?;
        Ok(PathBuf::from(&self.url))
    }

    /// One PUT to `NNNNNNNN.TAG.try`: another key than the committed part,
    /// so a try killed mid-write leaves no trace on it (a PUT that did not
    /// complete leaves nothing at all).
    fn stage_try(&self, index: usize, tag: &str, part: &[u8]) -> io::Result<()> {
        check_tag(tag)?;
        self.put(self.try_part(index, tag), part)?;
        self.tries.lock().expect("tries").insert((index, tag.to_string()));
        Ok(())
    }

    /// By reference: nothing is copied (a copy is a whole read and write
    /// of the part inside the store); the try's object, durable since its
    /// PUT returned, stays where it is, and the journal entry that names
    /// `tag` makes it the mini-batch's part. One HEAD checks it is there
    /// (another process, a worker, staged it; an earlier run's end may
    /// have discarded it: `NotFound`).
    fn promote(&self, index: usize, tag: &str) -> io::Result<()> {
        check_tag(tag)?;
        let key = self.try_part(index, tag);
        let (store, url) = (self.store.clone(), self.url_of(&key));
        match block(async move { store.head(&key).await }) {
            Ok(_) => {
                self.tries.lock().expect("tries").insert((index, tag.to_string()));
                Ok(())
            }
            Err(object_store::Error::NotFound { .. }) => {
                Err(io::Error::new(io::ErrorKind::NotFound, format!("{url}: the try's part is gone")))
            }
            Err(e) => Err(request(&url, "check a staged try", &e).into()),
        }
    }

    /// Every staged try but the parts kept.
    fn discard_tries(&self, keep: &[PartRef<'_>]) -> io::Result<()> {
        let keep: HashSet<String> =
            keep.iter().filter_map(|p| Some(self.try_part(p.index, p.tag?).filename()?.to_string())).collect();
        let gone = self.delete_staged(|name| name.ends_with(".try") && !keep.contains(name))?;
        let mut tries = self.tries.lock().expect("tries");
        for name in gone {
            if let Some(t) = try_of(&name) {
                tries.remove(&t);
            }
        }
        Ok(())
    }
}

/// A multipart upload as a blocking writer (behind a `BufWriter`, so each
/// write hands it about 1 MiB). Dropped unfinished, it aborts the upload.
struct UploadWriter {
    upload: Option<object_store::WriteMultipart>,
    url: String,
}

impl UploadWriter {
    fn finish(mut self) -> io::Result<()> {
        let upload = self.upload.take().expect("finished once");
        block(upload.finish()).map(|_| ()).map_err(|e| request(&self.url, "complete the output upload", &e).into())
    }
}

impl Write for UploadWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut upload = self.upload.take().ok_or_else(|| io::Error::other("the upload has ended"))?;
        {
            // `write` starts a part's upload on the current runtime once a
            // chunk (5 MiB) is full.
            let _in = runtime().enter();
            upload.write(buf);
        }
        // At most 4 parts in flight.
        let (upload, waited) = block(async move {
            let r = upload.wait_for_capacity(4).await;
            (upload, r)
        });
        self.upload = Some(upload);
        waited.map_err(|e| request(&self.url, "write the output", &e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for UploadWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take()
            && let Err(e) = block(upload.abort())
        {
            tracing::warn!("{}: cannot abort the unfinished output upload: {}", self.url, chain(&e));
        }
    }
}
