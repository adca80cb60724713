//! The registry of jobs on this machine: plain files under the data
//! directory, no server. Jobs started without `--job-dir` live in
//! `DATA_DIR/jobs/`; every job directory, wherever it is, is also listed in
//! `DATA_DIR/jobs.txt` (one absolute path per line), so `sluice jobs list`
//! finds it.

use std::io::Write;
use std::path::{Path, PathBuf};

use sluice_job::result::JobResult;

use crate::jobdir::{JobDir, ProgressFile};

/// The data directory's job registry.
#[derive(Debug, Clone)]
pub struct JobIndex {
    data_dir: PathBuf,
}

/// One job as `jobs list` shows it.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// The job directory.
    pub dir: PathBuf,
    /// The job's name (from its spec).
    pub name: String,
    /// `running`, `interrupted` (its process is gone without a result),
    /// `completed`, `completed_with_errors` or `failed`.
    pub status: String,
    /// When the (latest) run began (RFC 3339).
    pub started_at: String,
    /// Mini-batches in the plan.
    pub mini_batches_total: u64,
    /// Mini-batches finished, succeeded or failed.
    pub mini_batches_done: u64,
    /// Mini-batches that failed.
    pub mini_batches_failed: u64,
    /// Items that failed; `None` until the job has a result (the progress file does not count them).
    pub items_failed: Option<u64>,
    /// Seconds the run took, or has taken so far.
    pub duration_s: f64,
}

impl JobIndex {
    /// The registry under `data_dir`; nothing is read or created until it is used.
    pub fn new(data_dir: &Path) -> JobIndex {
        JobIndex { data_dir: data_dir.to_path_buf() }
    }

    /// Where jobs started without `--job-dir` go.
    pub fn default_jobs_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    /// Lists `job_dir` in the registry (once).
    pub fn register(&self, job_dir: &Path) -> std::io::Result<()> {
        let abs = std::path::absolute(job_dir)?;
        if self.known_dirs().contains(&abs) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.data_dir)?;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(self.data_dir.join("jobs.txt"))?;
        writeln!(f, "{}", abs.display())
    }

    fn known_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_to_string(self.data_dir.join("jobs.txt"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(PathBuf::from)
            .collect();
        if let Ok(rd) = std::fs::read_dir(self.default_jobs_dir()) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() && !dirs.contains(&p) {
                    dirs.push(p);
                }
            }
        }
        dirs
    }

    /// Every known job that still has a directory, newest first.
    pub fn list(&self) -> Vec<JobInfo> {
        let mut jobs: Vec<JobInfo> = self.known_dirs().iter().filter_map(|d| job_info(d)).collect();
        jobs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| b.dir.cmp(&a.dir)));
        jobs
    }

    /// A job by its directory, its directory's name (or a unique prefix of
    /// it), or its job name (the newest such job).
    pub fn resolve(&self, key: &str) -> Result<PathBuf, String> {
        if JobDir::open(key).is_job() {
            return Ok(PathBuf::from(key));
        }
        let jobs = self.list();
        let by_dir: Vec<&JobInfo> =
            jobs.iter().filter(|j| j.dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with(key))).collect();
        match by_dir.as_slice() {
            [one] => return Ok(one.dir.clone()),
            [] => {}
            many => {
                let names: Vec<String> = many
                    .iter()
                    .take(5)
                    .map(|j| j.dir.file_name().unwrap_or_default().to_string_lossy().into())
                    .collect();
                return Err(format!(
                    "`{key}` matches {} jobs ({}...): give more of the name",
                    many.len(),
                    names.join(", ")
                ));
            }
        }
        if let Some(j) = jobs.iter().find(|j| j.name == key) {
            return Ok(j.dir.clone());
        }
        Err(format!(
            "no job `{key}`: not a job directory, and no job of that name in {} (see `sluice jobs list`)",
            self.data_dir.display()
        ))
    }
}

/// What a job directory says of its job: its final result if it has one,
/// else its progress file.
pub fn job_info(dir: &Path) -> Option<JobInfo> {
    if let Some(r) = read_result(dir) {
        let status = serde_json::to_value(r.status).ok()?.as_str()?.to_string();
        return Some(JobInfo {
            dir: dir.to_path_buf(),
            name: r.job,
            status,
            started_at: r.started_at,
            mini_batches_total: r.mini_batches.total,
            mini_batches_done: r.mini_batches.succeeded + r.mini_batches.failed,
            mini_batches_failed: r.mini_batches.failed,
            items_failed: Some(r.items.failed),
            duration_s: r.timings.total_s,
        });
    }
    let p: ProgressFile = JobDir::open(dir).read_progress().ok()??;
    let status = if p.status == "running" && !alive(p.pid) { "interrupted".to_string() } else { p.status.clone() };
    Some(JobInfo {
        dir: dir.to_path_buf(),
        name: p.job,
        status,
        started_at: p.started_at,
        mini_batches_total: p.mini_batches_total,
        mini_batches_done: p.mini_batches_done,
        mini_batches_failed: p.mini_batches_failed,
        items_failed: None,
        duration_s: p.elapsed_s,
    })
}

/// `job_result.json` of a finished job, unless a later run of the job is
/// under way (its progress file is newer and says running). An unreadable
/// file counts as none (the job is listed by its progress).
pub fn read_result(dir: &Path) -> Option<JobResult> {
    let jd = JobDir::open(dir);
    let result = jd.read_result().ok()??;
    if let Some(p) = jd.read_progress().ok().flatten()
        && p.status == "running"
        && alive(p.pid)
        && p.started_at > result.started_at
    {
        return None;
    }
    Some(result)
}

/// Whether process `pid` is alive (on Linux: it has a /proc entry that is
/// not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_jobs_resolve_by_dir_name_prefix() {
        let data = tempfile::tempdir().unwrap();
        let idx = JobIndex::new(data.path());
        let elsewhere = tempfile::tempdir().unwrap();
        let job = elsewhere.path().join("nightly-1234");
        std::fs::create_dir_all(job.join("journal")).unwrap();
        std::fs::write(
            job.join("progress.json"),
            r#"{"job":"nightly","status":"running","pid":4000000000,"started_at":"2026-01-01T00:00:00Z","updated_at":"x","elapsed_s":1.0,"mini_batches_total":3,"mini_batches_done":1,"mini_batches_failed":0,"items_done":1}"#,
        )
        .unwrap();
        idx.register(&job).unwrap();
        idx.register(&job).unwrap();
        let list = idx.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, "interrupted", "its process is gone");
        assert_eq!(idx.resolve("nightly-12").unwrap(), job);
        assert_eq!(idx.resolve("nightly").unwrap(), job);
        assert!(idx.resolve("other").unwrap_err().contains("no job `other`"));
    }
}
