//! Message templates: text with `{name}` placeholders naming fields,
//! derived values or aggregates; `{{` and `}}` are literal braces. Used for
//! `message` and `message_zh` alike.

/// A piece of a parsed template.
pub(crate) enum Part {
    Text(String),
    Name(String),
}

/// Splits a message template into text and `{name}` placeholders;
/// `{{` and `}}` stand for literal braces.
pub(crate) fn parse_template(t: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = t;
    while let Some(i) = rest.find(['{', '}']) {
        text.push_str(&rest[..i]);
        let brace = &rest[i..i + 1];
        let after = &rest[i + 1..];
        if let Some(after_pair) = after.strip_prefix(brace) {
            // `{{` or `}}`: a literal brace.
            text.push_str(brace);
            rest = after_pair;
            continue;
        }
        if brace == "}" {
            return Err("a lone `}` (write `}}` for a literal brace)".to_owned());
        }
        let Some(end) = after.find('}') else {
            return Err(format!("placeholder `{{{after}` is not closed with `}}`"));
        };
        let name = after[..end].trim();
        if name.is_empty() {
            return Err("empty placeholder `{}`".to_owned());
        }
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Name(name.to_owned()));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// The placeholder names of a template, in order, repeats included.
pub(crate) fn placeholders(t: &str) -> Result<Vec<String>, String> {
    Ok(parse_template(t)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Name(n) => Some(n),
            Part::Text(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(t: &str) -> Result<Vec<String>, String> {
        parse_template(t).map(|parts| {
            parts
                .into_iter()
                .map(|p| match p {
                    Part::Text(s) => format!("text:{s}"),
                    Part::Name(s) => format!("name:{s}"),
                })
                .collect()
        })
    }

    #[test]
    fn templates_split_into_text_and_names_with_literal_braces() {
        assert_eq!(
            shown("Vehicle {vehicle_id} used {fuel_used_l} L"),
            Ok(vec![
                "text:Vehicle ".to_owned(),
                "name:vehicle_id".to_owned(),
                "text: used ".to_owned(),
                "name:fuel_used_l".to_owned(),
                "text: L".to_owned(),
            ])
        );
        assert_eq!(shown("{{literal}}"), Ok(vec!["text:{literal}".to_owned()]));
        assert!(shown("unclosed {name").is_err());
        assert!(shown("stray } brace").is_err());
    }

    #[test]
    fn placeholders_are_the_names_in_order() {
        assert_eq!(
            placeholders("车辆{vehicle_id}行驶{distance_km}公里，{vehicle_id}"),
            Ok(vec![
                "vehicle_id".to_owned(),
                "distance_km".to_owned(),
                "vehicle_id".to_owned()
            ])
        );
        assert_eq!(placeholders("无占位符"), Ok(vec![]));
    }
}
