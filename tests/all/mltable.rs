//! `mltable` folders with an `MLTable` file, read the way Azure reads them:
//! one test per MLTable feature, each a real job through the passthrough
//! scorer (which returns every column it gets, plus `source_file` and
//! `row_number`), its output checked byte for byte.

use sluice_job::result::JobStatus;

use crate::helpers::*;

/// A tabular job over an input folder holding `MLTable` (the given text).
fn mltable(text: &str) -> Job {
    Job::tabular(PASSTHROUGH).file("MLTable", text).output("csv")
}

/// The job's CSV output, as text.
fn out(job: &Job) -> String {
    std::fs::read_to_string(job.out_path("csv")).unwrap()
}

/// The error that stops the job before it runs.
fn plan_error(job: &Job) -> String {
    sluice_runtime::run_job(&job.spec(), &job.options()).unwrap_err().to_string()
}

#[test]
fn paths_pick_files_folders_and_patterns_relative_to_the_mltable_file() {
    let job = mltable(
        "$schema: https://azuremlschemas.azureedge.net/latest/MLTable.schema.json\ntype: mltable\npaths:\n  \
         - file: ./b.csv\n  - pattern: ./parts/*.csv\n  - folder: ./more\n  - file: more/x.csv\n\
         transformations:\n  - read_delimited:\n      delimiter: ','\n      header: all_files_same_headers\n",
    )
    .file("a.csv", "id,v\n0,skipped\n")
    .file("b.csv", "id,v\n1,b\n")
    .file("notes.txt", "not a table\n")
    .file("parts/p1.csv", "id,v\n2,p1\n")
    .file("parts/p2.txt", "id,v\n9,not matched\n")
    .file("parts/deep/p3.csv", "id,v\n9,not matched\n")
    .file("more/x.csv", "id,v\n3,x\n")
    .file("more/y/z.csv", "id,v\n4,z\n")
    .set("mini_batch_size", "2 rows");
    let r = job.run();
    assert_eq!((r.status, r.items.total, r.items.succeeded), (JobStatus::Completed, 4, 4));
    assert_eq!(
        out(&job),
        // The listing's order (folder by folder, names sorted), each file once.
        "id,v,source_file,row_number\n1,b,b.csv,0\n3,x,more/x.csv,0\n4,z,more/y/z.csv,0\n2,p1,parts/p1.csv,0\n"
    );
}

#[test]
fn the_mltable_file_is_no_longer_a_data_file_and_a_plain_folder_is_unchanged() {
    // Azure's usual layout: the MLTable next to the data, a pattern over it.
    let job =
        mltable("paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited\n").file("a.csv", "id,v\n1,x\n");
    assert_eq!(job.run().items.failed, 0);
    assert_eq!(out(&job), "id,v,source_file,row_number\n1,x,a.csv,0\n");
    // `MLTable` below the root is just a file (and not a table).
    let plain = Job::tabular(PASSTHROUGH).file("a.csv", "id,v\n1,x\n").file("sub/MLTable", "paths: []\n").output("csv");
    let r = plain.run();
    assert_eq!((r.items.succeeded, r.items.failed), (1, 1));
    assert!(r.first_errors[0].message.contains("sub/MLTable: not a table"), "{:?}", r.first_errors);
}

#[test]
fn read_delimited_takes_a_delimiter_and_no_header_names_columns_like_azure() {
    let job = mltable(
        "paths:\n  - pattern: ./*.txt\ntransformations:\n  - read_delimited:\n      delimiter: ';'\n      \
         header: no_header\n",
    )
    .file("a.txt", "1;x;0.5\n2;y;1.5\n")
    .file("b.txt", "3;z;2.5\n");
    assert_eq!(job.run().items.succeeded, 3);
    assert_eq!(
        out(&job),
        "Column1,Column2,Column3,source_file,row_number\n1,x,0.5,a.txt,0\n2,y,1.5,a.txt,1\n3,z,2.5,b.txt,0\n"
    );
}

#[test]
fn header_from_first_file_reads_every_line_of_the_other_files_as_data() {
    let job =
        mltable("paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited:\n      header: from_first_file\n")
            .file("a.csv", "id,name\n1,ann\n")
            .file("b.csv", "2,bob\n3,cy\n")
            .set("mini_batch_size", "2 rows");
    assert_eq!(job.run().items.succeeded, 3);
    assert_eq!(out(&job), "id,name,source_file,row_number\n1,ann,a.csv,0\n2,bob,b.csv,0\n3,cy,b.csv,1\n");
}

#[test]
fn header_all_files_same_headers_skips_every_first_line_unchecked() {
    let job = mltable(
        "paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited:\n      header: all_files_same_headers\n",
    )
    .file("a.csv", "id,name\n1,ann\n")
    // Another header, by position the same columns: skipped, not checked.
    .file("b.csv", "ID,Name\n2,bob\n");
    assert_eq!(job.run().items.succeeded, 2);
    assert_eq!(out(&job), "id,name,source_file,row_number\n1,ann,a.csv,0\n2,bob,b.csv,0\n");
}

#[test]
fn header_all_files_different_headers_unites_columns_by_name() {
    let job = mltable(
        "paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited:\n      \
         header: all_files_different_headers\n",
    )
    .file("a.csv", "id,name\n1,ann\n")
    .file("b.csv", "score,id\n0.5,2\n")
    .set("mini_batch_size", "1 files");
    assert_eq!(job.run().items.succeeded, 2);
    assert_eq!(out(&job), "id,name,score,source_file,row_number\n1,ann,,a.csv,0\n2,,0.5,b.csv,0\n");
}

#[test]
fn encoding_utf8bom_skips_the_byte_order_mark_and_other_encodings_are_refused() {
    let job = mltable("paths:\n  - file: a.csv\ntransformations:\n  - read_delimited:\n      encoding: utf8bom\n")
        .file("a.csv", b"\xEF\xBB\xBFid,name\n1,\xC3\xA9mile\n".as_slice());
    assert_eq!(job.run().items.succeeded, 1);
    assert_eq!(out(&job), "id,name,source_file,row_number\n1,\u{e9}mile,a.csv,0\n");

    let job = mltable("paths:\n  - file: a.csv\ntransformations:\n  - read_delimited:\n      encoding: latin1\n")
        .file("a.csv", "id\n1\n");
    let e = plan_error(&job);
    assert!(
        e.ends_with(
            "MLTable: `transformations[0].read_delimited.encoding`: the encoding `latin1` is not supported; sluice \
             reads utf8, utf8bom and ascii: convert the files to UTF-8"
        ),
        "{e}"
    );
}

#[test]
fn empty_as_string_keeps_empty_text_cells_as_empty_strings() {
    let data = "id,name,note\n1,,x\n2,bob,\n";
    let text = |empty: bool| {
        format!("paths:\n  - file: a.csv\ntransformations:\n  - read_delimited:\n      empty_as_string: {empty}\n")
    };
    let lines = |empty: bool| {
        let job = Job::tabular(PASSTHROUGH).file("MLTable", text(empty)).file("a.csv", data).output("jsonl");
        assert_eq!(job.run().items.succeeded, 2);
        std::fs::read_to_string(job.out_path("jsonl")).unwrap()
    };
    assert_eq!(
        lines(true),
        "{\"id\":1,\"name\":\"\",\"note\":\"x\",\"source_file\":\"a.csv\",\"row_number\":0}\n\
         {\"id\":2,\"name\":\"bob\",\"note\":\"\",\"source_file\":\"a.csv\",\"row_number\":1}\n"
    );
    // Nulls: JSON Lines output leaves their keys out.
    assert_eq!(
        lines(false),
        "{\"id\":1,\"note\":\"x\",\"source_file\":\"a.csv\",\"row_number\":0}\n\
         {\"id\":2,\"name\":\"bob\",\"source_file\":\"a.csv\",\"row_number\":1}\n"
    );
}

#[test]
fn include_path_column_adds_each_rows_file_as_path() {
    let job =
        mltable("paths:\n  - folder: ./data\ntransformations:\n  - read_delimited:\n      include_path_column: true\n")
            .file("data/a.csv", "id\n1\n2\n")
            .file("data/b/c.csv", "id\n3\n")
            .set("mini_batch_size", "2 rows");
    assert_eq!(job.run().items.succeeded, 3);
    assert_eq!(
        out(&job),
        "id,Path,source_file,row_number\n1,data/a.csv,data/a.csv,0\n2,data/a.csv,data/a.csv,1\n\
         3,data/b/c.csv,data/b/c.csv,0\n"
    );
    // `path_column` names it otherwise.
    let job = mltable(
        "paths:\n  - file: a.csv\ntransformations:\n  - read_delimited: {include_path_column: true, path_column: \
         origin}\n",
    )
    .file("a.csv", "id\n1\n");
    job.run();
    assert_eq!(out(&job), "id,origin,source_file,row_number\n1,a.csv,a.csv,0\n");
}

#[test]
fn support_multi_line_keeps_quoted_line_breaks_inside_a_record() {
    let data = "id,text\n1,\"two\nlines\"\n2,one\n";
    let job = mltable("paths:\n  - file: a.csv\ntransformations:\n  - read_delimited: {support_multi_line: true}\n")
        .file("a.csv", data)
        .set("mini_batch_size", "1 rows");
    let r = job.run();
    assert_eq!((r.items.total, r.items.succeeded), (2, 2));
    assert_eq!(out(&job), "id,text,source_file,row_number\n1,\"two\nlines\",a.csv,0\n2,one,a.csv,1\n");
    // Azure's default (false): every line break ends a record, so the
    // quoted one makes two records of one.
    let job = mltable("paths:\n  - file: a.csv\ntransformations:\n  - read_delimited\n")
        .file("a.csv", data)
        .set("mini_batch_size", "1 rows");
    assert_eq!(job.run().items.total, 3);
}

#[test]
fn read_parquet_reads_files_whatever_their_names_with_the_path_column() {
    let (bytes, groups) = ids_parquet(0..10, 4);
    assert_eq!(groups, 3);
    let job = mltable(
        "paths:\n  - pattern: ./*.bin\ntransformations:\n  - read_parquet:\n      include_path_column: true\n  \
         - take: 6\n",
    )
    .file("part-a.bin", &bytes)
    .file("part-b.bin", &bytes)
    .set("mini_batch_size", "4 rows");
    assert_eq!(job.run().items.succeeded, 6);
    assert_eq!(
        out(&job),
        "id,Path,source_file,row_number\n0,part-a.bin,part-a.bin,0\n1,part-a.bin,part-a.bin,1\n\
         2,part-a.bin,part-a.bin,2\n3,part-a.bin,part-a.bin,3\n4,part-a.bin,part-a.bin,4\n5,part-a.bin,part-a.bin,5\n"
    );
}

#[test]
fn read_json_lines_reads_json_files_as_lines() {
    let job = mltable(
        "paths:\n  - file: ./events.json\ntransformations:\n  - read_json_lines:\n      encoding: utf8\n      \
         invalid_lines: error\n      include_path_column: true\n",
    )
    .file("events.json", "{\"id\":1,\"kind\":\"a\"}\n{\"id\":2,\"kind\":\"b\"}\n");
    assert_eq!(job.run().items.succeeded, 2);
    assert_eq!(
        out(&job),
        "id,kind,Path,source_file,row_number\n1,a,events.json,events.json,0\n2,b,events.json,events.json,1\n"
    );
}

#[test]
fn keep_columns_and_drop_columns_shape_what_the_scorer_sees() {
    let job = mltable(
        "paths:\n  - file: a.csv\ntransformations:\n  - read_delimited: {include_path_column: true}\n  \
         - drop_columns: [b]\n  - keep_columns: [d, Path, a]\n",
    )
    // `b` is dropped: its bad cell fails nothing.
    .file("a.csv", "a,b,c,d\n1,2,3,4\n5,oops,7,8\n");
    let r = job.run();
    assert_eq!((r.items.succeeded, r.items.failed), (2, 0));
    // keep_columns keeps the table's order.
    assert_eq!(out(&job), "a,d,Path,source_file,row_number\n1,4,a.csv,a.csv,0\n5,8,a.csv,a.csv,1\n");

    let job =
        mltable("paths:\n  - file: a.csv\ntransformations:\n  - keep_columns: [a, nope]\n").file("a.csv", "a,b\n1,2\n");
    assert!(
        plan_error(&job).ends_with("MLTable: `transformations[0].keep_columns`: no column `nope` (the table has a, b)"),
        "{}",
        plan_error(&job)
    );
}

#[test]
fn convert_column_types_maps_azures_types_and_bad_cells_fail_their_rows() {
    let job = Job::tabular(PASSTHROUGH)
        .file(
            "MLTable",
            "paths:\n  - file: a.csv\ntransformations:\n  - read_delimited\n  - convert_column_types:\n      \
             - columns: [n]\n        column_type: int\n      - columns: x\n        column_type: float\n      \
             - columns: zip\n        column_type: string\n      - columns: ok\n        column_type:\n          \
             boolean:\n            true_values: ['yes']\n            false_values: ['no']\n            \
             mismatch_as: error\n      - columns: day\n        column_type:\n          datetime:\n            \
             formats: ['%d/%m/%Y']\n",
        )
        .file(
            "a.csv",
            "n,x,zip,ok,day\n1,2,00501,yes,31/01/2024\n2,,01234,no,01/02/2024\n3,0.5,99999,maybe,02/02/2024\n\
             4,1,00001,no,2024-02-03\n",
        )
        .output("jsonl");
    let r = job.run();
    assert_eq!((r.items.succeeded, r.items.failed), (2, 2));
    assert_eq!(
        std::fs::read_to_string(job.out_path("jsonl")).unwrap(),
        "{\"n\":1,\"x\":2.0,\"zip\":\"00501\",\"ok\":true,\"day\":\"2024-01-31T00:00:00\",\"source_file\":\"a.csv\",\
         \"row_number\":0}\n{\"n\":2,\"zip\":\"01234\",\"ok\":false,\"day\":\"2024-02-01T00:00:00\",\
         \"source_file\":\"a.csv\",\"row_number\":1}\n"
    );
    let mut errors: Vec<(String, String)> =
        r.first_errors.iter().map(|e| (e.item.clone().unwrap_or_default(), e.message.clone())).collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            (
                "a.csv row 2".to_string(),
                "a.csv: cannot parse: column `ok`: `maybe` is not a boolean (true_values / false_values)".to_string()
            ),
            (
                "a.csv row 3".to_string(),
                "a.csv: cannot parse: column `day`: `2024-02-03` is not a datetime in the formats %d/%m/%Y".to_string()
            ),
        ]
    );
}

#[test]
fn take_limits_the_rows_of_the_whole_table_and_resumes_to_the_same_plan() {
    for size in ["2 rows", "1 files", "20B"] {
        let job = mltable("paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited\n  - take: 3\n")
            .file("a.csv", "id\n1\n2\n")
            .file("b.csv", "id\n3\n4\n")
            .file("c.csv", "id\n5\n")
            .set("mini_batch_size", size);
        let r = job.run();
        assert_eq!((r.items.total, r.items.succeeded), (3, 3), "{size}");
        assert_eq!(out(&job), "id,source_file,row_number\n1,a.csv,0\n2,a.csv,1\n3,b.csv,0\n", "{size}");
        // The same MLTable gives the same mini-batches: all resumed.
        let again = job.run();
        assert_eq!(again.mini_batches.resumed, r.mini_batches.total, "{size}");
        assert_eq!(out(&job), "id,source_file,row_number\n1,a.csv,0\n2,a.csv,1\n3,b.csv,0\n", "{size}");
    }
    // With partition keys: the first 3 rows, grouped.
    let job = mltable("paths:\n  - file: a.csv\ntransformations:\n  - take: 3\n")
        .file("a.csv", "k,id\nx,1\ny,2\nx,3\ny,4\n")
        .set("partition_keys", "[k]");
    let r = job.run();
    assert_eq!((r.mini_batches.total, r.items.total), (2, 3));
    assert_eq!(out(&job), "k,id,source_file,row_number\nx,1,a.csv,0\nx,3,a.csv,2\ny,2,a.csv,1\n");
}

#[test]
fn a_changed_mltable_under_the_same_job_directory_is_refused() {
    let job = mltable("paths:\n  - file: a.csv\n").file("a.csv", "id\n1\n2\n");
    job.run();
    std::fs::write(job.input().join("MLTable"), "paths:\n  - file: a.csv\ntransformations:\n  - take: 1\n").unwrap();
    let e = plan_error(&job);
    assert!(e.contains("input.MLTable changed"), "{e}");
}

#[test]
fn an_unsupported_transformation_is_an_error_naming_it_the_file_and_the_key() {
    let job = mltable("paths:\n  - file: a.csv\ntransformations:\n  - read_delimited\n  - filter: 'col(\"id\") > 1'\n")
        .file("a.csv", "id\n1\n");
    let e = plan_error(&job);
    assert!(
        e.ends_with(
            "MLTable: `transformations[1].filter`: the transformation `filter` is not supported; supported \
             transformations: read_delimited, read_parquet, read_json_lines, keep_columns, drop_columns, \
             convert_column_types, take"
        ),
        "{e}"
    );
    // And a path that is not there, before anything runs.
    let job = mltable("paths:\n  - file: ./missing.csv\n").file("a.csv", "id\n1\n");
    assert!(plan_error(&job).ends_with("MLTable: `paths[0].file`: `missing.csv`: no such file in the input folder"));
}
