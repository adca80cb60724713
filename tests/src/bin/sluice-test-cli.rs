//! The sluice CLI built inside the test package, so the integration tests
//! always run the current code (`CARGO_BIN_EXE_sluice-test-cli`).

fn main() -> std::process::ExitCode {
    sluice_cli::main()
}
