//! `smsdesk phone`: phone number parsing on the command line, with the rules smsdesk sends by.

use std::process::ExitCode;

use domain::phone::PhoneNumber;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Region (ISO 3166 alpha-2, such as US or GB) for numbers written without a country code.
    #[arg(long)]
    region: Option<String>,
    /// Read JSON lines {"input": "...", "region": "US"} and answer each on its own line.
    #[arg(long)]
    jsonl: bool,
}

#[derive(Deserialize)]
struct Request {
    input: String,
    region: Option<String>,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.jsonl {
            super::for_each_json_line(|r: Request| {
                answer(&r.input, r.region.as_deref().or(self.region.as_deref()))
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        let input = super::read_stdin()?;
        super::print_json(&answer(input.trim(), self.region.as_deref()))?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The JSON answer for one input: the parsed number, or why it is not one.
fn answer(input: &str, region: Option<&str>) -> Value {
    match PhoneNumber::parse(input, region) {
        Ok(number) => json!({
            "valid": true,
            "e164": number.e164(),
            "region": number.region(),
            "type": number.kind().as_str(),
        }),
        Err(e) => json!({ "valid": false, "error": e.to_string() }),
    }
}
