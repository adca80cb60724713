//! The sluice scorer SDK: write a batch scorer as one `impl Scorer` and one
//! `export_scorer!` line, build it with `cargo build --target
//! wasm32-wasip2 --release`, and run the `.wasm` with `sluice run`.
//!
//! ```ignore
//! use sluice_sdk::{export_scorer, Config, Error, MiniBatch, ResultBuilder, BatchResult, Scorer};
//!
//! struct Sizes;
//!
//! impl Scorer for Sizes {
//!     fn init(_config: Config) -> Result<Self, Error> { Ok(Sizes) }
//!     fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
//!         let mut out = ResultBuilder::new();
//!         for (i, file) in batch.files().iter().enumerate() {
//!             out.row(i).string("name", &file.name).s64("bytes", file.data.len() as i64);
//!         }
//!         Ok(out.finish())
//!     }
//! }
//!
//! export_scorer!(Sizes);
//! ```
//!
//! A panic inside `init` or `run` is reported to the host with its message
//! (the SDK installs a panic hook), and fails only that mini-batch.

#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "scorer-with-shutdown",
        pub_export_macro: true,
        export_macro_name: "__export_scorer_world",
        default_bindings_module: "sluice_sdk::bindings",
        generate_all,
    });
}

mod builder;
pub mod onnx;
mod types;

pub use bindings::sluice::scorer::log::Level;
pub use bindings::sluice::scorer::types::{
    BatchResult, Column, ColumnData, Config, Error, FileItem, ItemError, Items, MiniBatch, Table, TableItems,
};
pub use builder::{ResultBuilder, RowWriter};

/// A batch scorer. One value lives per sandboxed instance: `init` builds it
/// once, `run` is called once per mini-batch, `shutdown` when the host
/// retires a healthy instance.
pub trait Scorer: Sized + 'static {
    /// Reads the job's configuration (`task.config`, `program_arguments`,
    /// `environment_variables`). An `Err` fails the instance's start.
    fn init(config: Config) -> Result<Self, Error>;

    /// Scores one mini-batch. Report a bad item with
    /// [`ResultBuilder::error`]; return `Err` only when the whole mini-batch
    /// cannot be scored.
    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error>;

    fn shutdown(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// Sends one line to the job's log (tagged by the host with job,
/// mini-batch and instance).
pub fn log(level: Level, message: &str) {
    bindings::sluice::scorer::log::log(level, message);
}

#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log($crate::Level::Info, &format!($($t)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log($crate::Level::Warn, &format!($($t)*)) };
}

#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log($crate::Level::Debug, &format!($($t)*)) };
}

#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log($crate::Level::Error, &format!($($t)*)) };
}

/// Installs a panic hook that hands the panic message and location to the
/// host before the guest traps, so the failure reads "panicked: ..." rather
/// than "unreachable executed".
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_string());
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            bindings::sluice::scorer::log::panicked(&format!("{msg}{at}"));
        }));
    });
}

/// Exports a [`Scorer`] implementation as the component's `init`, `run` and
/// `lifecycle.shutdown`.
#[macro_export]
macro_rules! export_scorer {
    ($t:ty) => {
        struct __SluiceExport;

        ::std::thread_local! {
            static __SLUICE_SCORER: ::core::cell::RefCell<::core::option::Option<$t>> =
                const { ::core::cell::RefCell::new(::core::option::Option::None) };
        }

        impl $crate::bindings::Guest for __SluiceExport {
            fn init(config: $crate::Config) -> ::core::result::Result<(), $crate::Error> {
                $crate::install_panic_hook();
                let scorer = <$t as $crate::Scorer>::init(config)?;
                __SLUICE_SCORER.with(|s| *s.borrow_mut() = ::core::option::Option::Some(scorer));
                Ok(())
            }

            fn run(batch: $crate::MiniBatch) -> ::core::result::Result<$crate::BatchResult, $crate::Error> {
                __SLUICE_SCORER.with(|s| match s.borrow_mut().as_mut() {
                    ::core::option::Option::Some(scorer) => <$t as $crate::Scorer>::run(scorer, batch),
                    ::core::option::Option::None => Err($crate::Error::msg("run() called before a successful init()")),
                })
            }
        }

        impl $crate::bindings::exports::sluice::scorer::lifecycle::Guest for __SluiceExport {
            fn shutdown() -> ::core::result::Result<(), $crate::Error> {
                __SLUICE_SCORER.with(|s| match s.borrow_mut().as_mut() {
                    ::core::option::Option::Some(scorer) => <$t as $crate::Scorer>::shutdown(scorer),
                    ::core::option::Option::None => Ok(()),
                })
            }
        }

        $crate::bindings::__export_scorer_world!(__SluiceExport with_types_in $crate::bindings);
    };
}
