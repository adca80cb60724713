//! The one check of a component's imports and exports against what the
//! host links, done by parsing the component's top-level sections with
//! `wasmparser`, without compiling it. `ScorerEngine::validate` and
//! `ScorerEngine::load` (run, replay, compile, bench) both call it before
//! any compile, so they accept and refuse the same components with the
//! same words; wasmtime's `instantiate_pre` and the typed `ScorerPre`
//! check stay the final authority on types after compilation.
//!
//! Parsing reads section headers and the import and export sections only:
//! nested modules and components (the code) are skipped, so a component
//! with a million functions costs milliseconds here.

use wasmparser::{ComponentExternalKind, ComponentTypeRef, Encoding, Parser, Payload, TypeBounds};

/// The interfaces `wasmtime_wasi::p2::add_to_linker_async` links (wasmtime-wasi
/// 48.0.8, `src/p2/mod.rs`: `add_async_io_to_linker`, `add_nonblocking_to_linker`
/// and the four at the end of `add_to_linker_with_options_async`), at WASI
/// 0.2.12; the linker also answers any other non-prerelease 0.2.x import of
/// them. A test links a component importing each one.
pub(crate) const WASI_INTERFACES: [&str; 27] = [
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/exit",
    "wasi:cli/environment",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:sockets/tcp",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/instance-network",
    "wasi:sockets/network",
    "wasi:sockets/ip-name-lookup",
];

/// The WASI version the linker defines.
pub(crate) const WASI_VERSION: (u64, u64, u64) = (0, 2, 12);

/// sluice's own imports (`wit/`, `sluice:scorer@0.1.3`; `bindgen!` links
/// them at that version and the linker answers any 0.1.x import).
pub(crate) const SLUICE_INTERFACES: [&str; 4] = ["types", "log", "onnx", "batch"];
pub(crate) const SLUICE_VERSION: (u64, u64, u64) = (0, 1, 3);

/// The optional export interface holding `shutdown`, any 0.1.x version.
pub(crate) const LIFECYCLE_PREFIX: &str = "sluice:scorer/lifecycle@0.1.";

/// What the name check found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    /// Each top-level import and why the host does not provide it (`None`:
    /// it does).
    pub imports: Vec<(String, Option<String>)>,
    /// Each top-level export and what sluice does with it.
    pub exports: Vec<(String, String)>,
    /// Everything that stops the component from linking, in words; empty
    /// when the names fit.
    pub problems: Vec<String>,
}

/// Reads the top-level imports and exports of `bytes`. `Err` (a reason)
/// when the bytes are not a component at all.
pub(crate) fn check(bytes: &[u8]) -> Result<Names, String> {
    check_as(bytes, false)
}

/// [`check`] of a WASI command component (a pipeline's `type: command`
/// step): the same imports, and the export `wasi:cli/run` instead of the
/// scorer's `init` and `run`.
pub(crate) fn check_command(bytes: &[u8]) -> Result<Names, String> {
    check_as(bytes, true)
}

fn check_as(bytes: &[u8], command: bool) -> Result<Names, String> {
    let mut parser = Parser::new(0);
    let mut at = 0usize;
    let mut names = Names::default();
    let (mut init, mut run) = (None, None);
    let mut cli_run = None;
    loop {
        let (payload, consumed) = match parser.parse(&bytes[at..], true).map_err(|e| e.to_string())? {
            wasmparser::Chunk::Parsed { consumed, payload } => (payload, consumed),
            // Not possible with `eof = true`; treat it as truncation anyway.
            wasmparser::Chunk::NeedMoreData(_) => return Err("the file ends in the middle of a section".into()),
        };
        at += consumed;
        match payload {
            Payload::Version { encoding: Encoding::Module, .. } => {
                return Err("this is a core WebAssembly module, not a component: build for wasm32-wasip2 \
                            (or wrap it with `wasm-tools component new`)"
                    .into());
            }
            // Skip nested code: the outer parser has already moved past it.
            Payload::ModuleSection { unchecked_range: r, .. }
            | Payload::ComponentSection { unchecked_range: r, .. } => {
                if r.end > bytes.len() {
                    return Err(format!("a nested section runs past the end of the file (byte {})", r.start));
                }
                at = r.end;
            }
            Payload::ComponentImportSection(s) => {
                for import in s {
                    let import = import.map_err(|e| e.to_string())?;
                    let name = import.name.name;
                    let why = match import.ty {
                        ComponentTypeRef::Instance(_) => host_provides(name),
                        // `(type (eq N))`: a name for a type the component
                        // already has (a world's `use types.{...}`), not
                        // something the host supplies.
                        ComponentTypeRef::Type(TypeBounds::Eq(_)) => continue,
                        other => Some(format!(
                            "a top-level {} import: the host provides only interfaces (instances)",
                            ref_kind(&other)
                        )),
                    };
                    names.imports.push((name.to_string(), why));
                }
            }
            Payload::ComponentExportSection(s) => {
                for export in s {
                    let export = export.map_err(|e| e.to_string())?;
                    let name = export.name.name;
                    let func = export.kind == ComponentExternalKind::Func;
                    let what = match name {
                        n if command && n.starts_with("wasi:cli/run@0.2.") => {
                            cli_run = Some(export.kind == ComponentExternalKind::Instance);
                            "the command's entry point, run once"
                        }
                        _ if command => "not used by sluice",
                        "init" => {
                            init = Some(func);
                            "called once per instance"
                        }
                        "run" => {
                            run = Some(func);
                            "called once per mini-batch"
                        }
                        n if n.starts_with(LIFECYCLE_PREFIX) => "optional: shutdown is called when an instance retires",
                        // Every componentize-py (Python) component has it.
                        "exports" if export.kind == ComponentExternalKind::Instance => {
                            "componentize-py's own instance (a Python component): not called by sluice, harmless"
                        }
                        _ => "not used by sluice",
                    };
                    names.exports.push((name.to_string(), what.to_string()));
                }
            }
            Payload::End(_) => break,
            _ => {}
        }
    }
    for (name, why) in &names.imports {
        if let Some(why) = why {
            names.problems.push(format!("import `{name}`: {why}"));
        }
    }
    if command {
        match cli_run {
            None => names.problems.push(
                "missing export `wasi:cli/run@0.2.x`: a command step is a WASI command component (a `main`, built for \
                 wasm32-wasip2)"
                    .into(),
            ),
            Some(false) => names.problems.push("export `wasi:cli/run` is not an interface".into()),
            Some(true) => {}
        }
        return Ok(names);
    }
    for (found, name, sig) in [
        (init, "init", "init: func(config: config) -> result<_, error>"),
        (run, "run", "run: func(batch: mini-batch) -> result<batch-result, error>"),
    ] {
        match found {
            None => names.problems.push(format!("missing export `{sig}`")),
            Some(false) => names.problems.push(format!("export `{name}` is not a function (expected `{sig}`)")),
            Some(true) => {}
        }
    }
    Ok(names)
}

fn ref_kind(r: &ComponentTypeRef) -> &'static str {
    match r {
        ComponentTypeRef::Module(_) => "module",
        ComponentTypeRef::Func(_) => "function",
        ComponentTypeRef::Value(_) => "value",
        ComponentTypeRef::Type(_) => "type",
        ComponentTypeRef::Instance(_) => "instance",
        ComponentTypeRef::Component(_) => "component",
    }
}

/// `x.y.z` (optionally `+build`), without a pre-release: the versions the
/// wasmtime linker treats as semver-compatible with another (see
/// `wasmtime_environ::component::names::alternate_lookup_key`).
fn release(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.split_once('+').map_or(version, |(c, _)| c);
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// Whether an import of `have` is answered by a definition at `host`:
/// the same major version, or the same `0.minor` (minor nonzero).
fn compatible(have: (u64, u64, u64), host: (u64, u64, u64)) -> bool {
    if have == host {
        return true;
    }
    match (have, host) {
        ((0, 0, _), _) => false,
        ((0, a, _), (0, b, _)) => a == b,
        ((a, _, _), (b, _, _)) => a != 0 && a == b,
    }
}

fn fmt_version(v: (u64, u64, u64)) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

/// `None` when the linker defines `import` (an interface name with its
/// version), else why not, naming what the host has.
pub(crate) fn host_provides(import: &str) -> Option<String> {
    let (iface, version) = match import.split_once('@') {
        Some((i, v)) => (i, Some(v)),
        None => (import, None),
    };
    let (family, host_version) = if iface.starts_with("wasi:") {
        if !WASI_INTERFACES.contains(&iface) {
            let have: Vec<&str> = WASI_INTERFACES.iter().map(|i| i.trim_start_matches("wasi:")).collect();
            return Some(format!(
                "the host does not link `{iface}`: its WASI {} interfaces are {}",
                fmt_version(WASI_VERSION),
                have.join(", ")
            ));
        }
        ("WASI", WASI_VERSION)
    } else if let Some(name) = iface.strip_prefix("sluice:scorer/") {
        if !SLUICE_INTERFACES.contains(&name) {
            return Some(format!(
                "the host has no sluice:scorer interface `{name}` (it links {})",
                SLUICE_INTERFACES.join(", ")
            ));
        }
        ("sluice:scorer", SLUICE_VERSION)
    } else {
        return Some(
            "the host links only WASI 0.2 (cli, clocks, filesystem, io, random, sockets) and sluice:scorer 0.1 \
             interfaces"
                .into(),
        );
    };
    let Some(version) = version else {
        return Some(format!(
            "an unversioned import: the host links {family} {} (build with a wasm32-wasip2 toolchain)",
            fmt_version(host_version)
        ));
    };
    match release(version) {
        Some(v) if compatible(v, host_version) => None,
        _ => Some(format!(
            "version {version}: the host links {family} {} (compatible: {}.{}.x)",
            fmt_version(host_version),
            host_version.0,
            host_version.1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_linker_semver_rule() {
        assert_eq!(host_provides("wasi:cli/environment@0.2.0"), None);
        assert_eq!(host_provides("wasi:cli/environment@0.2.12"), None);
        assert_eq!(host_provides("wasi:io/streams@0.2.99+abc"), None);
        assert_eq!(host_provides("sluice:scorer/types@0.1.0"), None);
        assert_eq!(host_provides("sluice:scorer/batch@0.1.1"), None);
        assert_eq!(host_provides("sluice:scorer/batch@0.1.3"), None);
        let e = host_provides("sluice:scorer/types@0.2.0").unwrap();
        assert!(e.contains("version 0.2.0: the host links sluice:scorer 0.1.3"), "{e}");
        assert!(host_provides("wasi:cli/environment@0.2.0-rc-2023-12-05").unwrap().contains("version 0.2.0-rc"));
        assert!(host_provides("wasi:cli/environment@0.3.0").is_some());
        assert!(host_provides("wasi:cli/environment").unwrap().contains("unversioned"));
        let e = host_provides("wasi:http/types@0.2.0").unwrap();
        assert!(e.contains("does not link `wasi:http/types`") && e.contains("cli/stdout"), "{e}");
        assert!(host_provides("wasi:nn/inference@0.2.0").unwrap().contains("does not link `wasi:nn/inference`"));
        assert!(host_provides("sluice:scorer/lifecycle@0.1.1").unwrap().contains("no sluice:scorer interface"));
        assert!(host_provides("acme:thing/x@1.0.0").is_some());
    }

    /// A component (header only, no code) whose one section exports
    /// `(name, sort, index)` items: enough for the name check.
    fn exporting(items: &[(&str, u8)]) -> Vec<u8> {
        let mut section = vec![items.len() as u8];
        for (i, (name, sort)) in items.iter().enumerate() {
            section.push(0x00); // a plain name
            section.push(name.len() as u8);
            section.extend_from_slice(name.as_bytes());
            section.extend_from_slice(&[*sort, i as u8, 0x00]); // sort, index, no type ascription
        }
        let mut bytes = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 11, section.len() as u8];
        bytes.extend(section);
        bytes
    }

    #[test]
    fn componentize_pys_exports_instance_is_named_as_such() {
        // What componentize-py 0.25.1 exports: an `exports` instance, then
        // the world's functions (0x05 instance, 0x01 function).
        let names = check(&exporting(&[("exports", 0x05), ("init", 0x01), ("run", 0x01), ("other", 0x05)])).unwrap();
        assert!(names.problems.is_empty(), "{:?}", names.problems);
        let what = |n: &str| names.exports.iter().find(|(name, _)| name == n).unwrap().1.clone();
        assert!(what("exports").contains("componentize-py"), "{}", what("exports"));
        assert_eq!(what("init"), "called once per instance");
        assert_eq!(what("other"), "not used by sluice");
    }

    #[test]
    fn core_modules_and_garbage_are_not_components() {
        assert!(check(b"not wasm").is_err());
        let module = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
        assert!(check(&module).unwrap_err().contains("core WebAssembly module"));
        // `(component)`: a component with no exports.
        let empty = check(&[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]).unwrap();
        assert!(empty.imports.is_empty());
        assert_eq!(empty.problems.len(), 2, "{:?}", empty.problems);
        assert!(empty.problems[0].contains("missing export `init"));
    }
}
