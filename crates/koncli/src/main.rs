//! `koncli`: parse the command line, run it, exit with its code. See the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = koncli::cli::Cli::parse();
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(koncli::run(cli)),
        Err(error) => {
            eprintln!("koncli: cannot start: {error}");
            ExitCode::from(koncli::EXIT_ERROR)
        }
    }
}
