//! What a guest can reach: only what the job grants, read-only.

use crate::helpers::*;

#[test]
fn a_granted_folder_is_readable_but_not_writable() {
    let grant = tempfile::tempdir().unwrap();
    std::fs::write(grant.path().join("hello.txt"), "granted hello\n").unwrap();
    let job = Job::new(ADVERSARY)
        .file("readgrant.txt", "")
        .file("writegrant.txt", "")
        .output("csv")
        .set("mini_batch_size", "1")
        .set("retry_settings.max_retries", "0")
        .set("task.mounts./grant", &grant.path().display().to_string());
    job.run();
    let records = job.records();
    assert_eq!(records["readgrant.txt"]["status"], "succeeded");
    assert_eq!(records["writegrant.txt"]["reason"], "USER_ERROR");
    assert!(records["writegrant.txt"]["message"].contains("cannot write /grant/hello.txt"));
    assert_eq!(std::fs::read_to_string(grant.path().join("hello.txt")).unwrap(), "granted hello\n");
    assert_eq!(job.csv_rows().1, vec![vec!["granted hello".to_string()]]);
}

#[test]
fn without_a_grant_no_file_is_visible() {
    let job = Job::new(ADVERSARY).file("readgrant.txt", "").set("retry_settings.max_retries", "0");
    job.run();
    assert_eq!(job.records()["readgrant.txt"]["reason"], "USER_ERROR");
}

#[test]
fn the_guest_sees_no_environment_and_no_network() {
    // The test process has environment variables (cargo sets many).
    assert!(std::env::vars().count() > 0);
    let job = Job::new(ADVERSARY)
        .file("env.txt", "")
        .file("net.txt", "")
        .output("csv")
        .set("mini_batch_size", "1")
        .set("retry_settings.max_retries", "0")
        .set("environment_variables.REGION", "eu");
    job.run();
    let records = job.records();
    assert_eq!(records["env.txt"]["status"], "succeeded");
    assert_eq!(job.csv_rows().1, vec![vec!["0".to_string()]], "no environment variable reaches WASI");
    assert_eq!(records["net.txt"]["reason"], "USER_ERROR");
    assert!(records["net.txt"]["message"].contains("cannot connect"), "{}", records["net.txt"]["message"]);
}
