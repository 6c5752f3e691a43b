//! The `meshform` binary: a thin layer over the library.

fn main() -> std::process::ExitCode {
    meshform::cli::main()
}
