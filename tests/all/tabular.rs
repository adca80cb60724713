//! Tabular input (`type: mltable`): rows read by the host's Arrow readers,
//! row- and byte-sized mini-batches across files, whole files, partitions,
//! and CSV / Parquet / JSON Lines in and out.

use std::collections::HashSet;

use sluice_job::result::JobStatus;

use crate::helpers::*;

fn classifier() -> Job {
    Job::tabular(TABULAR_CLASSIFIER).files_from("examples/tabular/data").model("model", "examples/tabular/model")
}

#[test]
fn classifier_matches_stored_onnxruntime_predictions_with_row_batches_across_files() {
    // 4 files x 250 rows in mini-batches of 300 rows: every mini-batch but
    // the first starts or ends inside a file.
    let job = classifier().set("mini_batch_size", "300 rows").output("csv");
    let r = job.run();
    assert_eq!((r.mini_batches.total, r.mini_batches.failed), (4, 0));
    assert_eq!((r.items.total, r.items.succeeded), (1000, 1000));
    let expected = predictions(&repo("tests/fixtures/tabular/expected.csv"));
    assert_eq!(predictions(&job.out_path("csv")), expected);
    let inputs: Vec<String> = {
        let mut v: Vec<_> = job.records().into_values().map(|r| r["inputs"].clone()).collect();
        v.sort();
        v
    };
    assert_eq!(
        inputs,
        [
            "part-00000.csv..part-00001.csv",
            "part-00001.csv..part-00002.csv",
            "part-00002.csv..part-00003.csv",
            "part-00003.csv"
        ]
    );
}

#[test]
fn byte_sized_and_file_sized_batches_keep_every_row_once_in_order() {
    let expected = predictions(&repo("tests/fixtures/tabular/expected.csv"));
    // ~69 kB per file: 20 kB mini-batches cut every file several times.
    let job = classifier().set("mini_batch_size", "20KB").output("csv");
    let r = job.run();
    assert!(r.mini_batches.total >= 12, "{}", r.mini_batches.total);
    assert_eq!(predictions(&job.out_path("csv")), expected);

    let job = classifier().set("mini_batch_size", "3 files").output("csv");
    let r = job.run();
    assert_eq!(r.mini_batches.total, 2);
    assert_eq!(predictions(&job.out_path("csv")), expected);
}

#[test]
fn rows_that_cannot_be_read_or_scored_are_item_errors() {
    // bad/: 5 good rows; 5 rows of which 2 have an empty feature (scorer
    // item errors); a header only (one host item error); a file with an
    // extra column (its header differs from the job's: 12 row errors).
    let job = Job::tabular(TABULAR_CLASSIFIER)
        .files_from("tests/fixtures/tabular/bad")
        .model("model", "examples/tabular/model")
        .set("mini_batch_size", "4 rows")
        .output("csv");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 0);
    assert_eq!((r.items.succeeded, r.items.failed), (8, 2 + 1 + 12));
    let got: Vec<_> = predictions(&job.out_path("csv")).into_iter().map(|(i, p, q, _)| (i, p, q)).collect();
    let want: Vec<_> = predictions(&repo("tests/fixtures/tabular/expected_bad.csv"))
        .into_iter()
        .map(|(i, p, q, _)| (i, p, q))
        .collect();
    assert_eq!(got, want);
    let msgs: Vec<(String, String)> =
        r.first_errors.iter().map(|e| (e.item.clone().unwrap_or_default(), e.message.clone())).collect();
    assert!(
        msgs.iter().any(|(item, m)| item == "part-00001.csv row 1" && m.contains("empty value in mean_radius")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|(item, m)| item == "part-00001.csv row 3" && m.contains("worst_area")), "{msgs:?}");
    assert!(
        msgs.iter().any(|(item, m)| item == "partitioned.csv row 0" && m.contains("unexpected [region]")),
        "{msgs:?}"
    );
}

#[test]
fn partition_keys_make_one_mini_batch_per_key() {
    let job = Job::tabular(PASSTHROUGH)
        .file("p.csv", std::fs::read(repo("tests/fixtures/tabular/bad/partitioned.csv")).unwrap())
        .set("partition_keys", "[region]")
        .output("csv");
    let r = job.run();
    assert_eq!((r.mini_batches.total, r.items.succeeded), (3, 12));
    let (h, rows) = job.csv_rows();
    let region = h.iter().position(|c| c == "region").unwrap();
    let row_number = h.iter().position(|c| c == "row_number").unwrap();
    let seq: Vec<(&str, &str)> = rows.iter().map(|r| (r[region].as_str(), r[row_number].as_str())).collect();
    // First-appearance order of the keys, rows in file order within each.
    let want: Vec<(&str, String)> = ["north", "south", "east"]
        .iter()
        .flat_map(|k| {
            let start = ["north", "south", "east"].iter().position(|x| x == k).unwrap();
            (start..12).step_by(3).map(move |i| (*k, i.to_string()))
        })
        .collect();
    assert_eq!(seq, want.iter().map(|(k, n)| (*k, n.as_str())).collect::<Vec<_>>());

    let bad = Job::tabular(PASSTHROUGH).file("p.csv", "a,b\n1,2\n").set("partition_keys", "[nope]");
    let e = sluice_runtime::run_job(&bad.spec(), &bad.options()).unwrap_err();
    assert!(e.to_string().contains("partition_keys: column `nope` is not in the input's columns (a, b)"), "{e}");
}

#[test]
fn csv_parquet_and_json_lines_round_trip() {
    // CSV -> Parquet -> JSON Lines -> CSV through sluice's readers and
    // writers, with the passthrough scorer; the values survive, nulls too.
    let first = Job::tabular(PASSTHROUGH)
        .file("a.csv", "id,x,name,flag\n1,0.5,ann,true\n2,,bob,false\n")
        .file("b.csv", "id,x,name,flag\n3,2.25,,true\n")
        .set("mini_batch_size", "2 rows")
        .output("parquet");
    assert_eq!(first.run().items.succeeded, 3);

    let second = Job::tabular(PASSTHROUGH).set("mini_batch_size", "2").output("jsonl");
    std::fs::copy(first.out_path("parquet"), second.input().join("part.parquet")).unwrap();
    assert_eq!(second.run().items.succeeded, 3);

    let third = Job::tabular(PASSTHROUGH).output("csv");
    // The passthrough adds source_file and row_number on every pass: the
    // third input carries the first two passes' columns as data.
    std::fs::copy(second.out_path("jsonl"), third.input().join("part.jsonl")).unwrap();
    assert_eq!(third.run().items.succeeded, 3);
    let (h, rows) = third.csv_rows();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap_or_else(|| panic!("no {name} in {h:?}"));
    let pick =
        |r: &Vec<String>| (r[col("id")].clone(), r[col("x")].clone(), r[col("name")].clone(), r[col("flag")].clone());
    let got: Vec<_> = rows.iter().map(pick).collect();
    let s = |a: &str, b: &str, c: &str, d: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string());
    assert_eq!(got, [s("1", "0.5", "ann", "true"), s("2", "", "bob", "false"), s("3", "2.25", "", "true")]);
    assert_eq!(rows.iter().map(|r| r[col("source_file")].clone()).collect::<HashSet<_>>().len(), 1);
}

#[test]
fn the_classifier_reads_parquet_input() {
    // Demo CSVs -> Parquet (passthrough), then score the Parquet file.
    let to_parquet = Job::tabular(PASSTHROUGH)
        .files_from("examples/tabular/data")
        .set("mini_batch_size", "500 rows")
        .output("parquet");
    to_parquet.run();
    // The passthrough added `row_number` (numeric): name the features.
    let header = std::fs::read_to_string(repo("examples/tabular/data/part-00000.csv")).unwrap();
    let features = header.lines().next().unwrap().split(',').skip(1).collect::<Vec<_>>().join(",");
    let job = Job::tabular(TABULAR_CLASSIFIER)
        .model("model", "examples/tabular/model")
        .set("mini_batch_size", "128 rows")
        .set("task.config.features", &features)
        .output("csv");
    std::fs::copy(to_parquet.out_path("parquet"), job.input().join("all.parquet")).unwrap();
    let r = job.run();
    assert_eq!(r.items.succeeded, 1000);
    let got: Vec<_> = predictions(&job.out_path("csv")).into_iter().map(|(i, p, q, _)| (i, p, q)).collect();
    let want: Vec<_> =
        predictions(&repo("tests/fixtures/tabular/expected.csv")).into_iter().map(|(i, p, q, _)| (i, p, q)).collect();
    assert_eq!(got, want);
}

#[test]
fn bad_input_files_and_rows_become_item_errors_and_the_rest_completes() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.csv"), "id,x,name\n9,9,secret\n").unwrap();
    for size in ["2 rows", "10 files", "64B"] {
        let job = Job::tabular(PASSTHROUGH)
            // The job's columns (id: s64, x: f64, name: string) come from
            // a.csv; e.csv has a cell of the wrong type.
            .file("a.csv", b"id,x,name\n1,0.5,ann\n2,1.5\n3,2.5,\xff\xfe\n4,3.5,eve\n".as_slice())
            .file("b.csv", "")
            .file("c.csv", "id,x,name\n")
            .file("e.csv", "id,x,name\n5,oops,bob\n6,1.0,fay\n")
            .set("mini_batch_size", size)
            .output("csv");
        std::os::unix::fs::symlink(outside.path().join("secret.csv"), job.input().join("d.csv")).unwrap();
        // An unreadable file: a link to nothing.
        std::os::unix::fs::symlink(job.input().join("gone.csv"), job.input().join("f.csv")).unwrap();
        let r = job.run();
        assert_eq!(r.mini_batches.failed, 0, "{size}: {:?}", r.first_errors);
        let (h, rows) = job.csv_rows();
        let id = h.iter().position(|c| c == "id").unwrap();
        assert_eq!(rows.iter().map(|r| r[id].as_str()).collect::<Vec<_>>(), ["1", "4", "6"], "{size}");
        let errs: Vec<(String, String)> =
            r.first_errors.iter().map(|e| (e.item.clone().unwrap_or_default(), e.message.clone())).collect();
        let has = |item: &str, words: &str| {
            assert!(
                errs.iter().any(|(i, m)| i == item && m.contains(words)),
                "{size}: no `{words}` for {item} in {errs:?}"
            );
        };
        has("a.csv row 1", "cannot parse");
        has("a.csv row 2", "UTF-8");
        has("e.csv row 0", "cannot parse");
        has("b.csv", "empty file");
        has("c.csv", "no rows: the file holds only a header");
        has("d.csv", "symlink leaves the input folder");
        has("f.csv", "broken symlink");
        assert_eq!((r.items.succeeded, r.items.failed), (3, 7), "{size}");
    }
}

#[test]
fn a_file_deleted_or_changed_mid_job_is_an_item_error() {
    // The first mini-batch sleeps into its timeout; meanwhile the test
    // deletes one file and rewrites another that later mini-batches read.
    let job = Job::new(ADVERSARY)
        .file("sleep.txt", "x")
        .file("y.txt", "y")
        .file("z.txt", "z")
        .set("mini_batch_size", "1")
        .set("max_concurrency_per_instance", "1")
        .set("retry_settings.timeout", "2")
        .set("retry_settings.max_retries", "0");
    let spec = job.spec();
    let dir = job.job_dir();
    let input = job.input();
    let meddler = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        while !dir.join("progress.json").exists() && t.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::remove_file(input.join("z.txt")).unwrap();
        std::fs::write(input.join("y.txt"), "longer now").unwrap();
    });
    let opts = job.options();
    let r = sluice_runtime::run_job(&spec, &opts).unwrap();
    meddler.join().unwrap();
    let errs: Vec<(String, String)> =
        r.first_errors.iter().map(|e| (e.item.clone().unwrap_or_default(), e.message.clone())).collect();
    assert!(errs.iter().any(|(i, m)| i == "y.txt" && m.contains("changed after the job was planned")), "{errs:?}");
    assert!(errs.iter().any(|(i, m)| i == "z.txt" && m.contains("deleted after the job was planned")), "{errs:?}");
    assert_eq!(r.mini_batches.failed, 1, "only the sleeper failed (TIMEOUT)");
}

#[test]
fn ndjson_files_and_a_single_file_are_tabular_inputs() {
    // `.ndjson` is read as JSON Lines, beside a `.jsonl` file.
    let job = Job::tabular(PASSTHROUGH)
        .file("a.ndjson", "{\"id\": 1, \"name\": \"ann\"}\n{\"id\": 2, \"name\": null}\n")
        .file("b.jsonl", "{\"id\": 3, \"name\": \"cy\"}\n")
        .output("csv");
    let r = job.run();
    assert_eq!((r.items.succeeded, r.items.failed), (3, 0), "{:?}", r.first_errors);
    let (h, rows) = job.csv_rows();
    let (id, name, src) = (0, 1, h.iter().position(|c| c == "source_file").unwrap());
    let got: Vec<(&str, &str, &str)> = rows.iter().map(|r| (&*r[id], &*r[name], &*r[src])).collect();
    assert_eq!(h[..2], ["id", "name"]);
    assert_eq!(got, [("1", "ann", "a.ndjson"), ("2", "", "a.ndjson"), ("3", "cy", "b.jsonl")]);

    // One file as the input: only its rows, whatever sits beside it.
    for (file, content) in [
        ("one.csv", "id,name\n1,ann\n2,bob\n"),
        ("one.ndjson", "{\"id\":1,\"name\":\"ann\"}\n{\"id\":2,\"name\":\"bob\"}\n"),
    ] {
        let job = Job::tabular(PASSTHROUGH).file(file, content).file("other.csv", "id,name\n9,zed\n").output("csv");
        let path = job.input().join(file).display().to_string();
        let job = job.set("inputs.data.path", &path);
        let r = job.run();
        assert_eq!((r.items.succeeded, r.items.failed), (2, 0), "{file}: {:?}", r.first_errors);
        let (_, rows) = job.csv_rows();
        let got: Vec<(&str, &str)> = rows.iter().map(|r| (&*r[0], &*r[1])).collect();
        assert_eq!(got, [("1", "ann"), ("2", "bob")], "{file}");
    }
}

#[test]
fn parquet_output_reads_back_with_the_parquet_record_reader() {
    // sluice writes Parquet through arrow's ArrowWriter and reads it
    // through arrow's reader; this reads it through the parquet crate's
    // record API (its own column readers and schema, no arrow), the way a
    // non-arrow consumer would. (pyarrow would be more independent still,
    // but the test suite does not need Python.)
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let job = Job::tabular(PASSTHROUGH)
        .file("a.csv", "id,x,name,flag\n1,0.5,ann,true\n2,,bob,false\n")
        .file("b.csv", "id,x,name,flag\n3,2.25,,true\n")
        .set("mini_batch_size", "2 rows")
        .output("parquet");
    assert_eq!(job.run().items.succeeded, 3);

    let reader = SerializedFileReader::new(std::fs::File::open(job.out_path("parquet")).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["id", "x", "name", "flag", "source_file", "row_number"]);
    let rows: Vec<Vec<Field>> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap().get_column_iter().map(|(_, f)| f.clone()).collect())
        .collect();
    let s = |v: &str| Field::Str(v.to_string());
    assert_eq!(
        rows,
        [
            vec![Field::Long(1), Field::Double(0.5), s("ann"), Field::Bool(true), s("a.csv"), Field::Long(0)],
            vec![Field::Long(2), Field::Null, s("bob"), Field::Bool(false), s("a.csv"), Field::Long(1)],
            vec![Field::Long(3), Field::Double(2.25), Field::Null, Field::Bool(true), s("b.csv"), Field::Long(0)],
        ]
    );
}

/// `batch.add-result-column` (sluice:scorer 0.1.2): columns the host builds
/// from the mini-batch it holds give the same output bytes as the guest
/// building them itself, nulls and types included, across files and
/// mini-batch boundaries.
#[test]
fn host_added_result_columns_give_the_guests_own_output() {
    let csv = "id,name,score\n1,a,0.5\n2,,1.5\n3,c,\n4,d,4.25\n";
    let run = |host: Option<&str>| {
        let mut job = Job::tabular(PASSTHROUGH)
            .file("a.csv", csv)
            .file("sub/b.csv", "id,name,score\n5,e,5.5\n6,f,6.5\n")
            .set("mini_batch_size", "4")
            .output("csv");
        if let Some(h) = host {
            job = job.set("task.config.host_columns", h);
        }
        let r = job.run();
        assert_eq!(r.status, JobStatus::Completed, "{host:?}: {:?} {:?}", r.reason, r.first_errors);
        std::fs::read(job.out_path("csv")).unwrap()
    };
    let (guest, host) = (run(None), run(Some("yes")));
    assert!(String::from_utf8_lossy(&guest).contains("sub/b.csv"), "{}", String::from_utf8_lossy(&guest));
    assert!(guest == host, "{}\n---\n{}", String::from_utf8_lossy(&guest), String::from_utf8_lossy(&host));
}

/// A mini-batch column picked by a row selection keeps its values and
/// nulls for those rows; a result that fails every item (no rows) drops
/// the columns it had added instead of failing the mini-batch.
#[test]
fn host_added_columns_follow_a_selection_and_go_with_a_result_without_rows() {
    let csv = "id,name,score\n1,a,0.5\n2,,1.5\n3,c,\n4,d,4.25\n5,e,5\n";
    let job = Job::tabular(PASSTHROUGH)
        .file("a.csv", csv)
        .set("task.config.host_columns", "pick")
        .set("mini_batch_size", "10")
        .output("csv");
    let r = job.run();
    assert_eq!(r.status, JobStatus::CompletedWithErrors, "{:?} {:?}", r.reason, r.first_errors);
    assert_eq!((r.items.succeeded, r.items.failed), (3, 2));
    let out = std::fs::read_to_string(job.out_path("csv")).unwrap();
    assert_eq!(out, "id,name,score,row_number\n1,a,0.5,0\n3,c,,2\n5,e,5.0,4\n");

    let job = Job::tabular(PASSTHROUGH)
        .file("a.csv", csv)
        .set("task.config.host_columns", "drop")
        .set("retry_settings.max_retries", "0")
        .output("csv");
    let r = job.run();
    assert_eq!((r.mini_batches.failed, r.items.failed), (0, 5), "{:?}", r.first_errors);
}

/// Each bad call is refused with its reason and leaves the result alone;
/// a result may have at most 64 added columns; an added column shorter
/// than the result fails the mini-batch as `INVALID_OUTPUT`.
#[test]
fn host_added_result_columns_are_bounded_and_checked() {
    let job = Job::tabular(PASSTHROUGH)
        .file("a.csv", "id\n1\n2\n3\n")
        .set("task.config.host_columns", "probe")
        .set("max_concurrency_per_instance", "1")
        .output("csv");
    let r = job.run();
    assert_eq!(r.status, JobStatus::Completed, "{:?} {:?}", r.reason, r.first_errors);
    let logs = log_text(&job);
    for want in [
        "probe a: ErrorCode::UnknownName: no column `no_such` in this mini-batch",
        "probe b: ErrorCode::InvalidInput: row 3 is out of range: the mini-batch has 3 rows",
        "probe c: ok",
        "probe again: ErrorCode::InvalidInput: result column `c` is empty or already added",
        "probe full after 64: ErrorCode::TooLarge: a result may have at most 64 added columns",
    ] {
        assert!(logs.contains(want), "`{want}` in:\n{logs}");
    }
    let (header, rows) = job.csv_rows();
    assert_eq!(header.len(), 64, "c and x1..x63: {header:?}");
    assert_eq!(rows.len(), 3);

    let job = Job::tabular(PASSTHROUGH)
        .file("a.csv", "id\n1\n2\n3\n")
        .set("task.config.host_columns", "short")
        .set("retry_settings.max_retries", "0")
        .output("csv");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 1);
    let records = job.records();
    let rec = records.values().next().unwrap();
    let said = format!("{rec:?}");
    assert!(said.contains("INVALID_OUTPUT") && said.contains("`s` has 1 values but the table has 3 rows"), "{said}");
}
