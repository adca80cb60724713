//! `sluice run PIPELINE.yml` (`type: pipeline`): each step a job of its own
//! under the pipeline's folder, run in dependency order
//! (`sluice_runtime::pipeline` plans them); `sluice resume` and `jobs show`
//! of a pipeline folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;
use sluice_job::spec::SpecSource;
use sluice_runtime::JobStatus;
use sluice_runtime::jobs::{JobIndex, read_result};
use sluice_runtime::pipeline::{self, Planned};

use crate::{ClusterArgs, Failure};

/// The plan a pipeline folder keeps.
pub(crate) const PLAN_FILE: &str = "pipeline.json";

/// Whether `dir` is a pipeline's folder.
pub(crate) fn is_pipeline_dir(dir: &Path) -> bool {
    dir.join(PLAN_FILE).is_file()
}

/// The plan a pipeline folder keeps, checked: at most 16 MiB, steps with
/// plain names whose job folders are `dir/steps/NAME/job` (a moved folder
/// resumes where it is now), each after steps that come before it.
fn read_plan(dir: &Path) -> Result<Planned, Failure> {
    use std::io::Read;
    let path = dir.join(PLAN_FILE);
    let bad = |m: String| Failure::Job(anyhow!("{}: {m}", path.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(16 << 20).read_to_end(&mut bytes))
        .map_err(|e| bad(e.to_string()))?;
    let mut planned: Planned = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a pipeline plan: {e}")))?;
    if planned.steps.len() > pipeline::MAX_STEPS {
        return Err(bad(format!("more than {} steps", pipeline::MAX_STEPS)));
    }
    let mut seen: Vec<String> = Vec::new();
    for s in &mut planned.steps {
        if !sluice_job::spec::valid_port_name(&s.name) || s.after.iter().any(|a| !seen.contains(a)) {
            return Err(bad(format!("step `{}` is not a step of a plan sluice wrote", s.name)));
        }
        s.job_dir = dir.join("steps").join(&s.name).join("job");
        seen.push(s.name.clone());
    }
    Ok(planned)
}

/// Plans `file` for `dir` (a new folder, or the one of an earlier run of
/// the same pipeline) and runs its steps.
pub(crate) fn run(
    file: &Path,
    dir: Option<PathBuf>,
    data_dir: &Path,
    cache_dir: Option<PathBuf>,
    index: JobIndex,
    quiet: bool,
) -> Result<ExitCode, Failure> {
    let dir = match dir {
        Some(d) => d,
        None => {
            let stem = file.file_stem().map_or("pipeline".into(), |s| s.to_string_lossy().into_owned());
            index.default_jobs_dir().join(format!("{stem}-{}", crate::humantime_stamp()))
        }
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let planned = pipeline::plan(file, &dir, data_dir).map_err(|e| Failure::Usage(anyhow!(e)))?;
    if is_pipeline_dir(&dir) {
        let earlier = read_plan(&dir)?;
        let same = earlier.steps == planned.steps;
        if !same {
            return Err(Failure::Usage(anyhow!(
                "{}: this folder holds a run of another version of the pipeline; give another --job-dir",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| Failure::Job(anyhow!("{}: {e}", dir.display())))?;
    let json = serde_json::to_vec_pretty(&planned).expect("a plan serialises");
    sluice_job::durable::write_durably(&dir.join(PLAN_FILE), &json)
        .map_err(|e| Failure::Job(anyhow!("{}: {e}", dir.join(PLAN_FILE).display())))?;
    run_steps(&planned, &dir, cache_dir, index, quiet)
}

/// `sluice resume` of a pipeline folder: the steps not completed, with the
/// plan it keeps.
pub(crate) fn resume(
    dir: &Path,
    cache_dir: Option<PathBuf>,
    index: JobIndex,
    quiet: bool,
) -> Result<ExitCode, Failure> {
    let planned = read_plan(dir)?;
    run_steps(&planned, dir, cache_dir, index, quiet)
}

fn run_steps(
    planned: &Planned,
    dir: &Path,
    cache_dir: Option<PathBuf>,
    index: JobIndex,
    quiet: bool,
) -> Result<ExitCode, Failure> {
    out!("pipeline {} ({} steps) in {}", planned.name, planned.steps.len(), dir.display());
    // Each step starts as soon as every step it reads from has completed,
    // at most as many at once as the machine has cores (each is a job with
    // its own instances, or a command with its own sandbox), each on a
    // thread of its own.
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Waiting,
        Running,
        Done,
        /// Failed, or not run because it reads from one that did.
        Broken,
    }
    // One handler for the whole pipeline (a parallel step adds its own,
    // which cancels it gracefully): Ctrl-C or SIGTERM abandons a running
    // command step and starts no further step.
    let stopping = Arc::new(AtomicBool::new(false));
    let _signals = signal_hook::flag::register(signal_hook::consts::SIGINT, stopping.clone())
        .and_then(|_| signal_hook::flag::register(signal_hook::consts::SIGTERM, stopping.clone()));
    let steps = &planned.steps;
    let index_of = |name: &str| steps.iter().position(|s| s.name == name).expect("a planned step");
    let width = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut state = vec![State::Waiting; steps.len()];
    let mut first_error: Option<Failure> = None;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<bool, Failure>)>();
        let mut running = 0usize;
        loop {
            let any_broken = state.contains(&State::Broken);
            let halt = stopping.load(Ordering::Acquire)
                || first_error.is_some()
                || (any_broken && !planned.continue_on_step_failure);
            if !halt {
                for i in 0..steps.len() {
                    if state[i] != State::Waiting {
                        continue;
                    }
                    let deps: Vec<State> = steps[i].after.iter().map(|d| state[index_of(d)]).collect();
                    if deps.contains(&State::Broken) {
                        out!("step {}: not run: it reads from a step that did not complete", steps[i].name);
                        state[i] = State::Broken;
                    } else if deps.iter().all(|d| *d == State::Done) && running < width {
                        state[i] = State::Running;
                        running += 1;
                        let (tx, cache_dir, index, stopping) =
                            (tx.clone(), cache_dir.clone(), index.clone(), &stopping);
                        let step = &steps[i];
                        scope.spawn(move || {
                            // A panic must still report, or the loop would wait for it.
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                run_step(planned, step, dir, cache_dir, index, quiet, stopping)
                            }))
                            .unwrap_or_else(|_| {
                                Err(Failure::Job(anyhow!("step {}: a bug in sluice (a panic)", step.name)))
                            });
                            let _ = tx.send((i, r));
                        });
                    }
                }
            }
            if running == 0 {
                break;
            }
            let (i, r) = rx.recv().expect("a running step reports");
            running -= 1;
            state[i] = match r {
                Ok(true) => State::Done,
                Ok(false) => State::Broken,
                Err(e) => {
                    first_error.get_or_insert(e);
                    State::Broken
                }
            };
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    if stopping.load(Ordering::Acquire) && state.iter().any(|s| *s != State::Done) {
        out!("pipeline {}: stopped (`sluice resume {}` goes on)", planned.name, dir.display());
        return Ok(ExitCode::from(130));
    }
    let broken: Vec<&str> =
        steps.iter().zip(&state).filter(|(_, s)| **s != State::Done).map(|(p, _)| p.name.as_str()).collect();
    if !broken.is_empty() {
        out!(
            "pipeline {}: steps {} did not complete (`sluice resume {}` goes on)",
            planned.name,
            broken.join(", "),
            dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    out!("pipeline {}: completed", planned.name);
    Ok(ExitCode::SUCCESS)
}

/// Runs one step (or finds it completed earlier): whether it completed.
fn run_step(
    planned: &Planned,
    step: &pipeline::PlannedStep,
    dir: &Path,
    cache_dir: Option<PathBuf>,
    index: JobIndex,
    quiet: bool,
    stopping: &Arc<AtomicBool>,
) -> Result<bool, Failure> {
    if let Some(cmd) = &step.command {
        if pipeline::command_done(step) {
            out!("step {}: completed earlier", step.name);
            return Ok(true);
        }
        out!("step {}: running the command {}{}", step.name, cmd.code.display(), after(&step.after));
        return Ok(match pipeline::run_command(step, cmd, cache_dir.as_deref(), Some(stopping.clone())) {
            Err(why) => {
                out!("step {}: failed: {why}", step.name);
                false
            }
            Ok(()) => {
                out!("step {}: completed", step.name);
                true
            }
        });
    }
    if read_result(&step.job_dir).is_some_and(|r| r.status == JobStatus::Completed) {
        out!("step {}: completed earlier", step.name);
        return Ok(true);
    }
    out!("step {}: running{}", step.name, after(&step.after));
    let mut source = SpecSource::new(None, &[]).map_err(|e| Failure::Usage(e.into()))?;
    source.origin = format!("{} jobs.{}", planned.file.display(), step.name);
    source.text = step.text.clone();
    // A step's own relative paths are the pipeline file's (a component's
    // were made absolute when it was composed).
    source.base = planned.file.parent().map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
    let spec = source.spec().map_err(|e| Failure::Usage(e.into()))?;
    let r =
        crate::run_spec(&spec, source, step.job_dir.clone(), cache_dir, index, false, quiet, &ClusterArgs::default())?;
    if r.status != JobStatus::Completed {
        out!("step {}: {:?}", step.name, r.status);
        return Ok(false);
    }
    Ok(true)
}

fn after(deps: &[String]) -> String {
    if deps.is_empty() { String::new() } else { format!(" (after {})", deps.join(", ")) }
}

/// `sluice jobs show` of a pipeline folder: its steps, their status and
/// their job folders.
pub(crate) fn show(dir: &Path) -> Result<(), Failure> {
    let planned = read_plan(dir)?;
    out!("pipeline {} ({})", planned.name, planned.file.display());
    out!("{:<24} {:<22} {:>10} {:>8}  {}", "STEP", "STATUS", "DONE", "FAILED", "JOB");
    for s in &planned.steps {
        if s.command.is_some() {
            let status = if pipeline::command_done(s) { "completed" } else { "not completed" };
            out!("{:<24} {:<22} {:>10} {:>8}  {}", s.name, status, "-", "-", s.job_dir.display());
            continue;
        }
        let (status, done, failed) = match read_result(&s.job_dir) {
            Some(r) => (
                serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                format!("{}/{}", r.mini_batches.succeeded + r.mini_batches.failed, r.mini_batches.total),
                r.mini_batches.failed.to_string(),
            ),
            None => ("not run".to_string(), "-".to_string(), "-".to_string()),
        };
        out!("{:<24} {:<22} {:>10} {:>8}  {}", s.name, status, done, failed, s.job_dir.display());
    }
    Ok(())
}
