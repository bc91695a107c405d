//! The examples of `docs/model.md` are true: every ```json block decodes, a block introduced
//! by "written back as" is exactly the canonical form of the block before it, and the
//! ```text error example is what the decoder says.

use std::path::Path;

use civitas_model::{Document, Kind};
use serde_json::{Value, json};

struct Block {
    lang: String,
    /// The prose between the previous block and this one.
    intro: String,
    body: String,
}

fn doc_blocks() -> Vec<Block> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/model.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    let mut intro = String::new();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            blocks.push(Block { lang: lang.trim().to_string(), intro: std::mem::take(&mut intro), body });
        } else {
            intro.push_str(line);
            intro.push('\n');
        }
    }
    blocks
}

#[test]
fn every_json_example_decodes_and_each_kind_has_one() {
    let mut kinds = Vec::new();
    for b in doc_blocks().iter().filter(|b| b.lang == "json") {
        let value: Value = serde_json::from_str(&b.body).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", b.body));
        let doc = Document::decode(&value).unwrap_or_else(|e| panic!("{e}\n{}", b.body));
        kinds.push(doc.kind());
    }
    for kind in Kind::ALL {
        assert!(kinds.contains(&kind), "docs/model.md has no example of a {kind}");
    }
}

#[test]
fn written_back_examples_are_the_canonical_form_of_the_one_before() {
    let blocks: Vec<Block> = doc_blocks().into_iter().filter(|b| b.lang == "json").collect();
    let mut compared = 0;
    for pair in blocks.windows(2) {
        if !pair[1].intro.contains("written back as") {
            continue;
        }
        let input: Value = serde_json::from_str(&pair[0].body).unwrap();
        let output: Value = serde_json::from_str(&pair[1].body).unwrap();
        let canonical = Document::decode(&input).unwrap().encode();
        // As text, so that key order counts.
        assert_eq!(serde_json::to_string(&canonical).unwrap(), serde_json::to_string(&output).unwrap());
        compared += 1;
    }
    assert_eq!(compared, 1);
}

#[test]
fn the_error_example_is_what_the_decoder_says() {
    let block = doc_blocks().into_iter().find(|b| b.lang == "text" && b.intro.contains("three mistakes")).unwrap();
    let expected = block.body.trim().replace('\n', " ");
    let unit = json!({
        "@type": "DataUnit",
        "name": "urn:buildings:vienna",
        "version": "1.0",
        "metainformation": {"type": "rest"},
        "views": [
            {"name": "blocks", "link": "/blocks", "size": "ten"},
            {"name": "buildings", "link": "/buildings", "updateFrequency": {"period": "yearly", "fraction": 150}},
            {"name": "streets", "link": "/streets", "udpateFrequency": {"period": "yearly"}}
        ]
    });
    assert_eq!(Document::decode(&unit).unwrap_err().to_string(), expected);
}
