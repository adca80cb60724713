//! Input listing and sizing: recursion, byte-sized mini-batches, caps and
//! escaping symlinks.

use crate::helpers::*;

#[test]
fn byte_sized_mini_batches_never_split_a_file() {
    let mut job = Job::new(ECHO);
    for i in 0..6 {
        job = job.file(&format!("f{i}.txt"), vec![b'a'; 600]);
    }
    let job = job.set("mini_batch_size", "1kb");
    let r = job.run();
    assert_eq!(r.mini_batches.total, 6, "600-byte files, 1 KiB mini-batches: one file each");
    let job2 = {
        let mut j = Job::new(ECHO);
        for i in 0..6 {
            j = j.file(&format!("f{i}.txt"), vec![b'a'; 300]);
        }
        j.set("mini_batch_size", "1kb")
    };
    let r = job2.run();
    assert_eq!(r.mini_batches.total, 2, "three 300-byte files fit in 1 KiB");
}

#[test]
fn a_file_over_the_size_cap_is_an_item_error_naming_the_cap() {
    let job = Job::new(ECHO)
        .file("big.bin", vec![0u8; (1 << 20) + 1])
        .file("small.txt", "ok")
        .output("csv")
        .set("limits.max_file_mb", "1")
        .set("mini_batch_size", "10");
    let r = job.run();
    assert_eq!((r.items.failed, r.items.succeeded), (1, 1));
    let e = &r.first_errors[0];
    assert_eq!(e.code.as_str(), "INPUT_ERROR");
    assert_eq!(e.item.as_deref(), Some("big.bin"));
    assert!(e.message.contains("limits.max_file_mb = 1 MiB"), "{}", e.message);
    assert_eq!(job.csv_rows().1.len(), 1);
}

#[test]
fn a_symlink_leaving_the_input_folder_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    let job = Job::new(ECHO).file("a.txt", "a").output("csv");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), job.input().join("link.txt")).unwrap();
    let r = job.run();
    assert_eq!(r.items.failed, 1);
    let e = &r.first_errors[0];
    assert_eq!(e.item.as_deref(), Some("link.txt"));
    assert!(e.message.contains("leaves the input folder"), "{}", e.message);
    let text = std::fs::read_to_string(job.out_path("csv")).unwrap();
    assert!(!text.contains("secret"));
}
