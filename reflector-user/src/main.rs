//! The `reflector` binary: the command line ([`reflector::cli`]) is the whole program.
#![expect(
    unused_crate_dependencies,
    reason = "the binary is the library's thin edge: its dependencies are the library's"
)]

fn main() -> std::process::ExitCode {
    reflector::cli::main()
}
