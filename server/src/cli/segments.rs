//! `smsdesk segments`: the segment counter on the command line.

use std::process::ExitCode;

use domain::segments::SegmentedMessage;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Count as Twilio's smart encoding would send it (look-alikes replaced by GSM-7 characters).
    #[arg(long)]
    smart: bool,
    /// Read JSON lines {"text": "...", "smart": bool} and answer each on its own line.
    #[arg(long)]
    jsonl: bool,
}

#[derive(Deserialize)]
struct Request {
    text: String,
    smart: Option<bool>,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.jsonl {
            super::for_each_json_line(|r: Request| answer(&r.text, r.smart.unwrap_or(self.smart)))?;
            return Ok(ExitCode::SUCCESS);
        }
        let body = super::read_stdin()?;
        let value = answer(&body, self.smart);
        super::print_json(&value)?;
        Ok(if value.get("error").is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// The JSON answer for one body: the counts, or an error object.
fn answer(body: &str, smart: bool) -> Value {
    match SegmentedMessage::analyze(body, smart) {
        Ok(m) => json!({
            "encoding": m.encoding().as_str(),
            "segments": m.segment_count(),
            "characters": m.characters(),
            "unicode_scalars": m.unicode_scalars(),
            "non_gsm": m.non_gsm().iter().map(|c| c.grapheme.as_str()).collect::<Vec<_>>(),
            "smart_text": m.text(),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}
