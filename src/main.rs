//! The `knobs` binary: a thin face over the library (see `knobs --help`).

fn main() {
    std::process::exit(knobs::cli::main());
}
