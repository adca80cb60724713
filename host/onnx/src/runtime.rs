//! Finding and loading the ONNX Runtime shared library.
//!
//! ort is built with `load-dynamic`: nothing links against ONNX Runtime, the library is opened at
//! run time. That keeps the sluice binary buildable and runnable without it (only jobs that grant
//! models need it) and lets the library be installed project-locally by
//! `scripts/install-onnxruntime.sh` from the PyPI wheel.
//!
//! Limits:
//! - A process loads one library, once: [`init_runtime`] caches the first success and later calls
//!   return that path whatever they ask for (ONNX Runtime cannot be unloaded or swapped). Failures are
//!   not cached, so a later call may succeed once the library is installed.
//! - ort rc.15 needs ONNX Runtime 1.22 or newer (the `api-22` feature); older libraries are refused
//!   with [`OnnxError::LibraryLoad`].
//! - An explicitly named place (the argument, `SLUICE_ONNXRUNTIME`, `ORT_DYLIB_PATH`, in that order
//!   of precedence) is the only place looked when set: a wrong setting is an error, not a silent
//!   fall back to some other copy.
//! - ort panics inside some load paths (`expect`s on the API table); those are caught and turned into
//!   [`OnnxError::LibraryLoad`], but the default panic hook still prints the panic to stderr.

use std::ffi::OsString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::error::OnnxError;

/// The project-local install folder written by `scripts/install-onnxruntime.sh`.
pub const PROJECT_LIBRARY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.sluice/onnxruntime/lib");

/// Where [`find_library`] looks, taken from the process by [`LibrarySearch::from_process`] or built
/// by hand in tests.
#[derive(Debug, Clone, Default)]
pub struct LibrarySearch {
    /// `SLUICE_ONNXRUNTIME`: a library file or a folder holding one.
    pub sluice_onnxruntime: Option<OsString>,
    /// `ORT_DYLIB_PATH`: ort's own variable, same meaning.
    pub ort_dylib_path: Option<OsString>,
    /// The folder of the running executable (`<exe dir>/lib/` then `<exe dir>/` are searched).
    pub exe_dir: Option<PathBuf>,
    /// The project-local folder, normally [`PROJECT_LIBRARY_DIR`].
    pub project_dir: Option<PathBuf>,
}

impl LibrarySearch {
    /// The search of this process: its environment, its executable, the compiled-in project folder.
    pub fn from_process() -> LibrarySearch {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        LibrarySearch {
            sluice_onnxruntime: var("SLUICE_ONNXRUNTIME"),
            ort_dylib_path: var("ORT_DYLIB_PATH"),
            exe_dir: std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)),
            project_dir: Some(PathBuf::from(PROJECT_LIBRARY_DIR)),
        }
    }
}

/// Finds the library without loading it. Search order: `explicit`, then `SLUICE_ONNXRUNTIME`, then
/// `ORT_DYLIB_PATH` (the first of these that is set is the only place looked), else `<exe dir>/lib/`,
/// `<exe dir>/`, the project folder. A file is taken as is; in a folder the first of
/// `libonnxruntime.so`, the newest `libonnxruntime.so.*`, `libonnxruntime.dylib` is taken.
pub fn find_library(explicit: Option<&Path>, search: &LibrarySearch) -> Result<PathBuf, OnnxError> {
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| search.sluice_onnxruntime.as_ref().map(PathBuf::from))
        .or_else(|| search.ort_dylib_path.as_ref().map(PathBuf::from));
    let places: Vec<PathBuf> = match named {
        Some(place) => vec![place],
        None => {
            let mut places = Vec::new();
            if let Some(exe_dir) = &search.exe_dir {
                places.push(exe_dir.join("lib"));
                places.push(exe_dir.clone());
            }
            places.extend(search.project_dir.iter().cloned());
            places
        }
    };
    for place in &places {
        if place.is_file() {
            return Ok(place.clone());
        }
        if place.is_dir()
            && let Some(found) = library_in(place)
        {
            return Ok(found);
        }
    }
    Err(OnnxError::LibraryMissing { searched: places })
}

/// The library in `dir`, if any: `libonnxruntime.so`, else the newest `libonnxruntime.so.X.Y.Z`,
/// else `libonnxruntime.dylib`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let plain = dir.join("libonnxruntime.so");
    if plain.is_file() {
        return Some(plain);
    }
    let mut versioned: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix("libonnxruntime.so.")?;
            let parsed: Vec<u64> = version.split('.').map(|part| part.parse().ok()).collect::<Option<_>>()?;
            let path = entry.path();
            path.is_file().then_some((parsed, path))
        })
        .collect();
    versioned.sort();
    if let Some((_, newest)) = versioned.pop() {
        return Some(newest);
    }
    let dylib = dir.join("libonnxruntime.dylib");
    dylib.is_file().then_some(dylib)
}

/// The library loaded in this process and the one ort environment built on it.
struct Loaded {
    path: PathBuf,
    environment: Environment,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// Finds and loads ONNX Runtime once per process (see [`find_library`] for where it looks) and
/// returns the library used. After a success every call returns that library, whatever `explicit` says.
pub fn init_runtime(explicit: Option<&Path>) -> Result<PathBuf, OnnxError> {
    if let Some(loaded) = LOADED.get() {
        return Ok(loaded.path.clone());
    }
    let _loading = LOADING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(loaded) = LOADED.get() {
        return Ok(loaded.path.clone());
    }
    let path = find_library(explicit, &LibrarySearch::from_process())?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let environment = load(&path)?;
    tracing::info!(library = %path.display(), "loaded ONNX Runtime");
    let loaded = LOADED.get_or_init(|| Loaded { path, environment });
    Ok(loaded.path.clone())
}

/// Opens the library and builds the process's ort environment, turning ort's panics into errors.
fn load(path: &Path) -> Result<Environment, OnnxError> {
    let load_error = |message: String| OnnxError::LibraryLoad { path: path.to_path_buf(), message };
    let attempt = catch_unwind(AssertUnwindSafe(|| -> Result<Environment, OnnxError> {
        let builder = ort::init_from(path).map_err(|e| load_error(e.to_string()))?;
        builder.with_name("sluice").with_telemetry(false).build().map_err(|e| load_error(e.to_string()))
    }));
    match attempt {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "ort panicked while loading the library".to_owned());
            Err(load_error(message))
        }
    }
}

/// The process's ort environment; `None` before a successful [`init_runtime`].
pub(crate) fn environment() -> Option<&'static Environment> {
    LOADED.get().map(|loaded| &loaded.environment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::write(path, b"not a library").unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-onnx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn explicit_file_wins_and_is_the_only_place_looked() {
        let dir = temp_dir("explicit");
        let file = dir.join("custom.so");
        touch(&file);
        let search = LibrarySearch { project_dir: Some(dir.clone()), ..Default::default() };
        assert_eq!(find_library(Some(&file), &search).unwrap(), file);

        let bogus = dir.join("nope/libonnxruntime.so");
        touch(&dir.join("libonnxruntime.so"));
        match find_library(Some(&bogus), &search) {
            Err(OnnxError::LibraryMissing { searched }) => assert_eq!(searched, vec![bogus]),
            other => panic!("expected LibraryMissing, got {other:?}"),
        }
    }

    #[test]
    fn env_precedence_and_folders() {
        let a = temp_dir("env-a");
        let b = temp_dir("env-b");
        touch(&a.join("libonnxruntime.so.1.9.0"));
        touch(&a.join("libonnxruntime.so.1.32.0"));
        touch(&a.join("libonnxruntime.so.1.4.0"));
        touch(&b.join("libonnxruntime.so"));
        let search = LibrarySearch {
            sluice_onnxruntime: Some(a.clone().into()),
            ort_dylib_path: Some(b.clone().into()),
            ..Default::default()
        };
        // newest by numeric version, not by name
        assert_eq!(find_library(None, &search).unwrap(), a.join("libonnxruntime.so.1.32.0"));
        let search = LibrarySearch { sluice_onnxruntime: None, ..search };
        assert_eq!(find_library(None, &search).unwrap(), b.join("libonnxruntime.so"));
    }

    #[test]
    fn default_search_order_and_missing_message() {
        let exe = temp_dir("exe");
        let project = temp_dir("project");
        std::fs::create_dir_all(exe.join("lib")).unwrap();
        let search =
            LibrarySearch { exe_dir: Some(exe.clone()), project_dir: Some(project.clone()), ..Default::default() };
        let err = find_library(None, &search).unwrap_err();
        let message = err.to_string();
        match &err {
            OnnxError::LibraryMissing { searched } => {
                assert_eq!(searched, &vec![exe.join("lib"), exe.clone(), project.clone()])
            }
            other => panic!("expected LibraryMissing, got {other:?}"),
        }
        assert!(message.contains("scripts/install-onnxruntime.sh"), "{message}");
        assert!(message.contains("SLUICE_ONNXRUNTIME="), "{message}");
        assert!(message.contains(&project.display().to_string()), "{message}");

        touch(&project.join("libonnxruntime.dylib"));
        assert_eq!(find_library(None, &search).unwrap(), project.join("libonnxruntime.dylib"));
        touch(&exe.join("libonnxruntime.so"));
        assert_eq!(find_library(None, &search).unwrap(), exe.join("libonnxruntime.so"));
        touch(&exe.join("lib/libonnxruntime.so.1.32.0"));
        assert_eq!(find_library(None, &search).unwrap(), exe.join("lib/libonnxruntime.so.1.32.0"));
    }
}
