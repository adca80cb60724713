//! `sluice components create|list|show`: the local component registry
//! (`sluice_runtime::components`), Azure ML's `ml_client.components`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use sluice_runtime::components::{ComponentStore, Created, Reference};

use crate::{Failure, data_dir};

/// Where the registry is.
#[derive(Args, Debug)]
pub struct RegistryDir {
    /// Where sluice keeps jobs and components (env SLUICE_DATA_DIR).
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ComponentsCommand {
    /// Store a component file (its `name`, `version`, scorer .wasm and the
    /// files it references) under NAME@VERSION; the same content again is
    /// a no-op, other content under an existing version is refused.
    Create {
        /// The component YAML (`type: parallel`, with `name` and `version`).
        file: PathBuf,
        #[command(flatten)]
        dirs: RegistryDir,
    },
    /// Every stored component version, oldest first per name.
    List {
        #[command(flatten)]
        dirs: RegistryDir,
    },
    /// One stored version (NAME@VERSION, NAME for the latest, or
    /// azureml:NAME:VERSION): its files and its stored YAML.
    Show {
        component: String,
        #[command(flatten)]
        dirs: RegistryDir,
    },
}

pub fn components(c: ComponentsCommand) -> Result<ExitCode, Failure> {
    let store = |d: &RegistryDir| ComponentStore::new(&data_dir(d.data_dir.as_deref()));
    match c {
        ComponentsCommand::Create { file, dirs } => {
            let (stored, created) = store(&dirs).create(&file).map_err(|e| Failure::Usage(anyhow!(e)))?;
            let m = &stored.manifest;
            let what = match created {
                Created::New => "stored",
                Created::Unchanged => "unchanged (already stored with this content)",
            };
            out!("component {}@{}: {what}", m.name, m.version);
            out!("  {} files, content {}", m.files.len(), m.content);
            out!("  run it: sluice run azureml:{}:{}", m.name, m.version);
        }
        ComponentsCommand::List { dirs } => {
            let s = store(&dirs);
            let all = s.list().map_err(|e| Failure::Job(anyhow!(e)))?;
            if all.is_empty() {
                out!("no components in {} (store one with `sluice components create FILE.yml`)", s.dir().display());
            } else {
                out!("{:<32} {:<12} {:<22} {:>6} content", "NAME", "VERSION", "CREATED", "FILES");
                for st in &all {
                    let m = &st.manifest;
                    let content: String = m.content.trim_start_matches("sha256-").chars().take(12).collect();
                    out!("{:<32} {:<12} {:<22} {:>6} {content}", m.name, m.version, m.created, m.files.len());
                }
            }
        }
        ComponentsCommand::Show { component, dirs } => {
            let r = match Reference::parse(&component).map_err(|e| Failure::Usage(anyhow!(e)))? {
                Some(r) => r,
                // A bare NAME: its latest version.
                None => Reference::parse(&format!("{component}@latest"))
                    .map_err(|e| Failure::Usage(anyhow!(e)))?
                    .ok_or_else(|| Failure::Usage(anyhow!("`{component}`: expected NAME[@VERSION]")))?,
            };
            let st = store(&dirs).get(&r).map_err(|e| Failure::Usage(anyhow!(e)))?;
            let m = &st.manifest;
            out!("component {}@{}", m.name, m.version);
            out!("  created  {}", m.created);
            out!("  from     {}", m.source.display());
            out!("  content  {}", m.content);
            out!("  folder   {}", st.dir.display());
            out!("  files:");
            for f in &m.files {
                out!("    {:<48} {:>12} bytes  {}", f.path, f.bytes, f.hash);
            }
            out!("---");
            let yaml = std::fs::read_to_string(st.yaml_path())
                .map_err(|e| Failure::Job(anyhow!("{}: {e}", st.yaml_path().display())))?;
            out!("{}", yaml.trim_end());
        }
    }
    Ok(ExitCode::SUCCESS)
}
