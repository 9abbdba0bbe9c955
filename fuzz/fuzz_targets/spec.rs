//! A spec file: parsed and checked as `knobs validate` does. Any input must give a spec or
//! a list of problems, quickly, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(file) = knobs::SpecFile::parse(text, "fuzz") {
        let _ = file.check("fuzz", std::path::PathBuf::from("/nonexistent-fuzz-dir"));
    }
});
