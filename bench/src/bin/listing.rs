//! Shows how long listing and planning a folder takes: `listing DIR` prints five timings.

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: listing DIR");
        std::process::exit(2);
    };
    let spec = sluice_job::spec::InputSpec {
        name: "data".into(),
        kind: sluice_job::spec::InputKind::UriFolder,
        path: std::path::PathBuf::from(dir).into(),
        tabular: false,
    };
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let items = match sluice_io::list_input(&spec) {
            Ok(items) => items,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let listed = t.elapsed();
        let plan = sluice_job::Plan::cut(items, sluice_job::size::MiniBatchSize::Count(100));
        println!("list {listed:?}, plan {:?} ({} mini-batches of 100)", t.elapsed() - listed, plan.mini_batches.len());
    }
}
