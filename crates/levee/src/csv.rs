//! CSV as spreadsheets read it (RFC 4180): records ended by CRLF, a cell
//! quoted when it holds a comma, a double quote or a line break, its quotes
//! doubled; optionally a UTF-8 byte order mark first, which Excel needs to
//! read UTF-8 (Chinese) rather than the system code page.

use std::io::{self, Write};

/// The UTF-8 byte order mark.
pub const BOM: &str = "\u{feff}";

/// One cell, quoted where it must be.
pub fn cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes one record and its CRLF.
pub fn record<S: AsRef<str>>(out: &mut impl Write, cells: &[S]) -> io::Result<()> {
    let line: Vec<String> = cells.iter().map(|c| cell(c.as_ref())).collect();
    write!(out, "{}\r\n", line.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(cells: &[&str]) -> String {
        let mut out = Vec::new();
        record(&mut out, cells).unwrap_or_default();
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn plain_cells_are_written_as_they_are() {
        assert_eq!(written(&["VF-001", "车辆油耗", ""]), "VF-001,车辆油耗,\r\n");
    }

    #[test]
    fn commas_quotes_and_line_breaks_are_quoted() {
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(cell("，中文逗号不需要"), "，中文逗号不需要");
        assert_eq!(
            written(&["x", "1,2", "q\"", "l\r\nm"]),
            "x,\"1,2\",\"q\"\"\",\"l\r\nm\"\r\n"
        );
    }

    #[test]
    fn a_quoted_record_reads_back_into_its_cells() {
        // A minimal RFC 4180 reader: what a spreadsheet does with the line.
        fn read(line: &str) -> Vec<String> {
            let (mut cells, mut cur, mut quoted, mut chars) =
                (Vec::new(), String::new(), false, line.chars().peekable());
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => cells.push(std::mem::take(&mut cur)),
                    _ => cur.push(c),
                }
            }
            cells.push(cur);
            cells
        }
        let cells = ["a", "b,c", "\"d\"", "e\nf", "", "元, \"整\""];
        let line = written(&cells);
        let line = line.strip_suffix("\r\n").unwrap_or(&line);
        assert_eq!(read(line), cells);
    }
}
