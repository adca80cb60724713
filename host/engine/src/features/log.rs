//! The `log` import: guest log lines go to the instance's [`Logger`]
//! (bounded by `limits.max_log_kb` through its budget); the SDK's panic
//! hook reports its text here, which also explains the trap that follows.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::wit_log;
use crate::features::{Diagnostics, Event};
use crate::logs::{Level, Logger};

/// The log feature's state in a store: where the instance's lines go.
pub(crate) struct LogState {
    pub(crate) logger: Arc<Logger>,
}

/// What a `log` call may touch: its own state and the call's
/// [`Diagnostics`] (a reported panic explains the trap after it).
pub(crate) struct LogView<'a> {
    pub(crate) state: &'a mut LogState,
    pub(crate) diag: &'a mut Diagnostics,
}

/// The [`HasData`] type of the log feature: its `Data` is a [`LogView`].
pub(crate) struct Log;

impl HasData for Log {
    type Data<'a> = LogView<'a>;
}

/// Links the `log` interface, reaching the feature through `view`.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> LogView<'_>,
) -> wasmtime::Result<()> {
    wit_log::add_to_linker::<T, Log>(linker, view)
}

impl wit_log::Host for LogView<'_> {
    fn log(&mut self, level: wit_log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            wit_log::Level::Trace => Level::Trace,
            wit_log::Level::Debug => Level::Debug,
            wit_log::Level::Info => Level::Info,
            wit_log::Level::Warn => Level::Warn,
            wit_log::Level::Error => Level::Error,
        };
        self.state.logger.log(level, &message);
        Ok(())
    }

    fn panicked(&mut self, message: String) -> wasmtime::Result<()> {
        // Bounded (on a character boundary) and escaped: it ends up in
        // reports, logs and on the terminal.
        // Room for the "init: panicked: " its report adds.
        let m = sluice_job::text::guest_text(&message, sluice_job::text::MAX_MESSAGE_BYTES - 32);
        self.state.logger.log(Level::Error, &format!("panicked: {m}"));
        self.diag.last = Some(Event::Panic(m));
        Ok(())
    }
}
