use failure::Error;
use std::fs;

pub mod generate_messages;

/// protocol_codegen JSON_DIR OUTPUT_DIR: Klamm reads the definitions from a directory (see
/// vendor/regenerate.sh) instead of cloning Kafka's repository, which upstream's main does.
fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let (input, output) = (&args[1], &args[2]);
    for file in fs::read_dir(output)? {
        let path = file?.path();
        if path.is_file() && path.extension() == Some("rs".as_ref()) {
            fs::remove_file(path)?;
        }
    }
    let mut inputs = Vec::new();
    for file in fs::read_dir(input)? {
        let path = file?.path();
        if path.is_file() && path.extension() == Some("json".as_ref()) {
            inputs.push(path);
        }
    }
    generate_messages::run(output, inputs)?;
    Ok(())
}
