//! Shows that the host survives any sequence of import calls: each tabular mini-batch takes a seed (`task.config` `seed` plus the `seed` column of its first row) and makes a pseudo-random sequence of `onnx`, `batch` and `log` calls with arbitrary arguments, then returns a valid, invalid or failed result, or panics.
//!
//! The calls use the raw WIT bindings, not the SDK's builders, so every
//! argument the interface allows can be sent: unknown model, input, output
//! and column names, shapes and value counts that disagree, duplicate
//! inputs (now and then a flood of hundreds of 4 MiB ones), empty and
//! out-of-range row lists, many handles, long non-ASCII and
//! control-character text. The host must answer each with a value or a
//! typed error; the test (tests/all/import_fuzz.rs) checks what the job
//! reports. Sizes are bounded here (see `MAX_*`) so the guest stays inside
//! its memory cap: what is tested is the host, not the guest's allocator.

use sluice_sdk::bindings::sluice::scorer::batch;
use sluice_sdk::bindings::sluice::scorer::log::{self, Level};
use sluice_sdk::bindings::sluice::scorer::onnx::{
    self, ColumnSource, ElementType, Input, Model, ModelInfo, OutputColumn, OutputSelect, RunRequest, Tensor,
    TensorData, TensorSource,
};
use sluice_sdk::{BatchResult, Column, ColumnData, Config, Error, ItemError, MiniBatch, Scorer, Table, export_scorer};

/// Most operations in one mini-batch.
const MAX_OPS: u64 = 48;
/// Most model handles held at once.
const MAX_HANDLES: usize = 96;
/// Most values in a guest-computed tensor (4 MiB of f64).
const MAX_VALUES: u64 = 512 * 1024;
/// Most entries in a column source's row list.
const MAX_ROW_LIST: u64 = 64 * 1024;

/// splitmix64: small, seedable, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() { None } else { Some(&v[self.below(v.len() as u64) as usize]) }
    }
}

/// Text of every kind the interface allows: empty, short, or several KiB of
/// a mix of ASCII, control characters and multi-byte characters (so a
/// byte-count cut lands inside a character about two times in three).
fn text(rng: &mut Rng) -> String {
    const POOL: &[char] = &[
        'a', 'Z', '0', ' ', ',', '"', '\n', '\r', '\t', '\0', '\x1b', '\x7f', 'é', '€', '𝄞', '\u{200b}', '\u{202e}',
        '\u{feff}', '中',
    ];
    let len = match rng.below(10) {
        0 => 0,
        1..=6 => rng.below(40),
        _ => 3000 + rng.below(9000),
    };
    (0..len).map(|_| *rng.pick(POOL).unwrap()).collect()
}

/// A name: usually one the host knows (`known`), else arbitrary text.
fn name(rng: &mut Rng, known: &[String]) -> String {
    match rng.pick(known) {
        Some(k) if rng.chance(75) => k.clone(),
        _ => text(rng),
    }
}

fn level(rng: &mut Rng) -> Level {
    [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error][rng.below(5) as usize]
}

fn tensor(rng: &mut Rng, rows: u64) -> Tensor {
    let rank = rng.below(4);
    let mut shape: Vec<u64> = (0..rank)
        .map(|_| match rng.below(6) {
            0 => 0,
            1 => rows,
            2 => 30,
            3 => u64::MAX - rng.below(3),
            _ => rng.below(64),
        })
        .collect();
    if rng.chance(30) {
        shape = vec![rows.max(1), 30];
    }
    let product = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let n = match product {
        Some(p) if p <= MAX_VALUES && rng.chance(70) => p,
        _ => rng.below(MAX_VALUES.min(4096)),
    };
    let n = (if rng.chance(10) { n + 1 } else { n }) as usize;
    let data = match rng.below(5) {
        0 => TensorData::F32((0..n).map(|i| i as f32 * 0.5 - 3.0).collect()),
        1 => TensorData::F64(vec![f64::NAN; n]),
        2 => TensorData::S64((0..n).map(|i| i as i64 - 7).collect()),
        3 => TensorData::S32(vec![i32::MIN; n]),
        _ => TensorData::U8(vec![255; n]),
    };
    Tensor { shape, data }
}

/// `numeric`: the mini-batch's columns a column source can stack.
fn column_source(rng: &mut Rng, columns: &[String], numeric: &[String], num_rows: u64) -> ColumnSource {
    let k = match rng.below(6) {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 30,
        4 => usize::MAX as u64, // every numeric column
        _ => rng.below(40),
    };
    let cols = if k == usize::MAX as u64 { numeric.to_vec() } else { (0..k).map(|_| name(rng, columns)).collect() };
    let rows = match rng.below(7) {
        0 => None,
        1 => Some(Vec::new()),
        2 => Some((0..rng.below(num_rows + 2)).map(|_| rng.below(num_rows + 3) as u32).collect()),
        3 => Some(vec![u32::MAX]),
        4 => Some(vec![0; rng.below(MAX_ROW_LIST) as usize]),
        // Just under `limits.max_tensor_mb = 4` as 31 f32 columns: one
        // such input is allowed; hundreds at once must not all be built.
        5 => Some(vec![0; 32 * 1024]),
        _ => Some((0..num_rows as u32).rev().collect()),
    };
    ColumnSource { columns: cols, rows }
}

fn select(rng: &mut Rng) -> OutputSelect {
    match rng.below(5) {
        0 => OutputSelect::Whole,
        1 => OutputSelect::Index(rng.below(4) as u32),
        2 => OutputSelect::Index(u32::MAX),
        3 => OutputSelect::Max,
        _ => OutputSelect::Argmax,
    }
}

fn request(rng: &mut Rng, info: &ModelInfo, columns: &[String], numeric: &[String], num_rows: u64) -> RunRequest {
    let input_names: Vec<String> = info.inputs.iter().map(|t| t.name.clone()).collect();
    let output_names: Vec<String> = info.outputs.iter().map(|t| t.name.clone()).collect();
    if rng.chance(3) {
        // A flood: hundreds of copies of the model's first input, each a
        // column source of at most `limits.max_tensor_mb` (4 MiB of every
        // numeric column, as many rows as fit in the input's type). Allowed one at a time; the
        // host must refuse the duplicates before building them all.
        let width = match info.inputs.first().map(|t| t.element_type) {
            Some(ElementType::F64 | ElementType::S64) => 8,
            Some(ElementType::U8 | ElementType::Bool) => 1,
            _ => 4,
        };
        let rows = (4 << 20) / (width * numeric.len().max(1));
        let source = ColumnSource { columns: numeric.to_vec(), rows: Some(vec![0; rows]) };
        let first = input_names.first().cloned().unwrap_or_default();
        let inputs = (0..100 + rng.below(300))
            .map(|_| Input { name: first.clone(), source: TensorSource::Columns(source.clone()) })
            .collect();
        return RunRequest { inputs, fetch: Vec::new(), to_columns: Vec::new() };
    }
    let n_inputs = if rng.chance(5) { 1 + rng.below(400) } else { rng.below(4) };
    let shared = column_source(rng, columns, numeric, num_rows);
    let inputs = (0..n_inputs)
        .map(|_| {
            // Guest-computed tensors only in small requests: 200 of them
            // would pass the guest's own memory cap.
            let source = match rng.below(3) {
                0 if n_inputs <= 4 => TensorSource::Data(tensor(rng, num_rows)),
                1 => TensorSource::Columns(column_source(rng, columns, numeric, num_rows)),
                // The same source many times: duplicates of one input.
                _ => TensorSource::Columns(shared.clone()),
            };
            Input { name: name(rng, &input_names), source }
        })
        .collect();
    let fetch = (0..rng.below(4)).map(|_| name(rng, &output_names)).collect();
    let to_columns = (0..rng.below(4))
        .map(|_| OutputColumn { output: name(rng, &output_names), column: text(rng), select: select(rng) })
        .collect();
    RunRequest { inputs, fetch, to_columns }
}

struct Fuzz {
    base: u64,
    handles: Vec<(Model, ModelInfo)>,
}

impl Scorer for Fuzz {
    fn init(config: Config) -> Result<Self, Error> {
        let base: u64 = config.parse_or("seed", 0)?;
        let mut rng = Rng(base ^ 0xD1CE);
        // Which columns `run` receives: always `seed`, then arbitrary names.
        if rng.chance(60) {
            let mut names = vec!["seed".to_string()];
            names.extend(
                (0..rng.below(6)).map(|_| name(&mut rng, &["f0".to_string(), "t".to_string(), "b".to_string()])),
            );
            batch::deliver_columns(&names);
        }
        Ok(Fuzz { base, handles: Vec::new() })
    }

    fn run(&mut self, mb: MiniBatch) -> Result<BatchResult, Error> {
        let rows = mb.rows().ok_or_else(|| Error::msg("import_fuzz needs tabular input"))?;
        let num_rows = rows.rows.num_rows as u64;
        let first = rows.rows.column("seed").and_then(|c| c.s64s()).and_then(|v| v.first().copied()).unwrap_or(0);
        let seed = self.base.wrapping_mul(1_000_003).wrapping_add(first as u64);
        let mut rng = Rng(seed);
        let typed = batch::columns();
        let columns: Vec<String> = typed.iter().map(|(n, _)| n.clone()).collect();
        let numeric: Vec<String> = typed.into_iter().filter(|(_, t)| t != "string").map(|(n, _)| n).collect();
        let granted = onnx::granted();
        let ops = 1 + rng.below(MAX_OPS);
        for _ in 0..ops {
            match rng.below(14) {
                0 => log::log(level(&mut rng), &text(&mut rng)),
                1 => log::panicked(&text(&mut rng)),
                2 | 3 => {
                    if let Ok(m) = onnx::load(&name(&mut rng, &granted)) {
                        let info = m.info();
                        self.handles.push((m, info));
                    }
                    if self.handles.len() > MAX_HANDLES {
                        self.handles.remove(0);
                    }
                }
                4 => {
                    if !self.handles.is_empty() {
                        let i = rng.below(self.handles.len() as u64) as usize;
                        self.handles.swap_remove(i);
                    }
                }
                5 => {
                    if let Some((m, _)) = rng.pick(&self.handles) {
                        let _ = m.info();
                    }
                }
                6..=9 => {
                    if let Some(i) = (!self.handles.is_empty()).then(|| rng.below(self.handles.len() as u64) as usize) {
                        let req = request(&mut rng, &self.handles[i].1, &columns, &numeric, num_rows);
                        let _ = self.handles[i].0.run(&req);
                    }
                }
                10 => {
                    let names: Vec<String> = (0..rng.below(5)).map(|_| name(&mut rng, &columns)).collect();
                    let _ = batch::null_rows(&names);
                }
                11 => {
                    let _ = batch::columns();
                }
                12 => {
                    let _ = onnx::granted();
                }
                _ => {
                    // Changes what the next mini-batch of this instance
                    // receives; `seed` stays so its seed can be read.
                    let mut names = vec!["seed".to_string()];
                    names.extend((0..rng.below(4)).map(|_| name(&mut rng, &columns)));
                    batch::deliver_columns(&names);
                }
            }
        }
        if rng.chance(40) {
            self.handles.clear();
        }
        // How the mini-batch ends.
        let n = num_rows as u32;
        let ok = |note: String| BatchResult {
            rows: Table {
                num_rows: n,
                columns: vec![
                    Column { name: "seed".into(), data: ColumnData::S64(vec![seed as i64; n as usize]), valid: None },
                    Column { name: "ops".into(), data: ColumnData::S64(vec![ops as i64; n as usize]), valid: None },
                    Column { name: "note".into(), data: ColumnData::String(vec![note; n as usize]), valid: None },
                ],
            },
            row_items: (0..n).collect(),
            errors: Vec::new(),
        };
        match rng.below(10) {
            0 => Err(Error::msg(text(&mut rng))),
            1 => panic!("{}", text(&mut rng)),
            2 => Ok(BatchResult {
                rows: Table { num_rows: 0, columns: Vec::new() },
                row_items: Vec::new(),
                errors: (0..n).map(|item| ItemError { item, message: text(&mut rng) }).collect(),
            }),
            // Breaks the contract: an item twice, or none at all.
            3 => {
                let mut r = ok(String::new());
                r.errors = vec![ItemError { item: rng.below(n as u64 + 2) as u32, message: text(&mut rng) }];
                Ok(r)
            }
            _ => Ok(ok(format!("seed {seed}"))),
        }
    }
}

export_scorer!(Fuzz);

fn main() {}
