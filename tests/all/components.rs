//! The local component registry (`sluice components create|list|show`) and
//! jobs that run a stored component by reference.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::*;

fn sluice(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
        .env("SLUICE_CACHE_DIR", cache_dir())
        .env("SLUICE_DATA_DIR", data)
        .args(args)
        .output()
        .unwrap()
}

fn said(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A component folder: the YAML, its scorer and a model folder input.
fn component(dir: &Path, version: &str) {
    std::fs::create_dir_all(dir.join("model")).unwrap();
    std::fs::copy(FILE_STATS, dir.join("scorer.wasm")).unwrap();
    std::fs::write(dir.join("model/MLmodel"), "flavors: {}\n").unwrap();
    std::fs::write(
        dir.join("component.yml"),
        format!(
            "$schema: https://azuremlschemas.azureedge.net/latest/parallelComponent.schema.json\n\
             type: parallel\nname: file_stats\nversion: {version}\ndisplay_name: File stats\n\
             inputs:\n  data: {{type: uri_folder}}\n  score_model: {{type: uri_folder, path: ./model}}\n\
             outputs:\n  scores: {{type: uri_file}}\n\
             input_data: ${{{{inputs.data}}}}\nmini_batch_size: \"2\"\n\
             task:\n  type: run_function\n  code: ./\n  entry_script: scorer.wasm\n  append_row_to: ${{{{outputs.scores}}}}\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_component_is_stored_by_content_listed_shown_and_its_versions_never_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, data) = (tmp.path().join("src"), tmp.path().join("data"));
    component(&src, "1");
    let yml = src.join("component.yml");
    let yml = yml.to_str().unwrap();

    let o = sluice(&data, &["components", "create", yml]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(said(&o).contains("component file_stats@1: stored"), "{}", said(&o));
    let o = sluice(&data, &["components", "create", yml]);
    assert!(said(&o).contains("file_stats@1: unchanged"), "{}", said(&o));

    // The same version with other bytes is refused, and the stored one stays.
    let mut wasm = std::fs::read(src.join("scorer.wasm")).unwrap();
    wasm.extend_from_slice(&[0, 0, 0]);
    std::fs::write(src.join("scorer.wasm"), &wasm).unwrap();
    let o = sluice(&data, &["components", "create", yml]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("file_stats@1 already exists with different content"), "{}", said(&o));
    let stored = data.join("components/file_stats/1/files/code/scorer.wasm");
    assert_eq!(std::fs::read(&stored).unwrap(), std::fs::read(FILE_STATS).unwrap());

    // A new version is stored; the unchanged model file is one blob for both.
    component(&src, "2");
    std::fs::write(src.join("scorer.wasm"), &wasm).unwrap();
    let o = sluice(&data, &["components", "create", yml]);
    assert!(said(&o).contains("file_stats@2: stored"), "{}", said(&o));
    let blobs = std::fs::read_dir(data.join("components/blobs")).unwrap().count();
    assert_eq!(blobs, 3, "two scorers and one model file");

    let o = sluice(&data, &["components", "list"]);
    let list = said(&o);
    let rows: Vec<&str> = list.lines().filter(|l| l.starts_with("file_stats")).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(rows[0].contains(" 1 ") && rows[1].contains(" 2 "), "oldest first: {list}");

    // NAME is the latest; NAME@VERSION and azureml:NAME:VERSION one version.
    for (reference, version) in [("file_stats", "2"), ("file_stats@1", "1"), ("azureml:file_stats:1", "1")] {
        let o = sluice(&data, &["components", "show", reference]);
        let shown = said(&o);
        assert_eq!(o.status.code(), Some(0), "{shown}");
        assert!(shown.starts_with(&format!("component file_stats@{version}\n")), "{shown}");
        assert!(shown.contains("files/code/scorer.wasm") && shown.contains("files/inputs/score_model/model/MLmodel"));
        assert!(shown.contains("code: files/code/scorer.wasm"), "the stored YAML points into the store: {shown}");
        assert!(!shown.contains("entry_script"), "{shown}");
    }

    let o = sluice(&data, &["components", "show", "nope@1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(said(&o).contains("no component nope@1") && said(&o).contains("sluice components create"), "{}", said(&o));
    let o = sluice(&data, &["components", "show", "file_stats@7"]);
    assert!(said(&o).contains("(versions: 1, 2)"), "{}", said(&o));

    // What a component needs to be stored is named.
    std::fs::write(src.join("bad.yml"), "name: x\ntask: {code: ./scorer.wasm}\n").unwrap();
    let o = sluice(&data, &["components", "create", src.join("bad.yml").to_str().unwrap()]);
    assert!(said(&o).contains("bad.yml: `version`: required"), "{}", said(&o));
    std::fs::write(src.join("bad.yml"), "name: ../up\nversion: 1\ntask: {code: ./scorer.wasm}\n").unwrap();
    let o = sluice(&data, &["components", "create", src.join("bad.yml").to_str().unwrap()]);
    assert!(said(&o).contains("`name`: a component name is 1-255 letters"), "{}", said(&o));
    // An input name is a folder of the stored component: never a path.
    let escape = "name: x\nversion: 1\ntask: {code: ./scorer.wasm}\ninputs:\n  \"../../../../escaped\": {type: uri_file, path: ./scorer.wasm}\n";
    std::fs::write(src.join("bad.yml"), escape).unwrap();
    let o = sluice(&data, &["components", "create", src.join("bad.yml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("a component input name is 1-255 letters"), "{}", said(&o));
    assert!(!tmp.path().join("escaped").exists() && !data.join("escaped").exists());
    std::fs::write(src.join("bad.yml"), "name: blobs\nversion: 1\ntask: {code: ./scorer.wasm}\n").unwrap();
    let o = sluice(&data, &["components", "create", src.join("bad.yml").to_str().unwrap()]);
    assert!(said(&o).contains("`blobs` is the registry's own folder"), "{}", said(&o));
    std::fs::write(src.join("bad.yml"), "name: x\nversion: 1\ntask: {code: ./missing.wasm}\n").unwrap();
    let o = sluice(&data, &["components", "create", src.join("bad.yml").to_str().unwrap()]);
    assert!(said(&o).contains("`task.code`") && said(&o).contains("missing.wasm is not a file"), "{}", said(&o));
}

/// A stored component runs by reference, alone (the input and output from
/// flags) or under a job YAML that binds its ports (`component:` a
/// reference or a file), each giving the scorer's own output.
#[test]
fn a_stored_component_runs_by_reference_alone_or_under_a_job() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, data, input) = (tmp.path().join("src"), tmp.path().join("data"), tmp.path().join("in"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&input).unwrap();
    for (n, t) in [("a.txt", "1\n2\n"), ("b.txt", "x\n"), ("c.txt", "")] {
        std::fs::write(input.join(n), t).unwrap();
    }
    std::fs::copy(FILE_STATS, src.join("scorer.wasm")).unwrap();
    std::fs::write(
        src.join("component.yml"),
        "type: parallel\nname: stats\nversion: 3\ndescription: file stats\n\
         inputs:\n  data: {type: uri_folder, description: the files}\n\
         outputs:\n  scores: {type: uri_file}\n\
         input_data: ${{inputs.data}}\nmini_batch_size: \"2\"\n\
         task:\n  type: run_function\n  code: ./scorer.wasm\n  append_row_to: ${{outputs.scores}}\n",
    )
    .unwrap();
    let o = sluice(&data, &["components", "create", src.join("component.yml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));

    let direct = Job::new(FILE_STATS).file("a.txt", "1\n2\n").file("b.txt", "x\n").file("c.txt", "").output("csv");
    direct.run();
    let want = std::fs::read(direct.out_path("csv")).unwrap();

    let out = tmp.path().join("alone.csv");
    let (i, ou) = (input.to_str().unwrap(), out.to_str().unwrap());
    let job_dir = tmp.path().join("job-alone");
    let o = sluice(
        &data,
        &["run", "azureml:stats:3", "--input", i, "--output", ou, "-q", "--job-dir", job_dir.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(std::fs::read(&out).unwrap(), want);

    for (i, component) in ["azureml:stats@latest", "stats@3", "./src/component.yml"].iter().enumerate() {
        let job = tmp.path().join(format!("job{i}.yml"));
        std::fs::write(
            &job,
            format!(
                "component: {component}\nname: bound-{i}\ninputs:\n  data: {{type: uri_folder, path: ./in}}\n\
                 outputs:\n  scores: {{type: uri_file, path: ./out{i}.csv}}\nretry_settings: {{max_retries: 0}}\n"
            ),
        )
        .unwrap();
        let job_dir = tmp.path().join(format!("job-dir-{i}"));
        let o = sluice(&data, &["run", job.to_str().unwrap(), "-q", "--job-dir", job_dir.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{component}: {}", said(&o));
        assert_eq!(std::fs::read(tmp.path().join(format!("out{i}.csv"))).unwrap(), want, "{component}");
    }
    // Run from the registry, relative paths are the current folder's:
    // nothing is written into the stored version.
    let o = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
        .current_dir(tmp.path())
        .env("SLUICE_CACHE_DIR", cache_dir())
        .env("SLUICE_DATA_DIR", &data)
        .args(["run", "azureml:stats:3", "--set", "inputs.data.path=in", "--set", "outputs.scores.path=rel.csv"])
        .args(["-q", "--job-dir", "job-rel"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(std::fs::read(tmp.path().join("rel.csv")).unwrap(), want);
    let stored: Vec<_> =
        std::fs::read_dir(data.join("components/stats/3")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(stored.len(), 3, "component.yml, manifest.json, files/: {stored:?}");

    // A file beside the job wins over a reference spelled the same; a
    // component's own sample path need not exist when the job binds it.
    std::fs::write(
        tmp.path().join("stats@3.yml"),
        std::fs::read_to_string(src.join("component.yml"))
            .unwrap()
            .replace("./scorer.wasm", "./src/scorer.wasm")
            .replace("{type: uri_folder, description: the files}", "{type: uri_folder, path: ./no-such-sample}"),
    )
    .unwrap();
    let job = tmp.path().join("beside.yml");
    std::fs::write(
        &job,
        "component: stats@3.yml\ninputs:\n  data: ./in\noutputs:\n  scores: {type: uri_file, path: ./beside.csv}\n",
    )
    .unwrap();
    let o = sluice(&data, &["run", job.to_str().unwrap(), "-q", "--job-dir", tmp.path().join("jb").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(std::fs::read(tmp.path().join("beside.csv")).unwrap(), want);

    let o = sluice(&data, &["run", "azureml:stats:9", "--input", i]);
    assert_eq!(o.status.code(), Some(2));
    assert!(said(&o).contains("no component stats@9") && said(&o).contains("(versions: 3)"), "{}", said(&o));
}
