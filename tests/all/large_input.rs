//! Tabular files larger than `limits.max_file_mb`: a file read whole over
//! the cap is a named error; the same file cut into row mini-batches runs,
//! each row exactly once, quoted newlines kept.

use crate::helpers::*;

/// `id,text` rows, every seventh text quoting a newline and a comma: about
/// 1.5 MB for 50,000 rows, over a 1 MiB cap.
fn big_csv(rows: usize) -> String {
    let mut s = String::from("id,text\n");
    for i in 0..rows {
        if i % 7 == 0 {
            s.push_str(&format!("{i},\"line one of {i},\nline two\"\n"));
        } else {
            s.push_str(&format!("{i},value number {i}\n"));
        }
    }
    s
}

#[test]
fn a_tabular_file_over_the_cap_read_whole_is_a_named_error() {
    let big = big_csv(50_000);
    assert!(big.len() > 1 << 20);
    let job = Job::tabular(PASSTHROUGH)
        .file("a-small.csv", "id,text\n1,hello\n2,world\n")
        .file("big.csv", &big)
        .set("limits.max_file_mb", "1")
        .set("mini_batch_size", "1 files")
        .output("csv");
    let r = job.run();
    assert_eq!(r.items.succeeded, 2, "{r:?}");
    let e = r.first_errors.iter().find(|e| e.item.as_deref() == Some("big.csv")).expect("no error names big.csv");
    assert!(
        e.message.contains(&format!("file is {} bytes", big.len()))
            && e.message.contains("limits.max_file_mb = 1 MiB")
            && e.message.contains("--max-file-mb"),
        "{}",
        e.message
    );
    assert_ne!(r.status, sluice_job::result::JobStatus::Completed);
}

#[test]
fn the_same_file_in_row_mini_batches_runs_each_row_once() {
    let big = big_csv(50_000);
    let job = Job::tabular(PASSTHROUGH)
        .file("big.csv", &big)
        .set("limits.max_file_mb", "1")
        .set("mini_batch_size", "5000")
        .output("csv");
    let r = job.run();
    assert_eq!(r.status, sluice_job::result::JobStatus::Completed, "{:?}", r.reason);
    assert_eq!(r.mini_batches.total, 10);
    let (h, rows) = job.csv_rows();
    let (id, text, row) = (
        h.iter().position(|c| c == "id").unwrap(),
        h.iter().position(|c| c == "text").unwrap(),
        h.iter().position(|c| c == "row_number").unwrap(),
    );
    assert_eq!(rows.len(), 50_000);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!((r[id].as_str(), r[row].as_str()), (i.to_string().as_str(), i.to_string().as_str()));
        if i % 7 == 0 {
            assert_eq!(r[text], format!("line one of {i},\nline two"));
        }
    }
}

#[test]
fn parquet_row_mini_batches_across_row_groups_give_each_row_once() {
    // 10 row groups of 1,000 rows; mini-batches of 1,500 rows start and end
    // inside row groups.
    let (bytes, groups) = ids_parquet(0..10_000, 1000);
    assert_eq!(groups, 10);
    let job = Job::tabular(PASSTHROUGH).file("ids.parquet", &bytes).set("mini_batch_size", "1500").output("csv");
    let r = job.run();
    assert_eq!(r.status, sluice_job::result::JobStatus::Completed, "{:?}", r.reason);
    assert_eq!(r.mini_batches.total, 7);
    let (h, rows) = job.csv_rows();
    let (id, row) = (h.iter().position(|c| c == "id").unwrap(), h.iter().position(|c| c == "row_number").unwrap());
    let got: Vec<(String, String)> = rows.iter().map(|r| (r[id].clone(), r[row].clone())).collect();
    let want: Vec<(String, String)> = (0..10_000).map(|i| (i.to_string(), i.to_string())).collect();
    assert_eq!(got, want);
}
