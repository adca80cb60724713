//! Guest log lines (the `log` import and the guest's stdout/stderr), tagged
//! with instance and mini-batch, capped per instance.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// Where guest log lines go (the runtime writes them to per-instance files
/// and to tracing).
pub trait GuestLog: Send + Sync {
    fn line(&self, instance: usize, mini_batch: Option<&str>, level: Level, message: &str);
}

/// Per-instance log state shared by the `log` import and the stdio streams.
pub(crate) struct Logger {
    sink: Arc<dyn GuestLog>,
    instance: usize,
    state: Mutex<LoggerState>,
}

struct LoggerState {
    mini_batch: Option<String>,
    used: u64,
    cap: u64,
    capped: bool,
    /// Partial lines written to stdout (0) and stderr (1).
    partial: [Vec<u8>; 2],
}

impl Logger {
    pub(crate) fn new(sink: Arc<dyn GuestLog>, instance: usize, cap: u64) -> Arc<Logger> {
        Arc::new(Logger {
            sink,
            instance,
            state: Mutex::new(LoggerState {
                mini_batch: None,
                used: 0,
                cap,
                capped: false,
                partial: [Vec::new(), Vec::new()],
            }),
        })
    }

    pub(crate) fn set_mini_batch(&self, id: Option<&str>) {
        self.flush_partial();
        self.state.lock().expect("log lock").mini_batch = id.map(str::to_string);
    }

    /// Logs one line unless the instance's volume cap is spent; the first
    /// line over the cap is replaced by one notice.
    pub(crate) fn log(&self, level: Level, message: &str) {
        let mut st = self.state.lock().expect("log lock");
        if st.capped {
            return;
        }
        st.used += message.len() as u64 + 1;
        if st.used > st.cap {
            st.capped = true;
            let notice = format!(
                "guest log volume reached limits.max_log_kb = {} KiB; further lines of this instance are dropped",
                st.cap / 1024
            );
            self.sink.line(self.instance, st.mini_batch.as_deref(), Level::Warn, &notice);
            return;
        }
        self.sink.line(self.instance, st.mini_batch.as_deref(), level, message);
    }

    fn write_stream(&self, which: usize, bytes: &[u8]) {
        let lines: Vec<String> = {
            let mut st = self.state.lock().expect("log lock");
            if st.capped {
                return;
            }
            let buf = &mut st.partial[which];
            buf.extend_from_slice(bytes);
            let mut lines = Vec::new();
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            }
            // A runaway line without newline still counts against the cap.
            if buf.len() > 64 * 1024 {
                let line: Vec<u8> = std::mem::take(buf);
                lines.push(String::from_utf8_lossy(&line).into_owned());
            }
            lines
        };
        let level = if which == 0 { Level::Info } else { Level::Warn };
        for l in lines {
            self.log(level, &l);
        }
    }

    fn flush_partial(&self) {
        for which in 0..2 {
            let rest = std::mem::take(&mut self.state.lock().expect("log lock").partial[which]);
            if !rest.is_empty() {
                let level = if which == 0 { Level::Info } else { Level::Warn };
                self.log(level, &String::from_utf8_lossy(&rest));
            }
        }
    }
}

/// The guest's stdout or stderr: lines become log lines.
#[derive(Clone)]
pub(crate) struct GuestStream {
    pub(crate) logger: Arc<Logger>,
    pub(crate) which: usize,
}

impl wasmtime_wasi::cli::IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.logger.write_stream(self.which, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
