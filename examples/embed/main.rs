//! Shows sluice embedded as a library: a job run from Rust code with an
//! observer that collects progress events and cancels the job halfway,
//! then resumed to the end.
//!
//! Run it: `cargo run -p sluice-tests --example embed -- SCORER.wasm INPUT_FOLDER WORK_FOLDER`
//! (the test suite runs it over the file-stats plugin: tests/all/seams.rs).

use std::path::Path;
use std::sync::Mutex;

use sluice_job::JobSpec;
use sluice_job::spec::Override;
use sluice_runtime::{
    Backends, BatchFinished, BatchStarted, CancelToken, JobResult, JobStarted, RunObserver, RunOptions,
};

/// Collects what the job reports and cancels it once half its
/// mini-batches are done.
#[derive(Debug)]
pub struct HalfwayCanceler {
    cancel: CancelToken,
    /// Every event, as a line ("started 3 try 1", "finished 3 Succeeded").
    pub events: Mutex<Vec<String>>,
    total: Mutex<u64>,
}

impl RunObserver for HalfwayCanceler {
    fn job_started(&self, s: &JobStarted) {
        *self.total.lock().unwrap() = s.total;
        self.events.lock().unwrap().push(format!("job {} with {} mini-batches", s.job, s.total));
    }

    fn mini_batch_started(&self, s: &BatchStarted) {
        self.events.lock().unwrap().push(format!("started {} try {}", s.index, s.attempt));
    }

    fn mini_batch_finished(&self, f: &BatchFinished) {
        self.events.lock().unwrap().push(format!("finished {} {:?}", f.index, f.outcome));
        if f.counters.done * 2 >= *self.total.lock().unwrap() {
            self.cancel.cancel("canceled halfway by the embedding program");
        }
    }
}

/// What [`embed`] saw: the canceled run, its events, and the resumed run.
#[derive(Debug)]
pub struct Embedded {
    /// The first run, canceled halfway.
    pub canceled: JobResult,
    /// Its observer's events.
    pub events: Vec<String>,
    /// The second run (a resume in the same job directory) to the end.
    pub resumed: JobResult,
}

/// Scores every file of `input` with `scorer`, one file per mini-batch,
/// rows to `work/out.csv`, job directory `work/job`: cancels halfway, then
/// resumes.
pub fn embed(
    scorer: &Path,
    input: &Path,
    work: &Path,
    options: impl Fn(RunOptions) -> RunOptions,
) -> Result<Embedded, Box<dyn std::error::Error>> {
    let overrides: Vec<Override> = [
        "inputs.data.type=uri_folder".to_string(),
        format!("inputs.data.path={}", input.display()),
        "input_data=${{inputs.data}}".to_string(),
        format!("task.code={}", scorer.display()),
        format!("task.append_row_to={}", work.join("out.csv").display()),
        "mini_batch_size=1".to_string(),
        "max_concurrency_per_instance=1".to_string(),
    ]
    .iter()
    .map(|o| Override::parse(o))
    .collect::<Result<_, _>>()?;
    let spec = JobSpec::from_overrides(&overrides)?;
    let opts = options(RunOptions::new(work.join("job")));

    // Prepare (plan, compile, open the job directory), then run with the
    // observer; the finish writes the job directory.
    let cancel = CancelToken::new(std::time::Duration::from_secs(30));
    let observer = HalfwayCanceler { cancel: cancel.clone(), events: Mutex::default(), total: Mutex::new(0) };
    let prepared = sluice_runtime::prepare_local(&spec, &opts)?;
    let canceled = prepared.run(Backends::default(), &observer, &cancel)?;
    let events = std::mem::take(&mut *observer.events.lock().unwrap());

    // The same job again in the same job directory: a resume.
    let prepared = sluice_runtime::prepare_local(&spec, &opts)?;
    let resumed = prepared.run(Backends::default(), &sluice_runtime::NoObserver, &CancelToken::default())?;
    Ok(Embedded { canceled, events, resumed })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [scorer, input, work] = args.as_slice() else {
        return Err("usage: embed SCORER.wasm INPUT_FOLDER WORK_FOLDER".into());
    };
    let e = embed(Path::new(scorer), Path::new(input), Path::new(work), |o| o)?;
    for line in &e.events {
        println!("{line}");
    }
    println!("first run: {:?} ({:?})", e.canceled.status, e.canceled.reason);
    println!("resumed:   {:?}, output {}", e.resumed.status, e.resumed.output.as_deref().unwrap_or("-"));
    Ok(())
}
