//! WASI command components (a pipeline's `type: command` step): a `main`
//! exported as `wasi:cli/run`, run once with its arguments in the same
//! sandbox as a scorer (the job's memory, fuel and wall-clock limits, no
//! network, no environment, read-only mounts, its own writable output
//! folders, stdout and stderr as log lines).

use wasmtime::Engine;
use wasmtime_wasi::p2::bindings::CommandPre;

use sluice_job::{Failure, ReasonCode};

use crate::engine::EngineConfig;
use crate::instance::{InstanceSettings, arm, bounded, classify, new_store, prefix};
use crate::store::StoreState;

/// A compiled, linked command component.
pub struct CommandComponent {
    pub(crate) engine: Engine,
    pub(crate) config: EngineConfig,
    pub(crate) pre: CommandPre<StoreState>,
    /// sha256 of the `.wasm` bytes.
    pub hash: String,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
}

impl std::fmt::Debug for CommandComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandComponent").field("hash", &self.hash).finish()
    }
}

impl CommandComponent {
    /// Runs the command once with `args` (`args[0]` is its name) in a
    /// fresh sandbox with `settings`: `Ok` when `main` returned success.
    /// A nonzero exit is a `USER_ERROR` naming it; traps and limits are
    /// classified as for a scorer's `run`.
    pub async fn run(&self, settings: &InstanceSettings, args: &[String]) -> Result<(), Failure> {
        let mut store = new_store(&self.engine, &self.config, settings, args)?;
        let command = bounded(settings, self.pre.instantiate_async(&mut store))
            .await
            .and_then(|r| r.map_err(|e| classify(&e, store.data(), &settings.limits)))
            .map_err(|f| prefix(f, "instantiate"))?;
        arm(&mut store, settings);
        match bounded(settings, command.wasi_cli_run().call_run(&mut store)).await? {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) => {
                Err(Failure::new(ReasonCode::UserError, "the command exited with an error (a nonzero status)"))
            }
            Err(trap) => {
                // `exit(0)` unwinds as an error carrying the status.
                if let Some(exit) = trap.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    return if exit.0 == 0 {
                        Ok(())
                    } else {
                        Err(Failure::new(ReasonCode::UserError, format!("the command exited with status {}", exit.0)))
                    };
                }
                Err(classify(&trap, store.data(), &settings.limits))
            }
        }
    }
}
