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
fn the_guest_sees_no_environment() {
    // The test process has environment variables (cargo sets many).
    assert!(std::env::vars().count() > 0);
    let job = Job::new(ADVERSARY)
        .file("env.txt", "")
        .output("csv")
        .set("retry_settings.max_retries", "0")
        .set("environment_variables.REGION", "eu");
    job.run();
    assert_eq!(job.records()["env.txt"]["status"], "succeeded");
    assert_eq!(job.csv_rows().1, vec![vec!["0".to_string()]], "no environment variable reaches WASI");
}

#[test]
fn the_guest_cannot_reach_a_listening_loopback_port() {
    // A port that is really listening: "connection refused" cannot pass
    // for the sandbox. The test itself connects first, so the listener is
    // known to work.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    listener.accept().unwrap();
    listener.set_nonblocking(true).unwrap();

    let job = Job::new(FLAKY).file(&format!("net-{port}.txt"), "").set("retry_settings.max_retries", "0");
    job.run();
    let rec = &job.records()[&format!("net-{port}.txt")];
    assert_eq!(rec["reason"], "USER_ERROR", "the guest's connect did not fail: {rec:?}");
    let m = &rec["message"];
    assert!(m.contains(&format!("cannot connect to 127.0.0.1:{port}")), "{m}");
    assert!(!m.contains("ConnectionRefused"), "the guest reached the port and was refused, not sandboxed: {m}");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a connection reached the listener from the guest: {other:?}"),
    }
}
