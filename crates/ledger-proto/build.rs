//! Compiles `proto/ledger/v1/*.proto` (and `proto/ledger/raft/v1/raft.proto`, apart) with protox (pure Rust, no system protoc) into OUT_DIR, and
//! writes the encoded descriptor set for the reflection service.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        root.join("ledger/v1/ledger.proto"),
        root.join("ledger/v1/witness.proto"),
        root.join("ledger/v1/timestamps.proto"),
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("ledger_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    // Raft between cluster peers (`ledger.raft.v1`): compiled apart so that the public API's
    // descriptor set (reflection) does not list it.
    let raft = root.join("ledger/raft/v1/raft.proto");
    println!("cargo:rerun-if-changed={}", raft.display());
    let raft_fds = protox::compile([&raft], [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(raft_fds)?;
    Ok(())
}
