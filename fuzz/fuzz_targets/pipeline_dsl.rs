//! `.civ` text from users: the parser and checker never panic, every error has a valid
//! position, and a file that checks formats back to text that checks to the same pipelines.
#![no_main]

use civitas_pipeline::{Location, check_sources, format_pipeline};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match check_sources(&[("fuzz.civ".to_string(), text.to_string())]) {
        Err(diags) => {
            assert!(diags.has_errors());
            for d in &diags.items {
                if let Location::Source { span, .. } = &d.location {
                    assert!(span.start <= span.end && span.end <= text.len());
                }
            }
            let _ = diags.render();
        }
        Ok(checked) => {
            for p in &checked.pipelines {
                let again = check_sources(&[("again.civ".to_string(), format_pipeline(&p.pipeline))])
                    .expect("a formatted pipeline checks");
                assert_eq!(again.pipelines[0].pipeline, p.pipeline);
            }
        }
    }
});
