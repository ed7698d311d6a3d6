//! The `magos` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    magos::cli::main()
}
