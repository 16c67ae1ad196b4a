//! `gateway-agent version`.

/// Prints the version.
pub fn run() -> anyhow::Result<u8> {
    println!("gateway-agent {} ({})", crate::VERSION, crate::update::target_triple());
    Ok(0)
}
