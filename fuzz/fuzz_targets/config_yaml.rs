//! Arbitrary text as the program's YAML configuration layer (YAML → JSON value
//! with the line of every path): no panic, and every recorded path has a line.
#![no_main]

#[allow(dead_code)]
#[path = "../../examples/jenkins-cloud/src/config/yaml.rs"]
mod yaml;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(doc) = yaml::Document::parse(text) {
        for path in doc.lines.keys() {
            assert!(doc.line_of(path).is_some(), "{path}");
        }
        let _ = doc.line_of("clouds[0].templates[0].spec.cpu");
    }
});
