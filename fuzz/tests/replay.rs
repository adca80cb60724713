//! Replays every saved input of `fuzz/corpus/TARGET/` through its target: what the fuzzer once found (and the seeds) must keep passing.
//!
//! Each input gets five times its target's budget: the test build is
//! unoptimised for our own crates and shares the machine with other tests.
//! A corpus file named `known-*` reproduces a defect that is being fixed
//! elsewhere; it fails here until that fix is merged (see fuzz/README.md).

use sluice_fuzz::{corpus, run_one, targets};

#[test]
fn every_corpus_input_passes_its_target() {
    let mut failures = Vec::new();
    let mut total = 0;
    for t in targets() {
        let files = corpus(t.name);
        assert!(files.len() >= 3, "fuzz/corpus/{} holds {} inputs; seed it", t.name, files.len());
        for f in files {
            total += 1;
            let data = std::fs::read(&f).unwrap();
            if let Err(e) = run_one(&t, &data, t.budget * 5) {
                let e = e.to_string();
                failures.push(format!("{}: {}", f.display(), e.lines().next().unwrap_or("")));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {total} corpus inputs fail:\n{}", failures.len(), failures.join("\n"));
}
