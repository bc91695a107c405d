//! `KIND` arguments as people type them (`units`, `unit`, `du`, `DataUnit`…), and the
//! per-kind table columns people want to see.

use civitas_model::Kind;
use serde_json::Value;

use crate::output::{Table, cell, count};

/// clap value parser for `KIND`: any spelling [`Kind::from_user_text`] accepts; the error
/// lists the valid ones.
pub fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::from_user_text(s).ok_or_else(|| {
        const ORDER: [Kind; 8] = [
            Kind::DataUnit,
            Kind::DataInstance,
            Kind::Site,
            Kind::SiteLink,
            Kind::TechnicalUnit,
            Kind::DeploymentUnit,
            Kind::DeploymentInstance,
            Kind::Pipeline,
        ];
        let valid: Vec<&str> = ORDER.iter().map(|k| k.collection()).collect();
        format!(
            "unknown kind {s:?}: use one of {} (or a singular, an @type, or du, tu, di, dau, dai)",
            valid.join(", ")
        )
    })
}

/// Turns one document into the cells of its table row.
type RowFn = fn(&Value) -> Vec<String>;

/// The table of `docs` of one kind, with the columns that matter for that kind.
pub fn table(kind: Kind, docs: &[Value]) -> Table {
    let (header, row): (&[&'static str], RowFn) = match kind {
        Kind::DataUnit => (&["NAME", "VERSION", "TYPE", "VIEWS"], |d| {
            vec![cell(d, "/name"), cell(d, "/version"), cell(d, "/metainformation/type"), count(d, "/views")]
        }),
        Kind::DataInstance => (&["NAME", "UNIT", "SITE", "ROLE", "ENDPOINT"], |d| {
            vec![cell(d, "/name"), cell(d, "/dataUnit"), cell(d, "/site"), cell(d, "/role"), cell(d, "/endpoint")]
        }),
        Kind::Site => (&["NAME", "TIER", "REGION", "PROVIDER"], |d| {
            vec![cell(d, "/name"), cell(d, "/tier"), cell(d, "/region"), cell(d, "/provider")]
        }),
        Kind::SiteLink => (&["NAME", "FROM", "TO", "LATENCY_MS", "BANDWIDTH_MBPS"], |d| {
            vec![cell(d, "/name"), cell(d, "/from"), cell(d, "/to"), cell(d, "/latencyMs"), cell(d, "/bandwidthMbps")]
        }),
        Kind::TechnicalUnit => {
            (&["NAME", "VERSION", "DATA_UNITS"], |d| vec![cell(d, "/name"), cell(d, "/version"), cell(d, "/dataUnits")])
        }
        Kind::DeploymentUnit => (&["NAME", "VERSION", "TECHNICAL_UNIT", "SITES"], |d| {
            vec![cell(d, "/name"), cell(d, "/version"), cell(d, "/technicalUnit"), cell(d, "/sites")]
        }),
        Kind::DeploymentInstance => (&["NAME", "VERSION", "DEPLOYMENT_UNIT", "SITE", "ENDPOINT"], |d| {
            vec![
                cell(d, "/name"),
                cell(d, "/version"),
                cell(d, "/deploymentUnit"),
                cell(d, "/site"),
                cell(d, "/endpoint"),
            ]
        }),
        Kind::Pipeline => (&["NAME", "VERSION", "STAGES", "DESCRIPTION"], |d| {
            vec![cell(d, "/name"), cell(d, "/version"), count(d, "/stages"), cell(d, "/description")]
        }),
    };
    let mut t = Table::new(header);
    for d in docs {
        t.push(row(d));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_as_people_type_them() {
        assert_eq!(parse_kind("units"), Ok(Kind::DataUnit));
        assert_eq!(parse_kind("du"), Ok(Kind::DeploymentUnit));
        assert_eq!(parse_kind("Deployments"), Ok(Kind::DeploymentInstance));
        let e = parse_kind("unicorns").unwrap_err();
        assert!(e.contains("\"unicorns\"") && e.contains("units") && e.contains("site-links"), "{e}");
    }

    #[test]
    fn every_kind_has_a_table() {
        let doc = serde_json::json!({"name": "urn:a:b", "version": "1.0"});
        for k in Kind::ALL {
            let text = table(k, std::slice::from_ref(&doc)).render();
            assert!(text.starts_with("NAME") && text.contains("urn:a:b"), "{k}: {text}");
        }
    }
}
