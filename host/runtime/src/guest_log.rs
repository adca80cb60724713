//! Guest log lines: one file per instance under `logs/`, and tracing.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use sluice_engine::{GuestLog, Level};

/// Writes `logs/instance-N.log` (created on the first line) and forwards
/// each line to tracing (warnings and errors at their level, the rest at
/// DEBUG), tagged with job, mini-batch and instance.
pub(crate) struct FileGuestLog {
    job: String,
    dir: PathBuf,
    /// Starts every file name: a cluster node's name, so nodes sharing a
    /// job directory write files of their own.
    prefix: String,
    files: Mutex<HashMap<usize, BufWriter<File>>>,
}

impl FileGuestLog {
    pub(crate) fn new(job: &str, dir: PathBuf) -> std::io::Result<FileGuestLog> {
        std::fs::create_dir_all(&dir)?;
        Ok(FileGuestLog { job: job.to_string(), dir, prefix: String::new(), files: Mutex::new(HashMap::new()) })
    }

    /// Log files named `PREFIX-instance-N.log`.
    pub(crate) fn with_prefix(mut self, prefix: &str) -> FileGuestLog {
        self.prefix = format!("{prefix}-");
        self
    }

    pub(crate) fn flush(&self) {
        for f in self.files.lock().expect("log lock").values_mut() {
            let _ = f.flush();
        }
    }
}

impl GuestLog for FileGuestLog {
    fn line(&self, instance: usize, mini_batch: Option<&str>, level: Level, message: &str) {
        let mb = mini_batch.unwrap_or("-");
        match level {
            Level::Error => {
                tracing::error!(job = %self.job, mini_batch = mb, instance, "guest: {message}")
            }
            Level::Warn => {
                tracing::warn!(job = %self.job, mini_batch = mb, instance, "guest: {message}")
            }
            // The guest's own chatter stays in its log file unless the user
            // asks for DEBUG.
            Level::Info | Level::Debug | Level::Trace => {
                tracing::debug!(job = %self.job, mini_batch = mb, instance, "guest: {message}")
            }
        }
        let mut files = self.files.lock().expect("log lock");
        let f = match files.entry(instance) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                // Appended: a resumed job keeps the logs of earlier runs.
                let path = self.dir.join(format!("{}instance-{instance}.log", self.prefix));
                match std::fs::OpenOptions::new().create(true).append(true).open(path) {
                    Ok(f) => v.insert(BufWriter::new(f)),
                    Err(e) => {
                        tracing::warn!("cannot write guest log of instance {instance}: {e}");
                        return;
                    }
                }
            }
        };
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let _ = writeln!(f, "{ts} {:5} job={} mini_batch={mb} instance={instance} {message}", level.as_str(), self.job);
    }
}
