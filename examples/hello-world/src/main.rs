//! `cargo run -p hello-world`: the seed's scenario, printed step by step.
//! Needs moto (`./scripts/test` installs it into `.venv`, or set `MOTO_ENDPOINT`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match hello_world::run(&mut |line| println!("{line}")).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello-world failed: {e}");
            ExitCode::FAILURE
        }
    }
}
