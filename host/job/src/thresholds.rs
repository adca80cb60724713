//! The three failure thresholds of an Azure ML parallel job
//! (`error_threshold`, `mini_batch_error_threshold`,
//! `allowed_failed_percent`), checked together after every finished
//! mini-batch (a mini-batch is finished after its last try). The first one
//! crossed stops the job: no new mini-batches start, what is committed
//! stays, and the job is `failed` naming it (ARCHITECTURE.md,
//! "Invariants").

/// Which threshold stopped a job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crossed {
    /// More failed items than `error_threshold`.
    ErrorThreshold,
    /// More failed mini-batches than `mini_batch_error_threshold`.
    MiniBatchErrorThreshold,
    /// More failed mini-batches than `allowed_failed_percent` of the plan.
    AllowedFailedPercent,
}

impl Crossed {
    /// The spec key, as reports and messages name it.
    pub fn key(&self) -> &'static str {
        match self {
            Crossed::ErrorThreshold => "error_threshold",
            Crossed::MiniBatchErrorThreshold => "mini_batch_error_threshold",
            Crossed::AllowedFailedPercent => "allowed_failed_percent",
        }
    }
}

/// The job's thresholds, as validated from the spec; `job_result.json`
/// repeats them so a failed job shows what it was held to.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Thresholds {
    /// Failed items tolerated over the job; -1 = ignore.
    pub error_threshold: i64,
    /// Failed mini-batches (after their last try) tolerated; -1 = ignore.
    pub mini_batch_error_threshold: i64,
    /// Failed mini-batches as a percent of all.
    pub allowed_failed_percent: u32,
}

/// Running failure counts of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    /// Item errors of succeeded mini-batches plus every item of a failed
    /// one (an item a mini-batch failure took with it failed too).
    pub failed_items: u64,
    /// Mini-batches that failed their last try.
    pub failed_mini_batches: u64,
}

impl Thresholds {
    /// The threshold the tally has crossed, if any; "crossed" means more
    /// failures than the number tolerated. `total_mini_batches` is the size
    /// of the whole plan: the percent is of all mini-batches, so it can be
    /// known to be crossed before all have run.
    pub fn check(&self, t: &Tally, total_mini_batches: u64) -> Option<(Crossed, String)> {
        if self.error_threshold >= 0 && t.failed_items > self.error_threshold as u64 {
            return Some((
                Crossed::ErrorThreshold,
                format!("{} failed items exceed error_threshold = {}", t.failed_items, self.error_threshold),
            ));
        }
        if self.mini_batch_error_threshold >= 0 && t.failed_mini_batches > self.mini_batch_error_threshold as u64 {
            return Some((
                Crossed::MiniBatchErrorThreshold,
                format!(
                    "{} failed mini-batches exceed mini_batch_error_threshold = {}",
                    t.failed_mini_batches, self.mini_batch_error_threshold
                ),
            ));
        }
        // failed / total > percent / 100, in integers.
        if total_mini_batches > 0
            && t.failed_mini_batches * 100 > self.allowed_failed_percent as u64 * total_mini_batches
        {
            return Some((
                Crossed::AllowedFailedPercent,
                format!(
                    "{} of {} mini-batches failed ({:.1}%), more than allowed_failed_percent = {}",
                    t.failed_mini_batches,
                    total_mini_batches,
                    t.failed_mini_batches as f64 * 100.0 / total_mini_batches as f64,
                    self.allowed_failed_percent
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: Thresholds =
        Thresholds { error_threshold: -1, mini_batch_error_threshold: -1, allowed_failed_percent: 100 };

    #[test]
    fn defaults_tolerate_everything() {
        assert_eq!(OFF.check(&Tally { failed_items: 1000, failed_mini_batches: 10 }, 10), None);
    }

    #[test]
    fn each_threshold_crosses_one_past_its_value() {
        let t = Thresholds { error_threshold: 5, ..OFF };
        assert_eq!(t.check(&Tally { failed_items: 5, failed_mini_batches: 0 }, 10), None);
        assert_eq!(t.check(&Tally { failed_items: 6, failed_mini_batches: 0 }, 10).unwrap().0, Crossed::ErrorThreshold);
        let t = Thresholds { mini_batch_error_threshold: 0, ..OFF };
        assert_eq!(
            t.check(&Tally { failed_items: 0, failed_mini_batches: 1 }, 10).unwrap().0,
            Crossed::MiniBatchErrorThreshold
        );
        let t = Thresholds { allowed_failed_percent: 20, ..OFF };
        assert_eq!(t.check(&Tally { failed_items: 0, failed_mini_batches: 2 }, 10), None);
        assert_eq!(
            t.check(&Tally { failed_items: 0, failed_mini_batches: 3 }, 10).unwrap().0,
            Crossed::AllowedFailedPercent
        );
    }
}
