//! SQL units from apply bodies: `parse_unit` never panics, and every view it accepts holds,
//! once re-written, exactly one read-only SELECT.
#![no_main]

use civitas_model::Document;
use libfuzzer_sys::fuzz_target;
use sqlparser::ast::{SetExpr, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(Document::DataUnit(unit)) = Document::decode(&value) else { return };
    let Ok(Some(sql)) = civitas_sql::parse_unit(&unit) else { return };
    for view in sql.views.values() {
        let parsed = Parser::parse_sql(&PostgreSqlDialect {}, &view.statement).expect("a checked view re-parses");
        assert_eq!(parsed.len(), 1, "{:?}", view.statement);
        let Statement::Query(query) = &parsed[0] else { panic!("not a query: {:?}", view.statement) };
        assert!(query.locks.is_empty(), "{:?}", view.statement);
        assert!(!matches!(*query.body, SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_)));
    }
});
