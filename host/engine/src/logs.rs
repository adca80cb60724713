//! Guest log lines (the `log` import and the guest's stdout/stderr), tagged
//! with instance and mini-batch, capped per instance.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The finest detail.
    Trace,
    /// Detail for debugging a scorer.
    Debug,
    /// Ordinary progress; the guest's stdout lines get this level.
    Info,
    /// Something the job's owner should look at; the guest's stderr lines get this level.
    Warn,
    /// A failure the guest reports.
    Error,
}

impl Level {
    /// The level's name in capitals (`"INFO"`), as log files and tracing print it.
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
    /// Takes one line of `instance`, logged while it ran `mini_batch` (`None` outside a `run()`); the text is
    /// already escaped, cut and charged to the budget (or is the one notice that the budget is spent).
    fn line(&self, instance: usize, mini_batch: Option<&str>, level: Level, message: &str);
}

/// What one guest log line costs against `limits.max_log_kb` beyond its
/// text: about what the host adds to it in the log file (time, level, job,
/// mini-batch and instance tags). So a flood of empty lines is capped as
/// surely as a few long ones.
pub const LINE_COST: u64 = 64;

/// A volume of guest log lines (`limits.max_log_kb`) that several
/// instances may draw on: a mini-batch's budget is shared by every try of
/// it (a retry does not get a fresh cap), and an instance's `init()` draws
/// on the budget of the mini-batch it was made for.
#[derive(Debug)]
pub struct LogBudget {
    cap: u64,
    state: Mutex<(u64, bool)>,
}

impl LogBudget {
    /// A budget of `cap` bytes, nothing drawn yet.
    pub fn new(cap: u64) -> Arc<LogBudget> {
        Arc::new(LogBudget { cap, state: Mutex::new((0, false)) })
    }

    /// Charges `cost`; `Some(true)` for the first line refused (which gets
    /// the notice), `Some(false)` for the later ones, `None` when it fits.
    fn charge(&self, cost: u64) -> Option<bool> {
        let mut st = self.state.lock().expect("log budget lock");
        if st.1 {
            return Some(false);
        }
        st.0 = st.0.saturating_add(cost);
        if st.0 > self.cap {
            st.1 = true;
            return Some(true);
        }
        None
    }
}

/// Per-instance log state shared by the `log` import and the stdio streams.
pub(crate) struct Logger {
    sink: Arc<dyn GuestLog>,
    instance: usize,
    state: Mutex<LoggerState>,
}

struct LoggerState {
    mini_batch: Option<String>,
    budget: Arc<LogBudget>,
    /// Partial lines written to stdout (0) and stderr (1).
    partial: [Vec<u8>; 2],
}

impl Logger {
    pub(crate) fn new(sink: Arc<dyn GuestLog>, instance: usize, budget: Arc<LogBudget>) -> Arc<Logger> {
        Arc::new(Logger {
            sink,
            instance,
            state: Mutex::new(LoggerState { mini_batch: None, budget, partial: [Vec::new(), Vec::new()] }),
        })
    }

    /// Lines from now on belong to mini-batch `id` and draw on `budget`.
    pub(crate) fn set_mini_batch(&self, id: Option<&str>, budget: Option<Arc<LogBudget>>) {
        self.flush_partial();
        let mut st = self.state.lock().expect("log lock");
        st.mini_batch = id.map(str::to_string);
        if let Some(b) = budget {
            st.budget = b;
        }
    }

    /// Logs one line unless the budget is spent; the first line over it is
    /// replaced by one notice. The text is guest-controlled: escaped (a
    /// newline cannot forge another line, an escape sequence cannot reach
    /// a terminal) and cut to `MAX_LOG_LINE_BYTES`.
    pub(crate) fn log(&self, level: Level, message: &str) {
        let st = self.state.lock().expect("log lock");
        // A spent budget drops the line before any work on its text.
        if st.budget.state.lock().expect("log budget lock").1 {
            return;
        }
        let text = sluice_job::text::guest_text(message, sluice_job::text::MAX_LOG_LINE_BYTES);
        match st.budget.charge(text.len() as u64 + LINE_COST) {
            None => self.sink.line(self.instance, st.mini_batch.as_deref(), level, &text),
            Some(true) => {
                let notice = format!(
                    "guest log volume reached limits.max_log_kb = {} KiB (counting {LINE_COST} bytes per line); \
                     further lines of this mini-batch are dropped",
                    st.budget.cap / 1024
                );
                self.sink.line(self.instance, st.mini_batch.as_deref(), Level::Warn, &notice);
            }
            Some(false) => {}
        }
    }

    fn write_stream(&self, which: usize, bytes: &[u8]) {
        let lines: Vec<String> = {
            let mut st = self.state.lock().expect("log lock");
            if st.budget.state.lock().expect("log budget lock").1 {
                return;
            }
            let buf = &mut st.partial[which];
            buf.extend_from_slice(bytes);
            let mut lines = Vec::new();
            while let Some(pos) = memchr_newline(buf) {
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

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
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
