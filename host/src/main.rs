//! The `llmos` binary: a thin command line over the [`llmos::Llmos`] facade.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
