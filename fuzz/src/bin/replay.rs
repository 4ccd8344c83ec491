//! Runs one target on files, outside AFL: `replay <target> <file>...`. Used to reproduce a crash
//! with a backtrace (`cargo run --bin replay -- entry crash-file`).

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(target) = args.next() else {
        eprintln!("usage: replay <entry|note|bundle|export> <file>...");
        std::process::exit(2);
    };
    let Some(f) = ledger_fuzz::targets::by_name(&target) else {
        eprintln!("unknown target {target}");
        std::process::exit(2);
    };
    for path in args {
        match std::fs::read(&path) {
            Ok(data) => {
                f(&data);
                println!("{path}: ok");
            }
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(2);
            }
        }
    }
}
