//! The example plugins do what their READMEs say.

use sha2::{Digest, Sha256};

use crate::helpers::*;

#[test]
fn file_stats_reports_bytes_lines_and_sha256() {
    let job = Job::new(FILE_STATS)
        .file("a.txt", "one\ntwo\n")
        .file("sub/b.txt", "no newline")
        .file("empty", "")
        .output("csv");
    job.run();
    let (header, rows) = job.csv_rows();
    assert_eq!(header, ["name", "bytes", "lines", "sha256"]);
    let sha = |s: &str| hex::encode(Sha256::digest(s.as_bytes()));
    assert_eq!(rows[0], ["a.txt", "8", "2", &sha("one\ntwo\n")]);
    assert_eq!(rows[1], ["empty", "0", "0", &sha("")]);
    assert_eq!(rows[2], ["sub/b.txt", "10", "1", &sha("no newline")]);
}

#[test]
fn csv_validate_turns_bad_files_into_item_errors() {
    let job = Job::new(CSV_VALIDATE)
        .file("good.csv", "id,amount\n1,2\n3,4\n")
        .file("empty.csv", "")
        .file("header_only.csv", "id,amount\n")
        .file("missing.csv", "id,other\n1,2\n")
        .file("ragged.csv", "id,amount\n1,2,3\n")
        .file("latin1.csv", b"id,amount\n1,caf\xe9\n".as_slice())
        .output("csv")
        .set("task.config.required_columns", "id,amount");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 0);
    assert_eq!((r.items.succeeded, r.items.failed), (1, 5));
    let (_, rows) = job.csv_rows();
    assert_eq!(rows, vec![vec!["good.csv".to_string(), "2".to_string(), "2".to_string()]]);
    let msgs: Vec<String> = r.first_errors.iter().map(|e| e.message.clone()).collect();
    assert!(msgs.iter().any(|m| m.contains("empty.csv: empty file")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("header only")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("missing required columns: amount")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("ragged.csv: row 1")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("latin1.csv: row 1") && m.contains("UTF-8")), "{msgs:?}");
}
