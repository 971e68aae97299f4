//! CSV downloads (RFC 4180): a header with units in the names, then raw numbers at full
//! precision; empty fields where there is no value.

use super::tables::Table;

/// Quote a field when it holds a comma, a quote or a line break.
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn line(fields: impl Iterator<Item = String>) -> String {
    let mut out = fields.map(|f| field(&f)).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

/// The whole table, every group and every row (also those the page leaves out).
pub fn to_csv(table: &Table) -> String {
    let header = table.key_columns.iter().cloned().chain(table.columns.iter().map(|c| c.csv.clone()));
    let mut out = line(header);
    for group in &table.groups {
        for row in &group.rows {
            out.push_str(&line(group.key.iter().cloned().chain(row.iter().map(|c| c.raw.clone()))));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("resnet50"), "resnet50");
        assert_eq!(field("out of memory, batch 64"), "\"out of memory, batch 64\"");
        assert_eq!(field("a \"b\""), "\"a \"\"b\"\"\"");
    }
}
