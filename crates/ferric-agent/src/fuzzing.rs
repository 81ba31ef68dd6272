//! The fuzz entry point for the command parser, shared by
//! `fuzz/fuzz_targets/command_parser.rs` and a unit test that runs it over
//! the seed corpus (`fuzz/corpus/command_parser/`) and mutations of it, so
//! CI exercises it without cargo-fuzz.

use ferric_ipa::{Command, RootDeviceHints};

/// Input layout: the query string, a newline, then the request body.
pub fn parse_input(data: &[u8]) {
    let (query, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    let query = String::from_utf8_lossy(query);
    let Ok(call) = crate::parse_command(&query, body) else {
        return;
    };
    // What the agent does next with a parsed command must not panic either.
    let again = Command::from_request(&call.command.to_request());
    assert!(
        again.is_ok(),
        "a parsed command must survive its own round trip"
    );
    if let Command::GetSteps(_, params) = &call.command {
        if let Some(hints) = params.node.root_device_hints() {
            if let Ok(Some(parsed)) = RootDeviceHints::parse(hints) {
                let _ = parsed.to_value();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<Vec<u8>> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/command_parser");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }

    #[test]
    fn runs_over_the_seed_corpus() {
        let seeds = corpus();
        assert!(seeds.len() >= 8);
        for seed in &seeds {
            parse_input(seed);
        }
    }

    #[test]
    fn survives_mutations_of_the_corpus() {
        // A small deterministic mutation loop: flips, truncations, splices.
        let seeds = corpus();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut input = seeds[round % seeds.len()].clone();
            match next() % 4 {
                0 if !input.is_empty() => {
                    let at = (next() as usize) % input.len();
                    input[at] = next() as u8;
                }
                1 => input.truncate((next() as usize) % (input.len() + 1)),
                2 => {
                    let other = &seeds[(next() as usize) % seeds.len()];
                    let at = (next() as usize) % (input.len() + 1);
                    input.splice(at..at, other.iter().copied());
                }
                _ => input.extend((0..(next() % 16)).map(|_| next() as u8)),
            }
            parse_input(&input);
        }
    }
}
